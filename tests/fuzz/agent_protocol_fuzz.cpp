// Both ends of the agent protocol read bytes the other end controls: the host reads what
// a (possibly compromised) guest sends, the agent what arrives on its vsock port. Any
// byte stream, cut anywhere, must decode into bounded frames or refusals, and any payload
// must parse into a request or a short error, never a crash, an exception or a hang.
//
// Input: a split byte (where the stream is cut in two feeds), then the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "guest-init/messages.hpp"
#include "guest-init/protocol.hpp"

namespace {

using namespace hyper;

void parse_payload(const std::string& payload) {
  auto request = guest::parse_request(payload);
  if (!request.ok()) {
    if (request.error().message.empty()) std::abort();
    return;
  }
  if (!request->is_object() || !request->contains("op")) std::abort();
  try {
    // The agent catches nlohmann's exceptions around dispatch; these parsers must not throw at all.
    if (auto process = request->find("process"); process != request->end()) (void)guest::parse_process_spec(*process);
    (void)guest::parse_container_spec(*request);
    (void)guest::parse_build_spec(*request);
  } catch (...) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t split = std::min<size_t>(data[0], size - 1);
  const char* stream = reinterpret_cast<const char*>(data + 1);
  agent::FrameDecoder decoder(4096);  // a small limit reaches the refusal path often
  decoder.feed(stream, split);
  decoder.feed(stream + split, size - 1 - split);
  while (auto item = decoder.next()) {
    if (item->frame.has_value() == item->problem.has_value()) std::abort();
    if (item->frame) {
      if (item->frame->payload.size() > 4096) std::abort();
      parse_payload(item->frame->payload);
    }
  }
  if (decoder.buffered() > 4096 + 5) std::abort();
  return 0;
}
