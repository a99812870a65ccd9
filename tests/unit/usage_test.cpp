#include <doctest/doctest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/usage/ledger.hpp"
#include "runtime/usage/meter.hpp"
#include "runtime/usage/report.hpp"

using namespace hyper;
using namespace hyper::runtime;
using namespace hyper::runtime::usage;
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr int64_t kT0 = 1796637600;  // 2026-12-07T10:00:00Z

struct TempRoot {
  Paths paths;
  TempRoot() {
    std::string pattern = (fs::temp_directory_path() / "hyper-usage-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    paths.root = pattern;
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(paths.root, ec);
  }
  TempRoot(const TempRoot&) = delete;
  TempRoot& operator=(const TempRoot&) = delete;

  [[nodiscard]] fs::path ledger_path() const { return paths.usage() / kLedgerFile; }
  void append_raw(const std::string& bytes) const {
    fs::create_directories(paths.usage());
    std::ofstream(ledger_path(), std::ios::app | std::ios::binary) << bytes;
  }
  void write_config(const std::string& text) const { std::ofstream(paths.config()) << text; }
};

Run make_run(const std::string& run_id, char container, int64_t start, uint64_t seconds, uint32_t vcpus = 2,
             uint64_t memory_mib = 512) {
  Run run;
  run.run = run_id;
  run.start = start;
  run.container_id = std::string(64, container);
  run.name = std::string("c") + container;
  run.vcpus = vcpus;
  run.memory_mib = memory_mib;
  run.seconds = seconds;
  run.ended = true;
  return run;
}

std::vector<Run> read_all(const TempRoot& root) {
  auto runs = read_runs(root.paths.usage());
  INFO((runs.ok() ? std::string() : runs.error().message));
  REQUIRE(runs.ok());
  return *runs;
}

Container make_container() {
  Container container;
  container.id = std::string(64, 'c');
  container.name = "web";
  container.config.cpus = 3;
  container.config.memory_mib = 2048;
  return container;
}

}  // namespace

TEST_CASE("usage ledger: start and end records come back as runs") {
  TempRoot root;
  auto ledger = Ledger::open(root.paths.usage());
  REQUIRE(ledger.ok());
  const Run first = make_run("0123456789abcdef", 'a', kT0, 0);
  const Run second = make_run("fedcba9876543210", 'b', kT0 + 5, 0, 1, 256);
  REQUIRE(ledger->append(start_record(first)).ok());
  REQUIRE(ledger->append(start_record(second)).ok());
  REQUIRE(ledger->append(end_record(first.run, 42)).ok());
  REQUIRE(ledger->append(end_record(second.run, 7)).ok());

  const auto runs = read_all(root);
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].run == first.run);
  CHECK(runs[0].start == kT0);
  CHECK(runs[0].container_id == first.container_id);
  CHECK(runs[0].name == "ca");
  CHECK(runs[0].vcpus == 2);
  CHECK(runs[0].memory_mib == 512);
  CHECK(runs[0].seconds == 42);
  CHECK(runs[0].ended);
  CHECK(runs[1].seconds == 7);
  CHECK(runs[1].memory_mib == 256);
  // Short fixed-format lines, each with its checksum.
  CHECK(end_record(first.run, 42).starts_with("E 0123456789abcdef 42 "));
  CHECK(end_record(first.run, 42).size() == 31);  // and its 8-digit checksum and newline
}

TEST_CASE("usage ledger: a missing ledger has no runs") {
  TempRoot root;
  CHECK(read_all(root).empty());
}

TEST_CASE("usage ledger: a torn last line is skipped") {
  const Run run = make_run("0123456789abcdef", 'a', kT0, 0);
  const std::string end = end_record(run.run, 30);
  for (size_t cut = 1; cut < end.size(); ++cut) {
    INFO(cut);
    TempRoot torn;
    torn.append_raw(start_record(run) + end.substr(0, cut));
    const auto runs = read_all(torn);
    REQUIRE(runs.size() == 1);
    CHECK_FALSE(runs[0].ended);  // the end record did not make it
    CHECK(runs[0].seconds == 0);
  }
}

