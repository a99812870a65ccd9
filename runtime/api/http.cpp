#include "runtime/api/http.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <thread>

namespace hyper::runtime::api {
namespace {

// Container-create and network-create bodies are small; nothing the API takes in a body
// needs more (image loads and builds, which would, are not served).
constexpr uint64_t kMaxBody = 4 * 1024 * 1024;
constexpr uint32_t kMaxHeader = 64 * 1024;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// `plus_is_space`: in a query, as Go's net/url (the docker client's) writes one.
std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && hex_digit(text[i + 1]) >= 0 && hex_digit(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > start) out.emplace_back(percent_decode(path.substr(start, end - start), false));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

bool is_capture(const std::string& segment) { return segment.size() > 2 && segment.front() == '{' && segment.back() == '}'; }

bool is_greedy(const std::string& segment) { return is_capture(segment) && segment[segment.size() - 2] == '*'; }

std::string capture_name(const std::string& segment) {
  return segment.substr(1, segment.size() - (is_greedy(segment) ? 3 : 2));
}

bool match_segment(const std::string& pattern, const std::string& actual, std::map<std::string, std::string>& params) {
  if (!is_capture(pattern)) return pattern == actual;
  params[capture_name(pattern)] = actual;
  return true;
}

// Patterns have at most one greedy capture: the segments before and after it match one
// for one, and it takes what is left in between.
bool match(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
           std::map<std::string, std::string>& params) {
  size_t greedy = pattern.size();
  for (size_t i = 0; i < pattern.size(); ++i)
    if (is_greedy(pattern[i])) greedy = i;
  if (greedy == pattern.size()) {
    if (pattern.size() != path.size()) return false;
    for (size_t i = 0; i < path.size(); ++i)
      if (!match_segment(pattern[i], path[i], params)) return false;
    return true;
  }
  const size_t after = pattern.size() - greedy - 1;
  if (path.size() < greedy + 1 + after) return false;
  for (size_t i = 0; i < greedy; ++i)
    if (!match_segment(pattern[i], path[i], params)) return false;
  for (size_t i = 0; i < after; ++i)
    if (!match_segment(pattern[greedy + 1 + i], path[path.size() - after + i], params)) return false;
  std::string joined;
  for (size_t i = greedy; i < path.size() - after; ++i) joined += (joined.empty() ? "" : "/") + path[i];
  params[capture_name(pattern[greedy])] = joined;
  return true;
}

// "/v1.47/containers/json" -> ("1.47", "/containers/json").
std::pair<std::string, std::string> split_version(std::string_view path) {
  if (path.size() > 3 && path.substr(0, 2) == "/v" && std::isdigit(static_cast<unsigned char>(path[2]))) {
    const size_t slash = path.find('/', 2);
    if (slash != std::string_view::npos) return {std::string(path.substr(2, slash - 2)), std::string(path.substr(slash))};
  }
  return {kApiVersion, std::string(path)};
}

// Beast's SyncReadStream over a Transport, for http::read.
class TransportStream {
 public:
  explicit TransportStream(Transport& transport) : transport_(transport) {}

  template <class MutableBuffers>
  size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::mutable_buffer buffer = *it;
      if (buffer.size() == 0) continue;
      const long n = transport_.read(buffer.data(), buffer.size());
      if (n > 0) return static_cast<size_t>(n);
      ec = n == 0 ? make_error_code(boost::asio::error::eof) : make_error_code(boost::asio::error::connection_reset);
      return 0;
    }
    return 0;
  }

  template <class MutableBuffers>
  size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  Transport& transport_;
};

// Fills `request` from the parsed message; a version outside what hyperd speaks is an error.
std::optional<std::string> build_request(const http::request<http::string_body>& message, Request& request) {
  const std::string_view target(message.target().data(), message.target().size());
  const size_t question = target.find('?');
  auto [version, path] = split_version(target.substr(0, question));
  request.method = message.method();
  request.path = std::move(path);
  request.api_version = std::move(version);
  if (question != std::string_view::npos) request.query = parse_query(target.substr(question + 1));
  request.body = message.body();
  request.content_type = std::string(message[http::field::content_type]);
  if (compare_versions(request.api_version, kApiVersion) > 0)
    return "client version " + request.api_version + " is too new. Maximum supported API version is " + kApiVersion;
  if (compare_versions(request.api_version, kMinApiVersion) < 0)
    return "client version " + request.api_version + " is too old. Minimum supported API version is " + kMinApiVersion +
           ", please upgrade your client to a newer version";
  return std::nullopt;
}

}  // namespace

