// POST /containers/create's body (Config with HostConfig and NetworkingConfig) as the
// flags `hyper run` would have had, so the API and the CLI make containers by the same
// rules (runtime/run_options.hpp). Pure, for the unit tests and the fuzzer.
#pragma once

#include <optional>
#include <string>

#include "runtime/api/http.hpp"
#include "runtime/run_options.hpp"

namespace hyper::runtime::api {

// Throws nlohmann::json's type_error for a field of the wrong type (the server answers
// 400); a missing image or an unsupported option is an error.
Result<RunFlags> create_flags(const Json& body, const std::optional<std::string>& name);

}  // namespace hyper::runtime::api
