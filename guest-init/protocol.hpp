// The agent protocol's framing, shared by the guest agent and the host runtime
// (docs/agent-protocol.md is the specification). A frame is a 5-byte header, the
// payload's length (u32, big-endian) and its kind (u8), then the payload. Control frames
// carry one JSON object; data frames carry raw bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::agent {

inline constexpr uint32_t kProtocolVersion = 1;
// The guest listens here for host connections (exec, signal, stats, export, ...).
inline constexpr uint32_t kAgentPort = 1024;
// The host listens here; the agent connects at boot and the container's stdio flows on it.
inline constexpr uint32_t kBootPort = 1025;

inline constexpr size_t kHeaderSize = 5;
// Bounds what either side buffers for one frame; larger frames are refused, not read.
inline constexpr uint32_t kMaxPayload = 1u << 20;
// Senders split data into frames of at most this size.
inline constexpr size_t kMaxDataChunk = 64 * 1024;

enum class Kind : uint8_t {
  request = 1,    // host -> agent, JSON {"op": ...}
  response = 2,   // agent -> host, JSON {"ok": true, ...} or {"ok": false, "error": ...}
  stdin_data = 3,
  stdout_data = 4,
  stderr_data = 5,
  stdin_eof = 6,  // empty payload
  exit = 7,       // agent -> host, JSON {"status": N, "signal": S?}
  signal = 8,     // host -> agent, JSON {"signal": N}: to the process of this stream
  resize = 9,     // host -> agent, JSON {"rows": R, "cols": C}
  event = 10,     // agent -> host, JSON {"event": "ready", ...}
};

[[nodiscard]] bool is_known_kind(uint8_t kind);
[[nodiscard]] const char* kind_name(Kind kind);

struct Frame {
  Kind kind;
  std::string payload;
};

// Appends one frame to `out`.
void encode_frame(std::string& out, Kind kind, std::string_view payload);
[[nodiscard]] std::string encode_frame(Kind kind, std::string_view payload);

// Incremental decoder for a byte stream. Frames that are too large or of an unknown
// kind are skipped without being buffered and reported as problems, so one bad frame
// costs an error reply, never the connection.
// An error reply's "kind": the error category as a protocol token ("not_found"), and back
// (an unknown token is invalid_argument).
[[nodiscard]] const char* error_kind(Errc code);
[[nodiscard]] Errc errc_from_kind(std::string_view kind);

class FrameDecoder {
 public:
  struct Problem {
    std::string message;
  };
  struct Item {
    std::optional<Frame> frame;      // set for a good frame
    std::optional<Problem> problem;  // set for a refused one
  };

  explicit FrameDecoder(uint32_t max_payload = kMaxPayload) : max_payload_(max_payload) {}
  void feed(const char* data, size_t size);
  // The next complete frame or problem, if any.
  [[nodiscard]] std::optional<Item> next();
  // Bytes held for an incomplete frame (bounded by the maximum payload).
  [[nodiscard]] size_t buffered() const { return buffer_.size(); }

 private:
  uint32_t max_payload_;
  std::string buffer_;
  uint64_t skip_ = 0;  // bytes of a refused frame still to discard
};

}  // namespace hyper::agent
