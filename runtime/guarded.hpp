// nlohmann::json and std::filesystem report misuse and allocation failure by throwing;
// the runtime's callers only ever see values. `guarded` is the one place that catches.
#pragma once

#include <exception>
#include <string>

#include "vmm/result.hpp"

namespace hyper::runtime {

template <class Body>
auto guarded(const char* what, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return make_error(Errc::io, std::string(what) + ": " + e.what());
  }
}

}  // namespace hyper::runtime
