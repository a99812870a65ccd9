#include "runtime/agent_client.hpp"

#include "runtime/dir_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>


namespace hyper::runtime {
namespace {

// MSG_NOSIGNAL: a VM that went away is an error to report, not a SIGPIPE that ends the
// command (as it ended `volume snapshot create` when its container's VM died under it).
Status send_all(int fd, std::string_view bytes, const char* what) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(std::string("write ") + what);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

// Reads the VMM's "OK <port>\n" answer to CONNECT, byte by byte so no frame byte is eaten.
Status read_connect_answer(int fd, int timeout_ms) {
  std::string line;
  while (line.size() < 64) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return make_error(Errc::io, "the container's VMM did not answer CONNECT");
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return make_error(Errc::io, "the container's agent is not listening (has the container exited?)");
    if (c == '\n') break;
    line += c;
  }
  if (line.rfind("OK ", 0) != 0) return make_error(Errc::io, "the container's VMM refused the connection: " + line);
  return {};
}

}  // namespace

Result<AgentConnection> AgentConnection::dial(const std::filesystem::path& container_dir, int timeout_ms) {
  UniqueFd fd = HYPER_TRY(connect_in_dir(container_dir, kVsockSocket, "the container's VMM"));
  const std::string connect = "CONNECT " + std::to_string(agent::kAgentPort) + "\n";
  HYPER_CHECK(send_all(fd.get(), connect, "the VMM's vsock socket"));
  HYPER_CHECK(read_connect_answer(fd.get(), timeout_ms));
  AgentConnection conn(std::move(fd));
  (void)HYPER_TRY(conn.request({{"op", "hello"}, {"version", agent::kProtocolVersion}}, timeout_ms));
  return conn;
}

Result<AgentConnection> AgentConnection::dial_input(const std::filesystem::path& container_dir) {
  return AgentConnection(HYPER_TRY(connect_in_dir(container_dir, kInputSocket, "the container's VMM")));
}

Status AgentConnection::send(agent::Kind kind, std::string_view payload) {
  return send_all(fd_.get(), agent::encode_frame(kind, payload), "the agent connection");
}

Result<bool> AgentConnection::fill(int timeout_ms) {
  pollfd p{fd_.get(), POLLIN, 0};
  const int ready = ::poll(&p, 1, timeout_ms);
  if (ready < 0 && errno != EINTR) return Error::from_errno("poll the agent connection");
  if (ready <= 0) return false;
  char buf[65536];
  const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return false;
  if (n < 0) return Error::from_errno("read the agent connection");
  if (n == 0) return make_error(Errc::io, "the agent closed the connection");
  decoder_.feed(buf, static_cast<size_t>(n));
  return true;
}

Result<std::optional<agent::Frame>> AgentConnection::poll_frame() {
  for (;;) {
    if (auto item = decoder_.next()) {
      if (item->problem) return make_error(Errc::io, "bad frame from the agent: " + item->problem->message);
      return std::optional<agent::Frame>(std::move(*item->frame));
    }
    if (!HYPER_TRY(fill(0))) return std::optional<agent::Frame>();
  }
}

Result<agent::Frame> AgentConnection::receive(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (auto item = decoder_.next()) {
      if (item->problem) return make_error(Errc::io, "bad frame from the agent: " + item->problem->message);
      return std::move(*item->frame);
    }
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return make_error(Errc::io, "the agent did not answer in time");
      wait = static_cast<int>(left.count());
    }
    (void)HYPER_TRY(fill(wait));
  }
}

Result<Json> AgentConnection::call(const Json& request, int timeout_ms) {
  // An argument that is not UTF-8 goes with replacement characters, not as a throw.
  HYPER_CHECK(send(agent::Kind::request, request.dump(-1, ' ', false, Json::error_handler_t::replace)));
  for (;;) {
    const agent::Frame frame = HYPER_TRY(receive(timeout_ms));
    if (frame.kind != agent::Kind::response) continue;  // stdio that raced the reply is not ours to keep
    return parse_json_payload(frame);
  }
}

Result<Json> AgentConnection::request(const Json& request, int timeout_ms) {
  Json reply = HYPER_TRY(call(request, timeout_ms));
  if (!reply.value("ok", false)) return reply_error(reply);
  return reply;
}

void AgentConnection::close_write() { ::shutdown(fd_.get(), SHUT_WR); }

Error reply_error(const Json& reply, int* code_out) {
  const std::string message = reply.contains("error") && reply["error"].is_string()
                                  ? reply["error"].get<std::string>()
                                  : "the agent refused the request";
  if (code_out) *code_out = reply.value("exit_code", 125);
  const auto kind = reply.find("kind");
  return make_error(kind != reply.end() && kind->is_string() ? agent::errc_from_kind(kind->get<std::string>())
                                                             : Errc::invalid_argument,
                    message);
}

Result<Json> parse_json_payload(const agent::Frame& frame) {
  Json value = Json::parse(frame.payload, nullptr, false);
  if (value.is_discarded() || !value.is_object())
    return make_error(Errc::io, std::string("the agent sent a malformed ") + agent::kind_name(frame.kind) + " frame");
  return value;
}

}  // namespace hyper::runtime
