// Dockerfile words, read the way a Dockerfile's instruction arguments are: split at
// unquoted whitespace, quotes ('…', "…") grouping and removed, backslashes escaping (in
// double quotes only before " \ $ `), and $NAME, ${NAME}, ${NAME:-word}, ${NAME-word},
// ${NAME:+word} and ${NAME+word} expanded (not inside single quotes). A '$' that starts
// no variable stays. Errors are Errc::invalid_argument.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::dockerfile {

// A variable's value; nullopt when it is not set.
using Lookup = std::function<std::optional<std::string>(std::string_view name)>;

class WordReader {
 public:
  explicit WordReader(Lookup lookup) : lookup_(std::move(lookup)) {}

  Result<std::vector<std::string>> words(std::string_view text) { return run(text, true); }
  // The whole text as one word: its whitespace is kept.
  Result<std::string> word(std::string_view text);

 private:
  Result<std::vector<std::string>> run(std::string_view text, bool split);
  Status double_quoted(std::string_view text, size_t& at, std::string& out);
  Result<std::string> expand(std::string_view text, size_t& at);
  Result<std::string> expand_braced(std::string_view inner);

  Lookup lookup_;
};

}  // namespace hyper::runtime::dockerfile
