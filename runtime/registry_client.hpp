// A client of one registry (the distribution API v2, as Docker Hub and Debian's
// docker-registry speak it): the authentication dance, retries with backoff, and the
// registry's own error messages. Safe to use from several threads at once: each
// request takes an idle libcurl handle, and tokens are shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/registry_auth.hpp"
#include "runtime/registry_http.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// A normalised reference taken apart: "docker.io", "library/busybox", "latest", "".
struct ReferenceParts {
  std::string domain, repository, tag, digest;
  [[nodiscard]] std::string name() const { return domain + "/" + repository; }
  // The tag, else the digest: what a manifest is fetched by.
  [[nodiscard]] std::string manifest_reference() const { return digest.empty() ? tag : digest; }
};
Result<ReferenceParts> parse_reference(const std::string& reference);

struct RegistryOptions {
  std::vector<std::string> insecure;  // hosts (with port) spoken to over plain HTTP
  // Used instead of config.json's (login checks the credentials it is given).
  std::optional<auth::Credentials> credentials;
  int max_attempts = 4;  // per request, for transient failures, 429 and 5xx
  // Directories of per-registry CAs, as Docker's /etc/docker/certs.d: a registry
  // HOST[:PORT] whose DIR/HOST[:PORT]/ca.crt exists is trusted through that file (for
  // it and its token server) instead of the system's CAs. The first match wins.
  std::vector<std::string> certs_dirs;
};

// The options the state directory and environment give: `insecure` (--insecure-registry),
// then $HYPER_INSECURE_REGISTRIES (comma-separated), then <root>/config.json's
// {"insecure-registries": [...]}, as Docker's daemon.json has it; certs.d directories.
Result<RegistryOptions> configured_registry_options(const Paths& paths, const std::vector<std::string>& insecure);

class RegistryClient {
 public:
  // `domain` as a reference names it ("docker.io", "localhost:5000").
  static Result<std::unique_ptr<RegistryClient>> create(const std::string& domain, RegistryOptions options);

  // A request to the registry's API; `path` starts with "/v2/". `scopes` are the token
  // scopes it needs ("repository:library/busybox:pull"). Retries transient failures,
  // answers challenges. Any response status is returned; see `check`.
  Result<http::Response> send(http::Request request, const std::vector<std::string>& scopes);
  // An error for a non-2xx response (besides `also_ok`), with the registry's message.
  [[nodiscard]] static Status check(const http::Response& response, const std::string& what, long also_ok = 0);

  // GET /v2/ with credentials, as `login` needs: fails unless they are accepted.
  Status verify_login();

  [[nodiscard]] std::string url(const std::string& path) const { return base_url_ + path; }
  // An upload's Location may be relative to the registry.
  [[nodiscard]] std::string absolute(const std::string& location) const;
  [[nodiscard]] const std::string& domain() const { return domain_; }

 private:
  RegistryClient(std::string domain, std::string base_url, RegistryOptions options)
      : domain_(std::move(domain)), base_url_(std::move(base_url)), options_(std::move(options)) {}

  struct Lease;
  Result<Lease> lease();
  Result<std::string> authorization(const std::vector<std::string>& scopes);
  Status answer_challenge(const http::Response& response, const std::vector<std::string>& scopes);
  Result<auth::Token> fetch_token(const auth::Challenge& challenge, const std::vector<std::string>& scopes);
  Result<std::optional<auth::Credentials>> credentials();

  std::string domain_, base_url_;
  RegistryOptions options_;
  std::string ca_file_;  // from certs_dirs, or empty
  std::mutex mutex_;
  std::vector<http::Client> idle_;
  std::optional<std::optional<auth::Credentials>> credentials_;  // loaded once
  bool basic_ = false;                                            // the registry asked for Basic
  struct CachedToken {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, CachedToken> tokens_;  // by the joined scopes
};

}  // namespace hyper::runtime
