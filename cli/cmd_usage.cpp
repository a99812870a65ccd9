// hyper usage: what each container's runs held (vCPUs, memory) for how many seconds over a
// window of time, and what that cost, from the usage ledger (runtime/usage/). The figures
// are runtime::usage::report_json's, which hyperd serves too, so both always agree.
#include <cstdio>
#include <optional>
#include <string>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "cli/human.hpp"
#include "runtime/usage/report.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using Json = nlohmann::json;

constexpr size_t kShortId = 12;

constexpr const char* kUsage =
    "Usage: hyper usage [OPTIONS]\n\nShow the containers' metered usage and its cost\n\n"
    "      --since TIME     from TIME: RFC 3339 (2026-12-07T10:00:00Z), Unix seconds,\n"
    "                       or a duration before now (10m, 1h30m) (default: the first record)\n"
    "      --until TIME     until TIME, in the same forms (default: now)\n"
    "      --format FORMAT  table (default) or json\n";

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The last three columns, for a container and for the total.
TableRow figures(const Json& entry, const std::string& currency) {
  return {std::to_string(entry["seconds"].get<uint64_t>()), std::to_string(entry["vcpu_seconds"].get<uint64_t>()),
          fixed(entry["gib_seconds"].get<double>(), 3),
          fixed(entry["cost"].get<double>(), 6) + (currency.empty() ? "" : " " + currency)};
}

void print_report(const Json& report) {
  const std::string currency = report["currency"].get<std::string>();
  std::vector<TableRow> rows = {
      {"CONTAINER ID", "NAME", "VCPUS", "MEMORY", "SECONDS", "VCPU-SECONDS", "GIB-SECONDS", "COST"}};
  for (const Json& entry : report["containers"]) {
    TableRow row = {entry["id"].get<std::string>().substr(0, kShortId), entry["name"].get<std::string>(),
                    std::to_string(entry["vcpus"].get<uint32_t>()),
                    std::to_string(entry["memory_mib"].get<uint64_t>()) + "MiB"};
    const TableRow rest = figures(entry, currency);
    row.insert(row.end(), rest.begin(), rest.end());
    rows.push_back(std::move(row));
  }
  TableRow total = {"TOTAL", "", "", ""};
  const TableRow rest = figures(report["total"], currency);
  total.insert(total.end(), rest.begin(), rest.end());
  rows.push_back(std::move(total));
  print_table(rows);
}

Result<std::optional<int64_t>> time_flag(const po::variables_map& vm, const char* name, int64_t now) {
  if (!vm.count(name)) return std::optional<int64_t>();
  auto time = runtime::usage::parse_time(vm[name].as<std::string>(), now);
  if (!time.ok()) return make_error(Errc::invalid_argument, "--" + std::string(name) + ": " + time.error().message);
  return std::optional<int64_t>(*time);
}

}  // namespace

int cmd_usage(const GlobalOptions& global, const std::vector<std::string>& args) {
  std::string format = "table";
  po::options_description desc;
  desc.add_options()("since", po::value<std::string>())("until", po::value<std::string>())(
      "format", po::value<std::string>(&format));
  po::variables_map vm;
  auto extra = parse_command_line(args, desc, vm);
  if (!extra.ok()) return report(extra.error().message + "\nSee 'hyper usage --help'.", 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!extra->empty()) return report("\"hyper usage\" accepts no arguments.\nSee 'hyper usage --help'.", 125);
  if (format != "table" && format != "json")
    return report("--format: \"" + format + "\" is neither table nor json\nSee 'hyper usage --help'.", 125);
  const int64_t now = runtime::usage::unix_now();
  const auto since = time_flag(vm, "since", now);
  if (!since.ok()) return report(since.error().message, 125);
  const auto until = time_flag(vm, "until", now);
  if (!until.ok()) return report(until.error().message, 125);
  const auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  const auto usage = runtime::usage::report_json(*paths, *since, until->value_or(now));
  if (!usage.ok()) return report(usage.error().message, 125);
  if (format == "json") {
    std::printf("%s\n", usage->dump(4).c_str());
  } else {
    print_report(*usage);
  }
  return 0;
}

}  // namespace hyper::cli
