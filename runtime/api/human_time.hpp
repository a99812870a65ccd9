// How times read in Docker's output ("Up 3 hours", "Exited (0) 5 seconds ago"): the CLI's
// tables and the Engine API's container list say the same.
#pragma once

#include <optional>
#include <string>

namespace hyper::runtime::api {

// Seconds from an RFC 3339 UTC time ("2024-05-01T12:00:00.5Z") to now.
std::optional<double> seconds_since(const std::string& rfc3339);
// "Less than a second", "5 seconds", "About a minute", "3 hours", "2 weeks".
std::string human_duration(double seconds);
// "3 hours ago"; empty for a time that does not parse.
std::string ago(const std::string& rfc3339);

}  // namespace hyper::runtime::api
