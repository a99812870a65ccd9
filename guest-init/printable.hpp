// Text from images, configuration or the kernel shown in error messages: bounded in
// length and without control characters, so a hostile value cannot flood or forge output.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hyper::guest {

inline constexpr size_t kMaxShownChars = 64;

// Printable ASCII is kept; other bytes, backslash and double quote become \xNN. The
// result has at most `max_chars` characters, then "..." if the text was cut.
[[nodiscard]] std::string printable(std::string_view text, size_t max_chars = kMaxShownChars);

// printable() between double quotes.
[[nodiscard]] std::string quoted(std::string_view text, size_t max_chars = kMaxShownChars);

}  // namespace hyper::guest
