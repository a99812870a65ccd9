// The bytes of one snapshot section: fixed-size values (kernel ABI structs, integers) and
// length-prefixed byte strings, appended in order by an Encoder and taken back in the
// same order by a Decoder. The file around them (vmm/snapshot_file.hpp) carries the
// version, the architecture and a checksum, so a Decoder only guards against reading
// past the end: a short section is an error naming it, never a read out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::snapshot {

class Encoder {
 public:
  template <class T>
  Encoder& put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
    return *this;
  }
  Encoder& put_bytes(std::span<const uint8_t> bytes) {
    put(static_cast<uint32_t>(bytes.size()));
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  template <class T>
  Encoder& put_vector(const std::vector<T>& items) {
    static_assert(std::is_trivially_copyable_v<T>);
    return put_bytes({reinterpret_cast<const uint8_t*>(items.data()), items.size() * sizeof(T)});
  }
  [[nodiscard]] const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class Decoder {
 public:
  // `what` names the section in errors ("vCPU 0", "virtio device 2").
  Decoder(std::span<const uint8_t> bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

  template <class T>
  [[nodiscard]] Result<T> get() {
    static_assert(std::is_trivially_copyable_v<T>);
    auto raw = HYPER_TRY(take(sizeof(T)));
    T value;
    std::memcpy(&value, raw.data(), sizeof(T));
    return value;
  }
  [[nodiscard]] Result<std::span<const uint8_t>> get_bytes() {
    const uint32_t size = HYPER_TRY(get<uint32_t>());
    return take(size);
  }
  template <class T>
  [[nodiscard]] Result<std::vector<T>> get_vector() {
    static_assert(std::is_trivially_copyable_v<T>);
    auto raw = HYPER_TRY(get_bytes());
    if (raw.size() % sizeof(T) != 0) return truncated();
    std::vector<T> items(raw.size() / sizeof(T));
    if (!raw.empty()) std::memcpy(items.data(), raw.data(), raw.size());
    return items;
  }
  // Whatever is left unread is an error too: the writer and the reader disagree.
  [[nodiscard]] Status finish() const {
    if (offset_ == bytes_.size()) return {};
    return make_error(Errc::invalid_argument, "snapshot: the " + what_ + " section has " +
                                                  std::to_string(bytes_.size() - offset_) + " unexpected bytes at its end");
  }

 private:
  [[nodiscard]] Result<std::span<const uint8_t>> take(size_t size) {
    if (size > bytes_.size() - offset_) return truncated();
    auto out = bytes_.subspan(offset_, size);
    offset_ += size;
    return out;
  }
  [[nodiscard]] Error truncated() const {
    return make_error(Errc::invalid_argument, "snapshot: the " + what_ + " section is shorter than its contents");
  }

  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
  std::string what_;
};

}  // namespace hyper::snapshot
