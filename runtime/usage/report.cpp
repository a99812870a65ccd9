#include "runtime/usage/report.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "runtime/json_record.hpp"

namespace hyper::runtime::usage {
namespace {

using Json = nlohmann::json;

constexpr double kMibPerGib = 1024.0;

struct Totals {
  uint64_t seconds = 0, vcpu_seconds = 0, mib_seconds = 0;

  void add(const Run& run, uint64_t seconds_in_window) {
    seconds += seconds_in_window;
    vcpu_seconds += seconds_in_window * run.vcpus;
    mib_seconds += seconds_in_window * run.memory_mib;
  }
  // Summed in MiB-seconds, which are whole: no rounding accumulates over many runs.
  [[nodiscard]] double gib_seconds() const { return static_cast<double>(mib_seconds) / kMibPerGib; }
  [[nodiscard]] double cost(const Prices& prices) const {
    return static_cast<double>(vcpu_seconds) * prices.per_vcpu_second + gib_seconds() * prices.per_gib_second;
  }
  [[nodiscard]] Json json(const Prices& prices) const {
    return {{"seconds", seconds}, {"vcpu_seconds", vcpu_seconds}, {"gib_seconds", gib_seconds()}, {"cost", cost(prices)}};
  }
};

struct ContainerUsage {
  const Run* last = nullptr;  // its latest run in the window: the name, vCPUs and memory shown
  uint64_t runs = 0;
  Totals totals;
};

// The seconds of [start, start + seconds) that fall in the window.
uint64_t seconds_in(const Run& run, const Window& window) {
  const int64_t end = run.start + static_cast<int64_t>(run.seconds);
  const int64_t from = std::max(run.start, window.since.value_or(run.start));
  const int64_t to = std::min(end, window.until);
  return to > from ? static_cast<uint64_t>(to - from) : 0;
}

Error bad_prices(const Paths& paths, const std::string& why) {
  return make_error(Errc::invalid_argument,
                    paths.config().string() + ": bad \"usage\": " + why +
                        " (expected {\"usage\": {\"price_per_vcpu_second\": N, \"price_per_gib_second\": N, "
                        "\"currency\": \"USD\"}})");
}

Result<double> price(const Paths& paths, const Json& section, const char* key) {
  if (!section.contains(key)) return 0.0;
  const Json& value = section[key];
  if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0)
    return bad_prices(paths, std::string("\"") + key + "\" is not a number >= 0");
  return value.get<double>();
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "1796637600" or "1796637600.5".
std::optional<int64_t> parse_unix(std::string_view text) {
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(text.substr(dot + 1)))) return std::nullopt;
  if (whole.size() > 18) return std::nullopt;
  return std::stoll(std::string(whole));
}

// After the seconds: an optional fraction, then "Z" or "+hh:mm"/"-hh:mm"; the zone's
// offset east of UTC, in seconds.
std::optional<int64_t> parse_zone(const char* rest) {
  if (*rest == '.') {
    const char* digits = ++rest;
    while (*rest >= '0' && *rest <= '9') ++rest;
    if (rest == digits) return std::nullopt;
  }
  if ((rest[0] == 'Z' || rest[0] == 'z') && rest[1] == '\0') return 0;
  const std::string_view zone(rest);
  if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' || !all_digits(zone.substr(1, 2)) ||
      !all_digits(zone.substr(4, 2)))
    return std::nullopt;
  const int64_t offset = std::stoll(std::string(zone.substr(1, 2))) * 3600 + std::stoll(std::string(zone.substr(4, 2))) * 60;
  return zone[0] == '+' ? offset : -offset;
}

std::optional<int64_t> parse_rfc3339(const std::string& text) {
  tm utc{};
  if (const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &utc)) {
    const auto offset = parse_zone(rest);
    if (!offset) return std::nullopt;
    return static_cast<int64_t>(::timegm(&utc)) - *offset;
  }
  utc = tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%d", &utc);
  if (rest == nullptr || *rest != '\0') return std::nullopt;
  return static_cast<int64_t>(::timegm(&utc));
}

// Go's time.ParseDuration without the sign: "1h30m", "1.5h", "90s", "300ms".
std::optional<double> parse_duration(std::string_view text) {
  static const std::map<std::string_view, double> kUnits = {{"ns", 1e-9}, {"us", 1e-6}, {"\u00b5s", 1e-6},
                                                            {"ms", 1e-3}, {"s", 1.0},   {"m", 60.0}, {"h", 3600.0}};
  if (text.empty()) return std::nullopt;
  double seconds = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t number_end = text.find_first_not_of("0123456789.", at);
    const std::string number(text.substr(at, number_end - at));
    if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1) return std::nullopt;
    at = number_end == std::string_view::npos ? text.size() : number_end;
    const size_t unit_end = std::min(text.find_first_of("0123456789.", at), text.size());
    const auto unit = kUnits.find(text.substr(at, unit_end - at));
    if (unit == kUnits.end()) return std::nullopt;
    seconds += std::strtod(number.c_str(), nullptr) * unit->second;
    at = unit_end;
  }
  return seconds;
}

}  // namespace