TEST_CASE("usage ledger: a torn record does not take the next writer's record with it") {
  TempRoot root;
  const Run a = make_run("0123456789abcdef", 'a', kT0, 0);
  const Run b = make_run("1111111111111111", 'b', kT0, 0);
  const std::string start_b = start_record(b);
  // A's monitor killed mid-write of its end record; B's start and end follow on.
  root.append_raw(start_record(a) + end_record(a.run, 9).substr(0, 12) + start_b + end_record(b.run, 4));
  // And a line whose checksum does not match, as after a lost write.
  std::string corrupt = end_record(a.run, 99);
  corrupt[20] = '8';
  root.append_raw(corrupt);
  root.append_raw(std::string(16, '\0') + "\n");
  const auto runs = read_all(root);
  REQUIRE(runs.size() == 2);
  CHECK_FALSE(runs[0].ended);
  CHECK(runs[1].run == b.run);
  CHECK(runs[1].ended);
  CHECK(runs[1].seconds == 4);
}

TEST_CASE("usage ledger: a run whose monitor was killed counts up to its last heartbeat") {
  TempRoot root;
  auto ledger = Ledger::open(root.paths.usage());
  REQUIRE(ledger.ok());
  const Run run = make_run("0123456789abcdef", 'a', kT0, 0);
  auto heartbeat = Heartbeat::create(root.paths.usage(), run.run);
  REQUIRE(heartbeat.ok());
  REQUIRE(ledger->append(start_record(run)).ok());
  for (uint64_t second = 1; second <= 5; ++second) REQUIRE(heartbeat->beat(second).ok());
  // No end record: as after kill -9.
  auto runs = read_all(root);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].seconds == 5);
  CHECK_FALSE(runs[0].ended);

  SUBCASE("a heartbeat slot torn by a crash leaves the second before") {
    const fs::path path = root.paths.usage() / kRunsDir / run.run;
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(0);  // where the last beat (5) went
    file.write("1234", 4);  // a torn write: new digits, old checksum
    file.close();
    runs = read_all(root);
    CHECK(runs[0].seconds == 4);
  }
  SUBCASE("an end record wins, and the heartbeat then goes") {
    REQUIRE(ledger->append(end_record(run.run, 6)).ok());
    REQUIRE(heartbeat->remove().ok());
    runs = read_all(root);
    CHECK(runs[0].seconds == 6);
    CHECK(runs[0].ended);
  }
}

TEST_CASE("usage meter: records the start, the heartbeat and the end of a run") {
  TempRoot root;
  const Container container = make_container();
  const auto before = unix_now();
  {
    auto meter = Meter::open(root.paths, container);
    INFO((meter.ok() ? std::string() : meter.error().message));
    REQUIRE(meter.ok());
    meter->start();
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    const auto running = read_all(root);
    REQUIRE(running.size() == 1);
    CHECK_FALSE(running[0].ended);
    CHECK(running[0].seconds >= 1);  // its first heartbeat
    meter->stop();
  }
  const auto runs = read_all(root);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].container_id == container.id);
  CHECK(runs[0].name == "web");
  CHECK(runs[0].vcpus == 3);
  CHECK(runs[0].memory_mib == 2048);
  CHECK(runs[0].start >= before);
  CHECK(runs[0].start <= unix_now());
  CHECK(runs[0].ended);
  CHECK(runs[0].seconds >= 2);  // 1.3 s: a second begun counts whole
  CHECK(runs[0].seconds <= 4);
  CHECK(fs::is_empty(root.paths.usage() / kRunsDir));  // the heartbeat went with the end record
}

