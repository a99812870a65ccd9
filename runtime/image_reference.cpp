// Image references with Docker's normalisation and the distribution project's grammar:
//
//   reference      := name [ ":" tag ] [ "@" digest ]
//   name           := [ domain "/" ] component ( "/" component )*
//   domain         := host-part ( "." host-part )* [ ":" port ]
//   component      := alnum ( separator alnum )*     alnum := [a-z0-9]+
//   separator      := [._] | "__" | "-"+
//   tag            := [\w][\w.-]{0,127}
#include <string>
#include <string_view>
#include <vector>

#include "runtime/image_blobs.hpp"
#include "runtime/image_store.hpp"

namespace hyper::runtime {
namespace {

constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kOfficialPrefix = "library/";
constexpr size_t kMaxNameLength = 255;

Error invalid(const std::string& why = "") {
  return make_error(Errc::invalid_argument, "invalid reference format" + (why.empty() ? "" : ": " + why));
}

bool is_alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_alnum_lower(c) || (c >= 'A' && c <= 'Z'); }
bool is_word(char c) { return is_alnum(c) || c == '_'; }
bool has_upper(std::string_view text) {
  for (const char c : text)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128 || !is_word(tag[0])) return false;
  for (const char c : tag)
    if (!is_word(c) && c != '.' && c != '-') return false;
  return true;
}

// alnum ( separator alnum )*, separators being one of '.', '_', "__" or a run of '-'.
bool valid_component(std::string_view component) {
  size_t i = 0;
  const auto alnum_run = [&] {
    const size_t start = i;
    while (i < component.size() && is_alnum_lower(component[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < component.size()) {
    const char c = component[i];
    if (c == '.') {
      ++i;
    } else if (c == '_') {
      i += (i + 1 < component.size() && component[i + 1] == '_') ? 2 : 1;
    } else if (c == '-') {
      while (i < component.size() && component[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

bool valid_host_part(std::string_view part) {
  if (part.empty() || !is_alnum(part.front()) || !is_alnum(part.back())) return false;
  for (const char c : part)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

bool valid_domain(std::string_view domain) {
  const size_t colon = domain.find(':');
  if (colon != std::string_view::npos) {
    const std::string_view port = domain.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (const char c : port)
      if (c < '0' || c > '9') return false;
    domain = domain.substr(0, colon);
  }
  for (const auto part : blobs::split(domain, '.'))
    if (!valid_host_part(part)) return false;
  return true;
}

// Docker's rule: the first component names a registry when it could not be a Docker Hub
// user: it has a '.' or ':', is "localhost", or has capitals.
bool is_domain(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos || first == "localhost" || has_upper(first);
}

}  // namespace

Result<std::string> normalize_reference(const std::string& reference) {
  if (reference.empty()) return invalid();
  if (reference.size() == 64 && blobs::is_lower_hex(reference))
    return make_error(Errc::invalid_argument,
                      "invalid repository name (" + reference + "), cannot specify 64-byte hexadecimal strings");
  std::string_view rest = reference;
  std::string digest;
  if (const size_t at = rest.find('@'); at != std::string_view::npos) {
    digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!blobs::is_sha256_digest(digest)) return invalid("bad digest \"" + digest + "\"");
  }
  std::string tag;
  const size_t last_slash = rest.rfind('/');
  if (const size_t colon = rest.rfind(':');
      colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!valid_tag(tag)) return invalid();
  }
  if (rest.empty()) return invalid();

  std::string domain(kDefaultDomain);
  std::string path(rest);
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos && is_domain(rest.substr(0, slash))) {
    domain = std::string(rest.substr(0, slash));
    path = std::string(rest.substr(slash + 1));
    if (domain == "index.docker.io") domain = std::string(kDefaultDomain);
  }
  if (domain == kDefaultDomain && path.find('/') == std::string::npos) path = std::string(kOfficialPrefix) + path;
  if (has_upper(path)) return invalid("repository name must be lowercase");
  if (!valid_domain(domain)) return invalid();
  for (const auto component : blobs::split(path, '/'))
    if (!valid_component(component)) return invalid();
  std::string name = domain + "/" + path;
  if (name.size() > kMaxNameLength)
    return invalid("repository name must not be more than " + std::to_string(kMaxNameLength) + " characters");

  if (!tag.empty()) name += ":" + tag;
  if (!digest.empty()) return name + "@" + digest;
  if (tag.empty()) name += ":latest";
  return name;
}

std::string familiar_name(const std::string& normalized) {
  const std::string hub = std::string(kDefaultDomain) + "/";
  if (normalized.compare(0, hub.size(), hub) != 0) return normalized;
  std::string rest = normalized.substr(hub.size());
  if (rest.compare(0, kOfficialPrefix.size(), kOfficialPrefix) == 0) {
    const std::string official = rest.substr(kOfficialPrefix.size());
    // "library/a/b" is a user's repository that merely starts with "library".
    const std::string repository = official.substr(0, official.find_first_of(":@"));
    if (repository.find('/') == std::string::npos) return official;
  }
  return rest;
}

}  // namespace hyper::runtime
