#include "runtime/registry_auth.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "runtime/image_blobs.hpp"

namespace hyper::runtime::auth {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxConfigBytes = uint64_t{1} << 20;

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  void skip_spaces() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  bool done() const { return pos_ >= text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  std::string token() {
    const size_t start = pos_;
    while (pos_ < text_.size() && is_token_char(text_[pos_])) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  std::string bare_value() {
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != ' ' && text_[pos_] != '\t' && text_[pos_] != '"') ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  // A quoted-string after its opening quote; nullopt when it never closes.
  std::optional<std::string> quoted() {
    std::string out;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (c == '\\' && pos_ < text_.size()) {
        out += text_[pos_++];
      } else {
        out += c;
      }
    }
    return std::nullopt;
  }
  size_t position() const { return pos_; }
  void rewind(size_t to) { pos_ = to; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

Error bad_challenge(std::string_view header, const std::string& why) {
  return make_error(Errc::io, "malformed WWW-Authenticate header (" + why + "): " +
                                  std::string(header.substr(0, std::min<size_t>(header.size(), 200))));
}

}  // namespace

Result<std::vector<Challenge>> parse_www_authenticate(std::string_view header) {
  std::vector<Challenge> challenges;
  Scanner scan(header);
  scan.skip_spaces();
  while (!scan.done()) {
    Challenge challenge;
    challenge.scheme = lowercase(scan.token());
    if (challenge.scheme.empty()) return bad_challenge(header, "no scheme");
    scan.skip_spaces();
    // auth-params: name=value pairs separated by commas, until the next scheme.
    while (!scan.done()) {
      const size_t start = scan.position();
      std::string name = lowercase(scan.token());
      scan.skip_spaces();
      if (name.empty() || !scan.consume('=')) {
        // Not a parameter: the start of the next challenge.
        scan.rewind(start);
        break;
      }
      scan.skip_spaces();
      std::string value;
      if (scan.consume('"')) {
        auto quoted = scan.quoted();
        if (!quoted) return bad_challenge(header, "unterminated quoted string");
        value = std::move(*quoted);
      } else {
        // RFC 7235 wants a token here; registries send URLs unquoted too.
        value = scan.bare_value();
      }
      challenge.params[name] = std::move(value);
      scan.skip_spaces();
      if (!scan.consume(',')) break;
      scan.skip_spaces();
    }
    challenges.push_back(std::move(challenge));
    scan.skip_spaces();
    if (!scan.done() && !is_token_char(scan.peek())) return bad_challenge(header, "unexpected character");
  }
  if (challenges.empty()) return bad_challenge(header, "empty");
  return challenges;
}

Result<Token> parse_token_response(std::string_view body) {
  const Json doc = Json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return make_error(Errc::io, "the token server's answer is not a JSON object");
  Token token;
  for (const char* key : {"token", "access_token"}) {
    const auto it = doc.find(key);
    if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
      token.value = it->get<std::string>();
      break;
    }
  }
  if (token.value.empty()) return make_error(Errc::io, "the token server's answer has no token");
  if (const auto it = doc.find("expires_in"); it != doc.end() && it->is_number_integer()) {
    const auto seconds = it->get<int64_t>();
    token.expires_in = seconds >= 60 && seconds < 86400 * 365 ? static_cast<int>(seconds) : 60;
  }
  return token;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error(Errc::invalid_argument, "bad base64 length");
  std::string out(3 * (text.size() / 4) + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return make_error(Errc::invalid_argument, "bad base64");
  // EVP_DecodeBlock counts the padding as zero bytes; more than two '=' is not base64.
  size_t padding = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++padding;
  if (padding > 2 || static_cast<size_t>(n) < padding) return make_error(Errc::invalid_argument, "bad base64 padding");
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

Result<std::string> docker_config_path() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0')
    return std::string(dir) + "/config.json";
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return make_error(Errc::not_found, "neither $DOCKER_CONFIG nor $HOME is set");
  return std::string(home) + "/.docker/config.json";
}

std::string config_key(const std::string& registry_host) {
  return registry_host == "docker.io" ? "https://index.docker.io/v1/" : registry_host;
}

namespace {

Result<Json> read_config(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return Json::object();
  const auto text = HYPER_TRY(blobs::read_small_file(path, kMaxConfigBytes));
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return make_error(Errc::invalid_argument, path + ": not a JSON object");
  if (doc.contains("auths") && !doc["auths"].is_object())
    return make_error(Errc::invalid_argument, path + ": \"auths\" is not an object");
  return doc;
}

Status write_config(const std::string& path, const Json& doc) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return make_error(Errc::io, "create the directory of " + path + ": " + ec.message());
  const auto temp = path + ".tmp-" + HYPER_TRY(blobs::random_hex(6));
  HYPER_CHECK(blobs::write_file_synced(temp, doc.dump(1, '\t', false, Json::error_handler_t::replace) + "\n"));
  ::chmod(temp.c_str(), 0600);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const Error error = Error::from_errno("rename " + path);
    ::unlink(temp.c_str());
    return error;
  }
  return {};
}

// Docker Hub's entry may also be spelt without the scheme or path.
const Json* find_entry(const Json& auths, const std::string& registry_host) {
  for (const auto& key : {config_key(registry_host), registry_host, "https://" + registry_host,
                          "http://" + registry_host}) {
    if (const auto it = auths.find(key); it != auths.end() && it->is_object()) return &*it;
  }
  return nullptr;
}

}  // namespace

Result<std::optional<Credentials>> load_credentials(const std::string& registry_host) {
  const auto path = HYPER_TRY(docker_config_path());
  const auto doc = HYPER_TRY(read_config(path));
  if (!doc.contains("auths")) return std::optional<Credentials>();
  const Json* entry = find_entry(doc["auths"], registry_host);
  if (entry == nullptr) return std::optional<Credentials>();
  if (entry->contains("auth") && (*entry)["auth"].is_string()) {
    const auto decoded = base64_decode((*entry)["auth"].get<std::string>());
    const size_t colon = decoded.ok() ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos)
      return make_error(Errc::invalid_argument, path + ": the \"auth\" of " + registry_host + " is not base64(user:password)");
    return std::optional<Credentials>(Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)});
  }
  return std::optional<Credentials>();
}

Status store_credentials(const std::string& registry_host, const Credentials& credentials) {
  const auto path = HYPER_TRY(docker_config_path());
  auto doc = HYPER_TRY(read_config(path));
  if (!doc.contains("auths")) doc["auths"] = Json::object();
  doc["auths"][config_key(registry_host)] = Json{{"auth", base64_encode(credentials.username + ":" + credentials.password)}};
  return write_config(path, doc);
}

Result<bool> erase_credentials(const std::string& registry_host) {
  const auto path = HYPER_TRY(docker_config_path());
  auto doc = HYPER_TRY(read_config(path));
  if (!doc.contains("auths")) return false;
  bool erased = false;
  for (const auto& key : {config_key(registry_host), registry_host, "https://" + registry_host, "http://" + registry_host})
    erased = doc["auths"].erase(key) > 0 || erased;
  if (erased) HYPER_CHECK(write_config(path, doc));
  return erased;
}

}  // namespace hyper::runtime::auth
