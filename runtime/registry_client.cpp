#include "runtime/registry_client.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>
#include <thread>

#include "runtime/image_blobs.hpp"
#include "runtime/image_store.hpp"

namespace hyper::runtime {
namespace {

using Json = nlohmann::json;

constexpr auto kFirstBackoff = std::chrono::milliseconds(250);
constexpr int kMaxRetryAfterSeconds = 30;

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

bool is_retryable_status(long status) { return status == 429 || status == 500 || status == 502 || status == 503 || status == 504; }

// Retry-After in seconds (an HTTP date is rare from registries and treated as absent).
std::optional<std::chrono::milliseconds> retry_after(const http::Response& response) {
  const std::string value = response.header("retry-after");
  if (value.empty() || value.size() > 6 || !std::all_of(value.begin(), value.end(), ::isdigit)) return std::nullopt;
  return std::chrono::milliseconds(std::min(std::stoi(value), kMaxRetryAfterSeconds) * 1000);
}

std::chrono::milliseconds backoff(int attempt) {
  thread_local std::minstd_rand random(std::random_device{}());
  const auto base = kFirstBackoff * (1 << std::min(attempt, 6));
  return base + std::chrono::milliseconds(random() % static_cast<unsigned>(base.count() / 2 + 1));
}

// "MANIFEST_UNKNOWN: manifest unknown; ..." from the registry's error document, or what a
// token server says, or the start of a plain-text body.
std::string registry_message(const http::Response& response) {
  const Json doc = Json::parse(response.body, nullptr, false);
  std::vector<std::string> parts;
  if (doc.is_object()) {
    if (const auto errors = doc.find("errors"); errors != doc.end() && errors->is_array()) {
      for (const auto& error : *errors) {
        if (!error.is_object()) continue;
        std::string part;
        if (const auto code = error.find("code"); code != error.end() && code->is_string()) part = code->get<std::string>();
        if (const auto text = error.find("message"); text != error.end() && text->is_string())
          part += (part.empty() ? "" : ": ") + text->get<std::string>();
        if (!part.empty()) parts.push_back(part);
      }
    }
    for (const char* key : {"details", "detail", "message", "error"})
      if (const auto text = doc.find(key); parts.empty() && text != doc.end() && text->is_string())
        parts.push_back(text->get<std::string>());
  }
  if (parts.empty() && !response.body.empty() && response.body.front() != '<') {
    std::string text = response.body.substr(0, 200);
    std::replace(text.begin(), text.end(), '\n', ' ');
    while (!text.empty() && text.back() == ' ') text.pop_back();
    if (!text.empty()) parts.push_back(text);
  }
  return join(parts, "; ");
}

const char* reason(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

}  // namespace

Result<ReferenceParts> parse_reference(const std::string& reference) {
  const std::string normalized = HYPER_TRY(normalize_reference(reference));
  ReferenceParts parts;
  std::string name = normalized;
  if (const size_t at = name.find('@'); at != std::string::npos) {
    parts.digest = name.substr(at + 1);
    name.resize(at);
  }
  if (const size_t colon = name.rfind(':'); colon != std::string::npos && colon > name.rfind('/')) {
    parts.tag = name.substr(colon + 1);
    name.resize(colon);
  }
  const size_t slash = name.find('/');
  parts.domain = name.substr(0, slash);
  parts.repository = name.substr(slash + 1);
  return parts;
}

struct RegistryClient::Lease {
  RegistryClient* owner;
  std::optional<http::Client> client;
  Lease(RegistryClient* o, http::Client c) : owner(o), client(std::move(c)) {}
  Lease(Lease&& other) noexcept : owner(other.owner), client(std::move(other.client)) { other.client.reset(); }
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (!client) return;
    const std::lock_guard lock(owner->mutex_);
    owner->idle_.push_back(std::move(*client));
  }
};

Result<std::unique_ptr<RegistryClient>> RegistryClient::create(const std::string& domain, RegistryOptions options) {
  const bool insecure = std::find(options.insecure.begin(), options.insecure.end(), domain) != options.insecure.end();
  // Docker Hub's API lives on its own host.
  const std::string host = domain == "docker.io" ? "registry-1.docker.io" : domain;
  std::string ca_file;
  for (const auto& dir : options.certs_dirs) {
    const std::string candidate = dir + "/" + domain + "/ca.crt";
    if (::access(candidate.c_str(), R_OK) == 0) {
      ca_file = candidate;
      break;
    }
  }
  auto client = std::unique_ptr<RegistryClient>(
      new RegistryClient(domain, (insecure ? "http://" : "https://") + host, std::move(options)));
  client->ca_file_ = std::move(ca_file);
  return client;
}

std::string RegistryClient::absolute(const std::string& location) const {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) return location;
  return base_url_ + (location.empty() || location.front() != '/' ? "/" : "") + location;
}

