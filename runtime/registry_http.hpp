// HTTP for the registry client, on libcurl: one request at a time per handle, bodies to
// a sink or into memory, uploads from a file range, headers folded to lowercase names.
// No retries and no authentication here; registry_client.hpp adds both.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime::http {

// Receives a successful (2xx) response's body; an error stops the transfer.
using BodySink = std::function<Status(const char* data, size_t size)>;

struct Request {
  std::string method = "GET";  // GET, HEAD, POST, PUT, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent as is, unless upload_fd is set
  int upload_fd = -1;                // else the body is [upload_offset, +upload_size) of this file
  uint64_t upload_offset = 0, upload_size = 0;
  bool follow_redirects = false;      // blob GETs: registries redirect to storage
  std::string ca_file;                // trust these CAs instead of the system's (certs.d)
  const BodySink* sink = nullptr;     // 2xx bodies go here when set
  // Called with the status before the sink gets the first byte of a 2xx body: a resumed
  // download must know whether the server honoured its Range.
  std::function<Status(long status)> on_success_status;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names; repeated ones joined by ", "
  std::string body;                            // error bodies, and 2xx bodies without a sink (bounded)
  uint64_t sink_bytes = 0;                     // what the sink received
  [[nodiscard]] std::string header(const std::string& lowercase_name) const;
};

// Bodies kept in memory: manifests, tokens, error documents. Larger is refused.
inline constexpr size_t kMaxMemoryBody = size_t{4} << 20;

class Client {
 public:
  static Result<Client> create();
  // Transport failures (connection, TLS, timeouts) are errors; every HTTP status is a
  // response. `transient` is set for failures worth retrying.
  Result<Response> perform(const Request& request, bool* transient = nullptr);

 private:
  struct Free {
    void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
  };
  explicit Client(CURL* curl) : curl_(curl) {}
  std::unique_ptr<CURL, Free> curl_;
};

// "a b&c" -> "a%20b%26c", for query values.
std::string url_escape(const std::string& text);

}  // namespace hyper::runtime::http
