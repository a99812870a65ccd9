// How sizes and times read in Docker's tables: "4.52MB", "3 hours ago".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hyper::cli {

// Three significant digits and decimal units: "4.52MB", "812kB", "17B".
std::string human_size(uint64_t bytes);
// Seconds from an RFC 3339 UTC time ("2024-05-01T12:00:00.5Z") to now.
std::optional<double> seconds_since(const std::string& rfc3339);
// "Less than a second", "5 seconds", "About a minute", "3 hours", "2 weeks".
std::string human_duration(double seconds);
// "3 hours ago"; empty for a time that does not parse.
std::string ago(const std::string& rfc3339);

bool utf8_continuation(char c);
// Columns, not bytes: what a terminal shows for UTF-8 text of narrow characters.
size_t display_width(const std::string& text);

using TableRow = std::vector<std::string>;
// Columns padded to their widest cell plus a gap, as Docker's tabwriter does.
void print_table(const std::vector<TableRow>& rows);

}  // namespace hyper::cli
