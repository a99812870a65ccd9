#include "guest-init/protocol.hpp"

#include <utility>

namespace hyper::agent {

bool is_known_kind(uint8_t kind) { return kind >= 1 && kind <= 10; }

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::request: return "request";
    case Kind::response: return "response";
    case Kind::stdin_data: return "stdin";
    case Kind::stdout_data: return "stdout";
    case Kind::stderr_data: return "stderr";
    case Kind::stdin_eof: return "stdin-eof";
    case Kind::exit: return "exit";
    case Kind::signal: return "signal";
    case Kind::resize: return "resize";
    case Kind::event: return "event";
  }
  return "unknown";
}

void encode_frame(std::string& out, Kind kind, std::string_view payload) {
  const auto size = static_cast<uint32_t>(payload.size());
  const char header[kHeaderSize] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                                    static_cast<char>(size >> 8), static_cast<char>(size),
                                    static_cast<char>(kind)};
  out.append(header, kHeaderSize);
  out.append(payload);
}

std::string encode_frame(Kind kind, std::string_view payload) {
  std::string out;
  out.reserve(kHeaderSize + payload.size());
  encode_frame(out, kind, payload);
  return out;
}

namespace {

constexpr std::pair<Errc, const char*> kErrorKinds[] = {
    {Errc::invalid_argument, "invalid_argument"}, {Errc::io, "io"},
    {Errc::not_found, "not_found"},               {Errc::permission_denied, "permission_denied"},
    {Errc::unsupported, "unsupported"},           {Errc::bad_image, "bad_image"},
    {Errc::out_of_bounds, "out_of_bounds"},       {Errc::kvm, "kvm"},
};

}  // namespace

const char* error_kind(Errc code) {
  for (const auto& [errc, name] : kErrorKinds)
    if (errc == code) return name;
  return "io";
}

Errc errc_from_kind(std::string_view kind) {
  for (const auto& [errc, name] : kErrorKinds)
    if (kind == name) return errc;
  return Errc::invalid_argument;
}

void FrameDecoder::feed(const char* data, size_t size) {
  if (skip_ > 0) {
    const size_t dropped = skip_ < size ? static_cast<size_t>(skip_) : size;
    skip_ -= dropped;
    data += dropped;
    size -= dropped;
  }
  buffer_.append(data, size);
}

std::optional<FrameDecoder::Item> FrameDecoder::next() {
  if (skip_ > 0 || buffer_.size() < kHeaderSize) return std::nullopt;
  const auto* bytes = reinterpret_cast<const unsigned char*>(buffer_.data());
  const uint32_t size = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                        (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
  const uint8_t kind = bytes[4];
  if (size > max_payload_ || !is_known_kind(kind)) {
    std::string why = size > max_payload_
                          ? "frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                                std::to_string(max_payload_)
                          : "unknown frame kind " + std::to_string(kind);
    // Discard the refused payload: what is buffered now, the rest as it arrives.
    const size_t available = buffer_.size() - kHeaderSize;
    const size_t dropped = available < size ? available : size;
    buffer_.erase(0, kHeaderSize + dropped);
    skip_ = size - dropped;
    if (skip_ > 0) {
      // Whatever is buffered after the header belongs to the refused payload.
      buffer_.clear();
    }
    return Item{std::nullopt, Problem{std::move(why)}};
  }
  if (buffer_.size() - kHeaderSize < size) return std::nullopt;
  Frame frame{static_cast<Kind>(kind), buffer_.substr(kHeaderSize, size)};
  buffer_.erase(0, kHeaderSize + size);
  return Item{std::move(frame), std::nullopt};
}

}  // namespace hyper::agent