TEST_CASE("usage meter: a meter never started leaves no trace") {
  TempRoot root;
  {
    auto meter = Meter::open(root.paths, make_container());
    REQUIRE(meter.ok());
  }
  CHECK(read_all(root).empty());
  CHECK(fs::is_empty(root.paths.usage() / kRunsDir));
}

TEST_CASE("usage report: runs are clipped to the window, a second at a time") {
  const std::vector<Run> runs = {
      make_run("0000000000000001", 'a', kT0, 100, 2, 512),        // [T0, T0+100)
      make_run("0000000000000002", 'b', kT0 + 50, 100, 1, 1024),  // [T0+50, T0+150)
      make_run("0000000000000003", 'a', kT0 + 200, 10, 2, 512),   // [T0+200, T0+210)
  };
  const Prices prices{0.5, 0.25, "USD"};

  SUBCASE("everything") {
    const Json report = usage_json(runs, Window{std::nullopt, kT0 + 1000}, prices);
    CHECK(report["since"].is_null());
    CHECK(report["until"] == "2026-12-07T10:16:40Z");
    REQUIRE(report["containers"].size() == 2);
    const Json& a = report["containers"][0];
    CHECK(a["id"] == std::string(64, 'a'));
    CHECK(a["name"] == "ca");
    CHECK(a["runs"] == 2);
    CHECK(a["seconds"] == 110);
    CHECK(a["vcpu_seconds"] == 220);
    CHECK(a["gib_seconds"].get<double>() == doctest::Approx(55.0));
    CHECK(a["cost"].get<double>() == doctest::Approx(220 * 0.5 + 55 * 0.25));
    const Json& b = report["containers"][1];
    CHECK(b["seconds"] == 100);
    CHECK(b["gib_seconds"].get<double>() == doctest::Approx(100.0));
    CHECK(report["total"]["seconds"] == 210);
    CHECK(report["total"]["vcpu_seconds"] == 320);
    CHECK(report["total"]["cost"].get<double>() == doctest::Approx(320 * 0.5 + 155 * 0.25));
    CHECK(report["currency"] == "USD");
  }
  SUBCASE("a window that cuts runs") {
    const Json report = usage_json(runs, Window{kT0 + 90, kT0 + 205}, prices);
    CHECK(report["since"] == "2026-12-07T10:01:30Z");
    REQUIRE(report["containers"].size() == 2);
    CHECK(report["containers"][0]["seconds"] == 10 + 5);  // [T0+90, T0+100) and [T0+200, T0+205)
    CHECK(report["containers"][1]["seconds"] == 60);      // [T0+90, T0+150)
    CHECK(report["total"]["seconds"] == 75);
  }
  SUBCASE("a window in which nothing ran, and one in which one container ran") {
    const Json report = usage_json(runs, Window{kT0 + 150, kT0 + 200}, prices);
    CHECK(report["containers"].empty());
    CHECK(report["total"]["seconds"] == 0);
    CHECK(report["total"]["cost"] == 0.0);
    const Json later = usage_json(runs, Window{kT0 + 120, kT0 + 130}, prices);
    REQUIRE(later["containers"].size() == 1);
    CHECK(later["containers"][0]["name"] == "cb");
    CHECK(later["containers"][0]["seconds"] == 10);
  }
}

