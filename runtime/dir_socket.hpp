// Unix sockets named inside a directory, reached through the directory's fd: a
// container's directory can be longer than a socket address holds (108 bytes).
#pragma once

#include <filesystem>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {

// Binds `dir`/`name` (replacing a stale one) and listens.
Result<UniqueFd> listen_in_dir(const std::filesystem::path& dir, const char* name, int backlog = 8);
// Connects to `dir`/`name`; `what` names the peer in the error.
Result<UniqueFd> connect_in_dir(const std::filesystem::path& dir, const char* name, const std::string& what);

}  // namespace hyper::runtime