Result<Prices> read_prices(const Paths& paths) {
  auto text = blobs::read_small_file(paths.config(), kMaxRecordBytes);
  if (!text.ok() && text.error().code == Errc::not_found) return Prices{};
  const Json config = Json::parse(HYPER_TRY(std::move(text)), nullptr, false);
  if (config.is_discarded() || !config.is_object())
    return make_error(Errc::invalid_argument, paths.config().string() + ": not a JSON object");
  if (!config.contains("usage")) return Prices{};
  const Json& section = config["usage"];
  if (!section.is_object()) return bad_prices(paths, "not an object");
  for (const auto& [key, value] : section.items()) {
    if (key != "price_per_vcpu_second" && key != "price_per_gib_second" && key != "currency")
      return bad_prices(paths, "unknown key \"" + key + "\"");
  }
  Prices prices;
  prices.per_vcpu_second = HYPER_TRY(price(paths, section, "price_per_vcpu_second"));
  prices.per_gib_second = HYPER_TRY(price(paths, section, "price_per_gib_second"));
  if (section.contains("currency")) {
    if (!section["currency"].is_string()) return bad_prices(paths, "\"currency\" is not a string");
    prices.currency = section["currency"].get<std::string>();
  }
  return prices;
}

Json usage_json(const std::vector<Run>& runs, const Window& window, const Prices& prices) {
  std::vector<ContainerUsage> containers;
  std::map<std::string, size_t> by_id;
  Totals total;
  for (const Run& run : runs) {
    const uint64_t seconds = seconds_in(run, window);
    if (seconds == 0) continue;
    const auto [at, added] = by_id.emplace(run.container_id, containers.size());
    if (added) containers.emplace_back();
    ContainerUsage& usage = containers[at->second];
    if (usage.last == nullptr || run.start >= usage.last->start) usage.last = &run;
    ++usage.runs;
    usage.totals.add(run, seconds);
    total.add(run, seconds);
  }
  Json list = Json::array();
  for (const ContainerUsage& usage : containers) {
    Json entry = {{"id", usage.last->container_id},
                  {"name", usage.last->name},
                  {"vcpus", usage.last->vcpus},
                  {"memory_mib", usage.last->memory_mib},
                  {"runs", usage.runs}};
    entry.update(usage.totals.json(prices));
    list.push_back(std::move(entry));
  }
  return {{"since", window.since ? Json(rfc3339(*window.since)) : Json(nullptr)},
          {"until", rfc3339(window.until)},
          {"currency", prices.currency},
          {"price_per_vcpu_second", prices.per_vcpu_second},
          {"price_per_gib_second", prices.per_gib_second},
          {"containers", std::move(list)},
          {"total", total.json(prices)}};
}

Result<Json> report_json(const Paths& paths, std::optional<int64_t> since, int64_t until) {
  if (since && *since >= until)
    return make_error(Errc::invalid_argument, "the window is empty: since " + rfc3339(*since) +
                                                  " is not before until " + rfc3339(until));
  const Prices prices = HYPER_TRY(read_prices(paths));
  const std::vector<Run> runs = HYPER_TRY(read_runs(paths.usage()));
  return usage_json(runs, Window{since, until}, prices);
}

Result<int64_t> parse_time(std::string_view text, int64_t now) {
  if (auto unix_seconds = parse_unix(text)) return *unix_seconds;
  if (auto utc = parse_rfc3339(std::string(text))) return *utc;
  if (auto before = parse_duration(text)) return now - static_cast<int64_t>(std::ceil(*before));
  return make_error(Errc::invalid_argument, "invalid time \"" + std::string(text) +
                                                "\": use RFC 3339 (2026-12-07T10:00:00Z), Unix seconds, or a "
                                                "duration before now (10m, 1h30m)");
}

std::string rfc3339(int64_t unix_seconds) {
  const auto time = static_cast<time_t>(unix_seconds);
  tm utc{};
  ::gmtime_r(&time, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

int64_t unix_now() { return static_cast<int64_t>(::time(nullptr)); }

}  // namespace hyper::runtime::usage
