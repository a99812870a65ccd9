#include "runtime/dockerfile_words.hpp"

#include <cctype>
#include <utility>

namespace hyper::runtime::dockerfile {
namespace {

Error invalid(const std::string& message) { return make_error(Errc::invalid_argument, message); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0; }

}  // namespace

Result<std::string> WordReader::word(std::string_view text) {
  auto out = HYPER_TRY(run(text, false));
  return out.empty() ? std::string() : out.front();
}

Result<std::vector<std::string>> WordReader::run(std::string_view text, bool split) {
  std::vector<std::string> out;
  std::string current;
  bool in_word = false;
  for (size_t at = 0; at < text.size();) {
    const char c = text[at];
    if (split && is_space(c)) {
      if (in_word) out.push_back(std::exchange(current, {}));
      in_word = false;
      ++at;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const size_t end = text.find('\'', at + 1);
      if (end == std::string_view::npos) return invalid("unmatched single quote");
      current.append(text.substr(at + 1, end - at - 1));
      at = end + 1;
    } else if (c == '"') {
      HYPER_CHECK(double_quoted(text, at, current));
    } else if (c == '\\' && at + 1 < text.size()) {
      current += text[at + 1];
      at += 2;
    } else if (c == '$') {
      current += HYPER_TRY(expand(text, at));
    } else {
      current += c;
      ++at;
    }
  }
  if (in_word) out.push_back(std::move(current));
  return out;
}

// From the opening quote at `at` to past the closing one; inside, a backslash escapes
// only what the shell lets it escape there.
Status WordReader::double_quoted(std::string_view text, size_t& at, std::string& out) {
  for (++at; at < text.size();) {
    const char c = text[at];
    if (c == '"') {
      ++at;
      return {};
    }
    if (c == '\\' && at + 1 < text.size() && std::string_view("\"\\$`").find(text[at + 1]) != std::string_view::npos) {
      out += text[at + 1];
      at += 2;
    } else if (c == '$') {
      out += HYPER_TRY(expand(text, at));
    } else {
      out += c;
      ++at;
    }
  }
  return invalid("unmatched double quote");
}

// `at` is on a '$'; moves past the variable. A '$' that starts no variable is itself.
Result<std::string> WordReader::expand(std::string_view text, size_t& at) {
  if (at + 1 < text.size() && text[at + 1] == '{') {
    int depth = 0;
    for (size_t end = at + 1; end < text.size(); ++end) {
      if (text[end] == '{') ++depth;
      if (text[end] == '}' && --depth == 0) {
        const auto inner = text.substr(at + 2, end - at - 2);
        at = end + 1;
        return expand_braced(inner);
      }
    }
    return invalid("missing '}' in " + std::string(text.substr(at)));
  }
  size_t end = at + 1;
  if (end >= text.size() || !is_name_start(text[end])) {
    ++at;
    return std::string("$");
  }
  while (end < text.size() && is_name_char(text[end])) ++end;
  const auto name = text.substr(at + 1, end - at - 1);
  at = end;
  return lookup_(name).value_or("");
}

// NAME, NAME:-word, NAME-word, NAME:+word, NAME+word.
Result<std::string> WordReader::expand_braced(std::string_view inner) {
  size_t end = 0;
  if (!inner.empty() && is_name_start(inner[0]))
    while (end < inner.size() && is_name_char(inner[end])) ++end;
  if (end == 0) return invalid("bad substitution: ${" + std::string(inner) + "}");
  const auto value = lookup_(inner.substr(0, end));
  auto modifier = inner.substr(end);
  if (modifier.empty()) return value.value_or("");
  const bool colon = modifier.front() == ':';
  if (colon) modifier.remove_prefix(1);
  if (modifier.empty() || (modifier.front() != '-' && modifier.front() != '+'))
    return invalid("unsupported substitution: ${" + std::string(inner) + "}");
  // With ':' an empty value counts as unset.
  const bool set = value.has_value() && !(colon && value->empty());
  const bool use_word = modifier.front() == '-' ? !set : set;
  if (!use_word) return modifier.front() == '-' ? *value : std::string();
  return word(modifier.substr(1));
}

}  // namespace hyper::runtime::dockerfile