TEST_CASE("usage report: prices come from config.json") {
  TempRoot root;
  SUBCASE("no file: free") {
    auto prices = read_prices(root.paths);
    REQUIRE(prices.ok());
    CHECK(prices->per_vcpu_second == 0);
    CHECK(prices->per_gib_second == 0);
    CHECK(prices->currency.empty());
  }
  SUBCASE("no section, or some keys only") {
    root.write_config(R"({"floating_ips": {"pool": "198.51.100.0/28"}})");
    CHECK(read_prices(root.paths)->per_vcpu_second == 0);
    root.write_config(R"({"usage": {"price_per_gib_second": 0.0000012}})");
    auto prices = read_prices(root.paths);
    REQUIRE(prices.ok());
    CHECK(prices->per_vcpu_second == 0);
    CHECK(prices->per_gib_second == doctest::Approx(0.0000012));
  }
  SUBCASE("all of them, into the report") {
    root.write_config(
        R"({"usage": {"price_per_vcpu_second": 0.000011, "price_per_gib_second": 0.0000012, "currency": "EUR"}})");
    auto ledger = Ledger::open(root.paths.usage());
    REQUIRE(ledger.ok());
    const Run run = make_run("0123456789abcdef", 'a', kT0, 0, 2, 2048);
    REQUIRE(ledger->append(start_record(run)).ok());
    REQUIRE(ledger->append(end_record(run.run, 3600)).ok());
    auto report = report_json(root.paths, kT0, kT0 + 7200);
    INFO((report.ok() ? std::string() : report.error().message));
    REQUIRE(report.ok());
    CHECK((*report)["currency"] == "EUR");
    CHECK((*report)["total"]["vcpu_seconds"] == 7200);
    CHECK((*report)["total"]["gib_seconds"].get<double>() == doctest::Approx(7200.0));
    CHECK((*report)["total"]["cost"].get<double>() == doctest::Approx(7200 * 0.000011 + 7200 * 0.0000012));
  }
}

TEST_CASE("usage report: a malformed config.json is an error, not a crash") {
  TempRoot root;
  for (const char* text : {"{not json", "[1, 2]", R"({"usage": 3})", R"({"usage": {"price_per_vcpu_second": "1"}})",
                           R"({"usage": {"price_per_vcpu_second": -1}})", R"({"usage": {"price_per_cpu_second": 1}})",
                           R"({"usage": {"currency": 840}})"}) {
    INFO(text);
    root.write_config(text);
    auto prices = read_prices(root.paths);
    REQUIRE_FALSE(prices.ok());
    CHECK(prices.error().message.find("config.json") != std::string::npos);
    CHECK_FALSE(report_json(root.paths, std::nullopt, kT0).ok());
  }
}

TEST_CASE("usage report: an empty window is refused") {
  TempRoot root;
  CHECK_FALSE(report_json(root.paths, kT0, kT0).ok());
  CHECK_FALSE(report_json(root.paths, kT0 + 1, kT0).ok());
  auto empty = report_json(root.paths, kT0, kT0 + 1);
  REQUIRE(empty.ok());
  CHECK((*empty)["containers"].empty());
}

TEST_CASE("usage report: times as --since and --until take them") {
  const int64_t now = kT0 + 100000;
  const auto at = [&](const char* text) {
    auto time = parse_time(text, now);
    INFO(text << ": " << (time.ok() ? std::string() : time.error().message));
    REQUIRE(time.ok());
    return *time;
  };
  CHECK(at("2026-12-07T10:00:00Z") == kT0);
  CHECK(at("2026-12-07T10:00:00.999999999Z") == kT0);
  CHECK(at("2026-12-07T12:30:00+02:30") == kT0);
  CHECK(at("2026-12-07T09:00:00-01:00") == kT0);
  CHECK(at("2026-12-07") == kT0 - 10 * 3600);
  CHECK(at("1796637600") == kT0);
  CHECK(at("1796637600.75") == kT0);
  CHECK(at("10m") == now - 600);
  CHECK(at("1h30m") == now - 5400);
  CHECK(at("1.5h") == now - 5400);
  CHECK(at("90s") == now - 90);
  CHECK(at("1m30s500ms") == now - 91);
  CHECK(at("10") == 10);  // digits alone are Unix seconds, not a duration
  for (const char* bad : {"", "yesterday", "10x", "m", "1h30", "-10m", "2026-12-07T10:00:00",
                          "2026-12-07T10:00:00+2", "2026-12-07T10:00:00Zjunk", "1.2.3s", "12.5.3"}) {
    INFO(bad);
    CHECK_FALSE(parse_time(bad, now).ok());
  }
  CHECK(rfc3339(kT0) == "2026-12-07T10:00:00Z");
}
