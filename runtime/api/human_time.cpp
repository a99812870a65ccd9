#include "runtime/api/human_time.hpp"

#include <time.h>

#include <cmath>
#include <cstdlib>

namespace hyper::runtime::api {

std::optional<double> seconds_since(const std::string& rfc3339) {
  tm utc{};
  const char* rest = ::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &utc);
  if (rest == nullptr) return std::nullopt;
  double then = static_cast<double>(::timegm(&utc));
  if (*rest == '.') then += std::strtod(rest, nullptr);
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const double elapsed = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9 - then;
  return elapsed > 0 ? elapsed : 0.0;
}

// Docker's wording for a duration: "Less than a second", "5 seconds", "About a minute",
// "3 hours", "2 weeks".
std::string human_duration(double seconds) {
  auto count = [](long n, const char* unit) { return std::to_string(n) + " " + unit; };
  const auto whole = static_cast<long>(seconds);
  if (whole < 1) return "Less than a second";
  if (whole == 1) return "1 second";
  if (whole < 60) return count(whole, "seconds");
  const long minutes = whole / 60;
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return count(minutes, "minutes");
  const auto hours = static_cast<long>(std::lround(seconds / 3600));
  if (hours == 1) return "About an hour";
  if (hours < 48) return count(hours, "hours");
  if (hours < 24 * 7 * 2) return count(hours / 24, "days");
  if (hours < 24 * 30 * 2) return count(hours / 24 / 7, "weeks");
  if (hours < 24 * 365 * 2) return count(hours / 24 / 30, "months");
  return count(hours / 24 / 365, "years");
}

std::string ago(const std::string& rfc3339) {
  const auto seconds = seconds_since(rfc3339);
  return seconds ? human_duration(*seconds) + " ago" : "";
}

}  // namespace hyper::runtime::api
