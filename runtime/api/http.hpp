// hyperd's HTTP layer: the Docker Engine API over a Unix socket (or TCP with TLS), with
// Boost.Beast's parser. One
// thread per client connection, because the API's long calls (attach, wait, logs -f,
// events, pull) block for as long as a container runs, and a connection carries one
// call at a time anyway. Handlers reply through their Exchange: a JSON body, an empty
// one, a stream of chunks, or a hijacked connection (`101 UPGRADED`, as attach and exec
// start need).
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/status.hpp>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/api/transport.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::api {

namespace http = boost::beast::http;
using Json = nlohmann::ordered_json;  // fields in the order Docker writes them

// The API versions hyperd speaks: what it advertises, and the oldest a client may ask for.
inline constexpr const char* kApiVersion = "1.47";
inline constexpr const char* kMinApiVersion = "1.24";

struct Request {
  http::verb method = http::verb::get;
  std::string path;         // "/containers/abc/start": the "/v1.47" prefix removed
  std::string api_version;  // "1.47"; kApiVersion when the path named none
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> params;  // the route's {captures}
  std::string body;
  std::string content_type;

  [[nodiscard]] std::optional<std::string> arg(const std::string& name) const;
  // Docker's booleans in queries: "1", "true", "True" (absent: `fallback`).
  [[nodiscard]] bool flag(const std::string& name, bool fallback = false) const;
  [[nodiscard]] const std::string& param(const std::string& name) const { return params.at(name); }
  // The body as JSON; an empty body is an empty object.
  [[nodiscard]] Result<Json> json_body() const;
};

// Splits "a=1&b=x%20y" into decoded pairs.
std::multimap<std::string, std::string> parse_query(std::string_view query);
// "1.44" < "1.47"; versions compare by their numbers, not as text.
int compare_versions(std::string_view a, std::string_view b);

class Exchange {
 public:
  Exchange(Transport& transport, boost::beast::flat_buffer& buffer, bool head)
      : transport_(transport), buffer_(buffer), head_(head) {}

  void send_json(http::status status, const Json& body);
  void send_empty(http::status status);
  void send_text(http::status status, std::string_view body, std::string_view content_type);
  // {"message": ...}, Docker's error body.
  void send_error(http::status status, const std::string& message);
  // The status Docker gives an error of this kind: 404 for not_found, 400 for bad input...
  void send_error(const Error& error);

  // A body written piece by piece (chunked), for progress, logs, events and wait.
  void begin_stream(http::status status, std::string_view content_type);
  // False once the client is gone.
  bool write_chunk(std::string_view bytes);
  void end_stream();

  // Answers `101 UPGRADED` and hands over the connection: the caller reads and writes
  // `transport()` itself from then on, after consuming `take_buffered()` (bytes the client
  // sent behind its request). The connection is closed when the handler returns.
  Status upgrade(std::string_view content_type);
  std::string take_buffered();
  [[nodiscard]] Transport& transport() { return transport_; }

  [[nodiscard]] bool replied() const { return replied_; }
  [[nodiscard]] unsigned status() const { return status_; }  // 0 before the reply
  [[nodiscard]] bool keep_alive() const { return keep_alive_; }
  void set_keep_alive(bool keep) { keep_alive_ = keep; }

 private:
  void write_head(http::status status, std::string_view content_type, std::string_view extra, std::optional<size_t> length);
  bool write_raw(std::string_view bytes);

  Transport& transport_;
  boost::beast::flat_buffer& buffer_;
  bool head_;
  bool replied_ = false;
  unsigned status_ = 0;
  bool keep_alive_ = true;
  bool broken_ = false;
};

// Docker's framing of a container's output on an attach, exec or logs stream: without a
// terminal, each chunk behind 8 bytes (1 stdout or 2 stderr, three zeros, the length
// big-endian); with one, the bytes as they are.
std::string stream_frame(bool is_stderr, std::string_view bytes, bool tty);
inline constexpr const char* kMultiplexedStream = "application/vnd.docker.multiplexed-stream";
inline constexpr const char* kRawStream = "application/vnd.docker.raw-stream";

using Handler = std::function<void(const Request&, Exchange&)>;

// Method and path patterns: "/containers/{id}/start"; a capture "{name*}" takes one or
// more segments ("/images/{name*}/json" serves "/images/localhost:5000/a/b/json").
class Router {
 public:
  void add(http::verb method, std::string pattern, Handler handler);
  // The handler for the request, with its captures filled in; a 404 or 405 otherwise.
  [[nodiscard]] const Handler* find(Request& request, http::status& refusal) const;

 private:
  struct Route {
    http::verb method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// Serves the requests of one client until it closes the connection or a handler takes it over.
void serve_connection(std::unique_ptr<Transport> transport, const Router& router);
// Accepts connections on the listening socket `listener` until it is shut down, each
// served on its own thread; with `tls`, each after its TLS handshake.
void serve(int listener, const Router& router, const TlsServer* tls);

}  // namespace hyper::runtime::api