Result<RegistryClient::Lease> RegistryClient::lease() {
  {
    const std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      http::Client client = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(client));
    }
  }
  return Lease(this, HYPER_TRY(http::Client::create()));
}

Result<std::optional<auth::Credentials>> RegistryClient::credentials() {
  const std::lock_guard lock(mutex_);
  if (!credentials_) {
    if (options_.credentials) {
      credentials_ = options_.credentials;
    } else {
      credentials_ = HYPER_TRY(auth::load_credentials(domain_));
    }
  }
  return *credentials_;
}

Result<std::string> RegistryClient::authorization(const std::vector<std::string>& scopes) {
  const auto creds = HYPER_TRY(credentials());
  const std::lock_guard lock(mutex_);
  if (const auto it = tokens_.find(join(scopes, " ")); it != tokens_.end()) {
    if (std::chrono::steady_clock::now() < it->second.expires) return "Authorization: Bearer " + it->second.value;
    tokens_.erase(it);
  }
  if (basic_ && creds) return "Authorization: Basic " + auth::base64_encode(creds->username + ":" + creds->password);
  return std::string();
}

Result<auth::Token> RegistryClient::fetch_token(const auth::Challenge& challenge, const std::vector<std::string>& scopes) {
  const auto realm = challenge.params.find("realm");
  if (realm == challenge.params.end() || realm->second.empty())
    return make_error(Errc::io, domain_ + ": the registry's Bearer challenge names no realm");
  if (realm->second.rfind("http://", 0) != 0 && realm->second.rfind("https://", 0) != 0)
    return make_error(Errc::io, domain_ + ": the token realm is not an http(s) URL: " + realm->second);
  std::string url = realm->second + (realm->second.find('?') == std::string::npos ? "?" : "&");
  std::vector<std::string> query;
  if (const auto service = challenge.params.find("service"); service != challenge.params.end())
    query.push_back("service=" + http::url_escape(service->second));
  std::vector<std::string> wanted = scopes;
  if (const auto scope = challenge.params.find("scope"); wanted.empty() && scope != challenge.params.end())
    wanted.push_back(scope->second);
  for (const auto& scope : wanted) query.push_back("scope=" + http::url_escape(scope));
  http::Request request;
  const auto creds = HYPER_TRY(credentials());
  if (creds) {
    query.push_back("account=" + http::url_escape(creds->username));
    request.headers.push_back("Authorization: Basic " + auth::base64_encode(creds->username + ":" + creds->password));
  }
  request.url = url + join(query, "&");
  request.ca_file = ca_file_;
  http::Response response;
  for (int attempt = 0;; ++attempt) {
    auto client = HYPER_TRY(lease());
    bool transient = false;
    auto sent = client.client->perform(request, &transient);
    const bool again = attempt + 1 < options_.max_attempts &&
                       (sent.ok() ? is_retryable_status(sent->status) : transient);
    if (!again) {
      if (!sent.ok()) return sent.error();
      response = std::move(*sent);
      break;
    }
    std::this_thread::sleep_for(backoff(attempt));
  }
  if (response.status != 200) {
    const std::string message = registry_message(response);
    return make_error(response.status == 401 || response.status == 403 ? Errc::permission_denied : Errc::io,
                      "unauthorized: the token server " + realm->second + " answered " + std::to_string(response.status) +
                          (message.empty() ? "" : ": " + message) +
                          (creds ? "" : " (no credentials for " + domain_ + ": hyper login " + domain_ + ")"));
  }
  return auth::parse_token_response(response.body);
}