std::multimap<std::string, std::string> parse_query(std::string_view query) {
  std::multimap<std::string, std::string> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t equals = pair.find('=');
    if (!pair.empty())
      out.emplace(percent_decode(pair.substr(0, equals), true),
                  equals == std::string_view::npos ? "" : percent_decode(pair.substr(equals + 1), true));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

int compare_versions(std::string_view a, std::string_view b) {
  // One number at a time; a missing or unreadable one counts as 0.
  const auto next = [](std::string_view& text) {
    unsigned value = 0;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
    const size_t dot = text.find('.');
    text = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
    return parsed.ec == std::errc() ? value : 0u;
  };
  while (!a.empty() || !b.empty()) {
    const unsigned x = next(a), y = next(b);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

std::optional<std::string> Request::arg(const std::string& name) const {
  const auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

bool Request::flag(const std::string& name, bool fallback) const {
  const auto value = arg(name);
  if (!value) return fallback;
  return *value == "1" || *value == "true" || *value == "True";
}

Result<Json> Request::json_body() const {
  if (body.empty()) return Json::object();
  auto json = Json::parse(body, nullptr, false);
  if (json.is_discarded()) return make_error(Errc::invalid_argument, "the request body is not JSON");
  return json;
}

void Exchange::write_head(http::status status, std::string_view content_type, std::string_view extra,
                          std::optional<size_t> length) {
  std::string head = "HTTP/1.1 " + std::to_string(static_cast<unsigned>(status)) + " " +
                     std::string(http::obsolete_reason(status)) + "\r\n";
  head += "Api-Version: " + std::string(kApiVersion) + "\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: hyperd\r\n";
  if (!content_type.empty()) head += "Content-Type: " + std::string(content_type) + "\r\n";
  if (length) head += "Content-Length: " + std::to_string(*length) + "\r\n";
  if (!keep_alive_) head += "Connection: close\r\n";
  head += extra;
  head += "\r\n";
  replied_ = true;
  status_ = static_cast<unsigned>(status);
  (void)write_raw(head);
}

bool Exchange::write_raw(std::string_view bytes) {
  if (broken_) return false;
  if (!transport_.write(bytes)) broken_ = true;
  return !broken_;
}

void Exchange::send_text(http::status status, std::string_view body, std::string_view content_type) {
  write_head(status, content_type, "", body.size());
  if (!head_) (void)write_raw(body);
}

void Exchange::send_json(http::status status, const Json& body) {
  send_text(status, body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", "application/json");
}

void Exchange::send_empty(http::status status) {
  const bool bodiless = status == http::status::no_content || status == http::status::not_modified;
  write_head(status, "", "", bodiless ? std::nullopt : std::optional<size_t>(0));
}

void Exchange::send_error(http::status status, const std::string& message) { send_json(status, Json{{"message", message}}); }

void Exchange::send_error(const Error& error) {
  switch (error.code) {
    case Errc::not_found: return send_error(http::status::not_found, error.message);
    case Errc::invalid_argument: return send_error(http::status::bad_request, error.message);
    case Errc::permission_denied: return send_error(http::status::forbidden, error.message);
    default: return send_error(http::status::internal_server_error, error.message);
  }
}

void Exchange::begin_stream(http::status status, std::string_view content_type) {
  write_head(status, content_type, "Transfer-Encoding: chunked\r\n", std::nullopt);
}

bool Exchange::write_chunk(std::string_view bytes) {
  if (bytes.empty()) return !broken_;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
  std::string chunk = size;
  chunk.append(bytes);
  chunk += "\r\n";
  return write_raw(chunk);
}

void Exchange::end_stream() { (void)write_raw("0\r\n\r\n"); }

Status Exchange::upgrade(std::string_view content_type) {
  keep_alive_ = false;
  write_head(http::status::switching_protocols, content_type, "Connection: Upgrade\r\nUpgrade: tcp\r\n", std::nullopt);
  if (broken_) return make_error(Errc::io, "the client went away");
  return {};
}

std::string Exchange::take_buffered() {
  const auto data = buffer_.data();
  std::string out(static_cast<const char*>(data.data()), data.size());
  buffer_.consume(data.size());
  return out;
}

std::string stream_frame(bool is_stderr, std::string_view bytes, bool tty) {
  if (tty) return std::string(bytes);
  std::string out(8, '\0');
  out[0] = is_stderr ? 2 : 1;
  const auto size = static_cast<uint32_t>(bytes.size());
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<char>(size >> (24 - 8 * i));
  out.append(bytes);
  return out;
}

void Router::add(http::verb method, std::string pattern, Handler handler) {
  routes_.push_back({method, split_path(pattern), std::move(handler)});
}

const Handler* Router::find(Request& request, http::status& refusal) const {
  const auto path = split_path(request.path);
  refusal = http::status::not_found;
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    if (!match(route.segments, path, params)) continue;
    const bool head_as_get = request.method == http::verb::head && route.method == http::verb::get;
    if (route.method != request.method && !head_as_get) {
      refusal = http::status::method_not_allowed;
      continue;
    }
    request.params = std::move(params);
    return &route.handler;
  }
  return nullptr;
}

void serve_connection(std::unique_ptr<Transport> transport, const Router& router) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    parser.header_limit(kMaxHeader);
    boost::system::error_code ec;
    TransportStream stream(*transport);
    http::read(stream, buffer, parser, ec);
    const bool head = !ec && parser.get().method() == http::verb::head;
    Exchange exchange(*transport, buffer, head);
    if (ec) {
      if (ec != http::error::end_of_stream && ec != boost::asio::error::eof && ec != boost::asio::error::connection_reset) {
        exchange.set_keep_alive(false);
        exchange.send_error(http::status::bad_request, "bad request: " + ec.message());
      }
      break;
    }
    const auto& message = parser.get();
    exchange.set_keep_alive(message.keep_alive());
    const auto started = std::chrono::steady_clock::now();
    Request request;
    if (auto refused = build_request(message, request)) {
      exchange.send_error(http::status::bad_request, *refused);
    } else {
      http::status refusal = http::status::not_found;
      if (const Handler* handler = router.find(request, refusal)) {
        try {
          (*handler)(request, exchange);
        } catch (const std::exception& e) {
          // A body of the wrong shape (a string where a number belongs) ends up here.
          if (!exchange.replied()) exchange.send_error(http::status::bad_request, std::string("bad request: ") + e.what());
          exchange.set_keep_alive(false);
        }
        if (!exchange.replied()) exchange.send_error(http::status::internal_server_error, "no reply");
      } else {
        exchange.send_error(refusal, refusal == http::status::not_found ? "page not found" : "method not allowed");
      }
    }
    // One line a request once it is answered (a stream: once it ended), with its time.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "hyperd: %s %.*s %u %lld ms\n", std::string(http::to_string(message.method())).c_str(),
                 static_cast<int>(std::min<size_t>(message.target().size(), 300)), message.target().data(),
                 exchange.status(), static_cast<long long>(ms));
    if (!exchange.keep_alive()) break;
  }
  ::shutdown(transport->fd(), SHUT_RDWR);
}

void serve(int listener, const Router& router, const TlsServer* tls) {
  constexpr int kHandshakeTimeoutMs = 10'000;
  for (;;) {
    // SOCK_CLOEXEC: a monitor hyperd starts meanwhile must not keep a client's connection open.
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {  // the client's connection waits; try again shortly
        ::usleep(10'000);
        continue;
      }
      return;  // the listener was shut down
    }
    std::thread([fd = std::move(fd), &router, tls]() mutable {
      if (tls == nullptr) return serve_connection(plain_transport(std::move(fd)), router);
      auto transport = tls->accept(std::move(fd), kHandshakeTimeoutMs);
      if (!transport.ok()) {
        std::fprintf(stderr, "hyperd: refused a client: %s\n", transport.error().message.c_str());
        return;
      }
      serve_connection(std::move(transport).value(), router);
    }).detach();
  }
}

}  // namespace hyper::runtime::api
