// Usage reports: the ledger's runs (runtime/usage/ledger.hpp) summed per container over
// a window of time, at one-second granularity, and priced from <root>/config.json:
//
//   {"usage": {"price_per_vcpu_second": 0.000011, "price_per_gib_second": 0.0000012, "currency": "USD"}}
//
// `hyper usage` prints them; hyperd serves the same JSON (report_json) at /hyper/usage:
//
//   {"since": "2026-12-07T10:00:00Z" or null, "until": "2026-12-07T11:00:00Z",
//    "currency": "USD", "price_per_vcpu_second": 0.000011, "price_per_gib_second": 0.0000012,
//    "containers": [{"id", "name", "vcpus", "memory_mib", "runs", "seconds", "vcpu_seconds",
//                    "gib_seconds", "cost"}, ...],
//    "total": {"seconds", "vcpu_seconds", "gib_seconds", "cost"}}
//
// Containers come in the order of their first run in the window; those that did not run
// in it are left out. A GiB is 1024 MiB.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/paths.hpp"
#include "runtime/usage/ledger.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::usage {

struct Prices {
  double per_vcpu_second = 0, per_gib_second = 0;
  std::string currency;
};

// Absent file, section or key: 0, and no currency. A file that is not JSON, or a "usage"
// section with a key it does not know (a misspelt price would silently be 0) or a price
// that is not a number >= 0, is an error that says which.
Result<Prices> read_prices(const Paths& paths);

// [since, until) in Unix seconds; no `since`: from the ledger's first run.
struct Window {
  std::optional<int64_t> since;
  int64_t until = 0;
};

// The report (above) of `runs` over `window`.
nlohmann::json usage_json(const std::vector<Run>& runs, const Window& window, const Prices& prices);
// The report of <root>/usage over [since, until), priced; refuses an empty window.
Result<nlohmann::json> report_json(const Paths& paths, std::optional<int64_t> since, int64_t until);

// A time as `--since` and `--until` take it, in Unix seconds: RFC 3339
// ("2026-12-07T10:00:00Z", "2026-12-07T12:00:00.5+02:00", or a date, "2026-12-07", at
// 00:00 UTC), Unix seconds ("1796637600", a fraction allowed), or, as Docker takes it, a
// Go duration before `now` ("10m", "1h30m", "1.5h", "90s").
Result<int64_t> parse_time(std::string_view text, int64_t now);
// "2026-12-07T10:00:00Z".
std::string rfc3339(int64_t unix_seconds);
int64_t unix_now();

}  // namespace hyper::runtime::usage
