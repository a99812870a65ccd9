// Typed errors for the whole VMM: every fallible call returns Result<T> or Status,
// so failures carry a category the caller can act on and a message a user can read.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace hyper {

enum class Errc {
  invalid_argument,   // the caller (user, config) asked for something impossible
  io,                 // a host system call failed
  not_found,          // a file or device does not exist
  permission_denied,  // the host refused access
  unsupported,        // host KVM lacks a capability we need
  bad_image,          // a kernel/initrd image is truncated or malformed
  out_of_bounds,      // a guest-physical access outside guest memory
  kvm,                // KVM refused an operation or reported an internal error
};

const char* errc_name(Errc code) noexcept;

struct [[nodiscard]] Error {
  Errc code;
  std::string message;

  // Maps the errno of a failed system call onto a category and appends strerror.
  static Error from_errno(std::string what, int err = errno);
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

// "0x1f": addresses and values in messages.
std::string to_hex(uint64_t value);

// Propagates the error of a Result/Status expression; otherwise yields its value.
// (GNU statement expression: supported by both gcc and clang.)
#define HYPER_TRY(expr)                                          \
  ({                                                             \
    auto hyper_try_result_ = (expr);                             \
    if (!hyper_try_result_.ok()) return std::move(hyper_try_result_).error(); \
    std::move(hyper_try_result_).value();                        \
  })

#define HYPER_CHECK(expr)                                        \
  do {                                                           \
    auto hyper_check_status_ = (expr);                           \
    if (!hyper_check_status_.ok()) return std::move(hyper_check_status_).error(); \
  } while (0)

}  // namespace hyper
