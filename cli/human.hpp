// How sizes and times read in Docker's tables: "4.52MB", "3 hours ago".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/api/human_time.hpp"

namespace hyper::cli {

// Three significant digits and decimal units: "4.52MB", "812kB", "17B".
std::string human_size(uint64_t bytes);
using runtime::api::ago;
using runtime::api::human_duration;
using runtime::api::seconds_since;

bool utf8_continuation(char c);
// Columns, not bytes: what a terminal shows for UTF-8 text of narrow characters.
size_t display_width(const std::string& text);

using TableRow = std::vector<std::string>;
// Columns padded to their widest cell plus a gap, as Docker's tabwriter does.
void print_table(const std::vector<TableRow>& rows);

}  // namespace hyper::cli
