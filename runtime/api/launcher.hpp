// How hyperd starts containers' monitors: through a launcher, a process hyperd forks at
// its start, before its first thread, which forks again for each start and runs
// start_detached (runtime/container_control.hpp) there, as `hyper start` would.
//
// hyperd cannot fork a monitor itself: a fork of a process with many threads may copy a
// lock one of them held. Running `hyper start` instead costs an exec of the whole CLI per
// start. The launcher has one thread, so its forks are safe. A start asked from any thread
// of hyperd goes to it with a socket for the answer, so starts run side by side.
#pragma once

#include <string>

#include "runtime/container_control.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::api {

class Launcher {
 public:
  // Forks the launcher; call it while this process has one thread. The launcher ends when
  // this process closes its end of the channel (or ends).
  static Result<Launcher> spawn(const Paths& paths);
  // From any thread: starts the container and returns once its process runs or could not start.
  [[nodiscard]] StartOutcome start(const std::string& container_id) const;

 private:
  explicit Launcher(UniqueFd channel) : channel_(std::move(channel)) {}
  UniqueFd channel_;  // SOCK_SEQPACKET: one request a message, with the answer's socket attached
};

}  // namespace hyper::runtime::api
