// The host end of the agent protocol (docs/agent-protocol.md): a blocking, frame-at-a-time
// connection with timeouts, over the boot connection the agent opens or over a connection
// the host opens through the VMM's vsock socket.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

#include "guest-init/protocol.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {

using Json = nlohmann::json;

// The VMM's vsock socket inside a container's directory.
inline constexpr const char* kVsockSocket = "vsock.sock";
// Where a running container's monitor takes input for its main process from hyperd:
// stdin, stdin-eof and resize frames (docs/agent-protocol.md).
inline constexpr const char* kInputSocket = "stdin.sock";

class AgentConnection {
 public:
  explicit AgentConnection(UniqueFd fd) : fd_(std::move(fd)) {}

  // Connects through the container's vsock socket to the agent's port and says hello.
  static Result<AgentConnection> dial(const std::filesystem::path& container_dir, int timeout_ms = 5000);
  // Connects to the container's input socket (kInputSocket), which takes frames without a hello.
  static Result<AgentConnection> dial_input(const std::filesystem::path& container_dir);

  [[nodiscard]] int fd() const { return fd_.get(); }
  Status send(agent::Kind kind, std::string_view payload);
  // The next frame; waits at most timeout_ms (-1: forever). A closed connection is an error.
  Result<agent::Frame> receive(int timeout_ms);
  // A frame if one is already buffered or readable now, without waiting.
  Result<std::optional<agent::Frame>> poll_frame();
  // Sends a request and returns its reply, whether the agent said yes or no.
  Result<Json> call(const Json& request, int timeout_ms);
  // Sends a request and returns its reply, failing with the agent's message if it says no.
  Result<Json> request(const Json& request, int timeout_ms);
  void close_write();

 private:
  Result<bool> fill(int timeout_ms);

  UniqueFd fd_;
  agent::FrameDecoder decoder_;
};

// A reply's error as a user-facing Error; `exit_code` (126/127/125) goes to `code_out`.
Error reply_error(const Json& reply, int* code_out = nullptr);
Result<Json> parse_json_payload(const agent::Frame& frame);

}  // namespace hyper::runtime
