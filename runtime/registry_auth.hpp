// Registry authentication: the WWW-Authenticate challenges registries answer 401 with,
// the Bearer token flow's response, and the credentials `docker login` and `hyper login`
// keep in ~/.docker/config.json. Everything that parses bytes from the network or from a
// file here checks every type and never throws.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::auth {

struct Challenge {
  std::string scheme;                         // lowercase: "bearer", "basic"
  std::map<std::string, std::string> params;  // lowercase names: realm, service, scope, error
};

// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`.
// Several challenges may be given, comma-separated; all are returned.
Result<std::vector<Challenge>> parse_www_authenticate(std::string_view header);

struct Token {
  std::string value;
  int expires_in = 60;  // seconds; the spec's default when absent
};
// {"token": "...", "access_token": "...", "expires_in": 300}
Result<Token> parse_token_response(std::string_view body);

struct Credentials {
  std::string username, password;
};

// RFC 4648 base64, for Basic authorisation and config.json's "auth".
std::string base64_encode(std::string_view bytes);
Result<std::string> base64_decode(std::string_view text);

// $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
Result<std::string> docker_config_path();
// The key a registry host has in config.json: Docker Hub is "https://index.docker.io/v1/".
std::string config_key(const std::string& registry_host);
// Credentials for `registry_host` from the config file (absent file or entry: nullopt).
Result<std::optional<Credentials>> load_credentials(const std::string& registry_host);
// Adds or replaces the entry; the file keeps every other key and is written 0600.
Status store_credentials(const std::string& registry_host, const Credentials& credentials);
// Returns whether there was an entry to remove.
Result<bool> erase_credentials(const std::string& registry_host);

}  // namespace hyper::runtime::auth
