#include "guest-init/printable.hpp"

namespace hyper::guest {

std::string printable(std::string_view text, size_t max_chars) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const bool plain = byte >= 0x20 && byte < 0x7f && byte != '\\' && byte != '"';
    if (out.size() + (plain ? 1 : 4) > max_chars) {
      out += "...";
      break;
    }
    if (plain) {
      out += static_cast<char>(byte);
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

std::string quoted(std::string_view text, size_t max_chars) {
  return '"' + printable(text, max_chars) + '"';
}

}  // namespace hyper::guest