Status RegistryClient::answer_challenge(const http::Response& response, const std::vector<std::string>& scopes) {
  const std::string header = response.header("www-authenticate");
  if (header.empty()) return {};  // nothing to answer: the 401 stands
  const auto challenges = HYPER_TRY(auth::parse_www_authenticate(header));
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "bearer") {
      const auto token = HYPER_TRY(fetch_token(challenge, scopes));
      const std::lock_guard lock(mutex_);
      // Renew a little early, so no request leaves with a token about to expire.
      tokens_[join(scopes, " ")] = {token.value, std::chrono::steady_clock::now() +
                                                     std::chrono::seconds(std::max(token.expires_in - 10, 5))};
      return {};
    }
  }
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "basic") {
      const auto creds = HYPER_TRY(credentials());
      if (!creds)
        return make_error(Errc::permission_denied,
                          "unauthorized: " + domain_ + " needs credentials: hyper login " + domain_);
      const std::lock_guard lock(mutex_);
      basic_ = true;
      return {};
    }
  }
  return make_error(Errc::unsupported, domain_ + ": unsupported authentication scheme: " + header);
}

Result<http::Response> RegistryClient::send(http::Request request, const std::vector<std::string>& scopes) {
  request.url = url(request.url);
  request.ca_file = ca_file_;
  const size_t plain_headers = request.headers.size();
  bool answered = false;
  for (int attempt = 0;;) {
    request.headers.resize(plain_headers);
    if (const auto header = HYPER_TRY(authorization(scopes)); !header.empty()) request.headers.push_back(header);
    auto client = HYPER_TRY(lease());
    bool transient = false;
    auto sent = client.client->perform(request, &transient);
    if (!sent.ok()) {
      if (transient && ++attempt < options_.max_attempts) {
        std::this_thread::sleep_for(backoff(attempt - 1));
        continue;
      }
      Error error = sent.error();
      if (base_url_.rfind("https://", 0) == 0 &&
          (error.message.find("SSL") != std::string::npos || error.message.find("TLS") != std::string::npos))
        error.message += " (a registry without TLS needs --insecure-registry " + domain_ +
                         "; one with its own CA needs it in <root>/certs.d/" + domain_ + "/ca.crt)";
      return error;
    }
    if (sent->status == 401 && !answered) {
      answered = true;
      HYPER_CHECK(answer_challenge(*sent, scopes));
      continue;
    }
    if (is_retryable_status(sent->status) && sent->sink_bytes == 0 && ++attempt < options_.max_attempts) {
      std::this_thread::sleep_for(retry_after(*sent).value_or(backoff(attempt - 1)));
      continue;
    }
    return std::move(*sent);
  }
}

Status RegistryClient::check(const http::Response& response, const std::string& what, long also_ok) {
  if ((response.status >= 200 && response.status < 300) || response.status == also_ok) return {};
  const std::string message = registry_message(response);
  std::string text = what + ": " + std::to_string(response.status);
  if (*reason(response.status) != '\0') text += std::string(" ") + reason(response.status);
  if (!message.empty()) text += ": " + message;
  const Errc code = response.status == 401 || response.status == 403 ? Errc::permission_denied
                    : response.status == 404                          ? Errc::not_found
                                                                      : Errc::io;
  return make_error(code, text);
}

Status RegistryClient::verify_login() {
  http::Request request;
  request.url = "/v2/";
  const auto response = HYPER_TRY(send(request, {}));
  return check(response, "login to " + domain_);
}

Result<RegistryOptions> configured_registry_options(const Paths& paths, const std::vector<std::string>& insecure) {
  RegistryOptions options;
  options.insecure = insecure;
  if (const char* env = std::getenv("HYPER_INSECURE_REGISTRIES"); env != nullptr)
    for (const auto host : blobs::split(env, ','))
      if (!host.empty()) options.insecure.emplace_back(host);
  options.certs_dirs = {(paths.root / "certs.d").string(), "/etc/docker/certs.d"};
  const auto config_path = paths.root / "config.json";
  if (::access(config_path.c_str(), F_OK) == 0) {
    const auto text = HYPER_TRY(blobs::read_small_file(config_path, 1 << 20));
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
      return make_error(Errc::invalid_argument, config_path.string() + ": not a JSON object");
    if (const auto it = doc.find("insecure-registries"); it != doc.end()) {
      if (!it->is_array()) return make_error(Errc::invalid_argument, config_path.string() + ": \"insecure-registries\" is not a list");
      for (const auto& host : *it)
        if (host.is_string()) options.insecure.push_back(host.get<std::string>());
    }
  }
  return options;
}

}  // namespace hyper::runtime
