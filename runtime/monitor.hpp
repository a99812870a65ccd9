// The monitor: the process that runs a container. It forks the container's VMM process
// into its jail (runtime/jail/jail.hpp) and cgroup (runtime/jail/cgroup.hpp), records it in the
// container's state, forwards the signals it gets to it and records how it ended. The
// VMM boots the container's VM in-process, starts the container's main process through
// the agent, writes its output to the container's log (and to the terminal when
// attached), forwards signals and input. Each running container is exactly one monitor
// and its VMM; killing either ends the VM and nothing else.
#pragma once

#include <cstdint>
#include <functional>

#include "runtime/container_store.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

struct MonitorOptions {
  bool attach = false;  // relay stdio with this process's stdin/stdout/stderr
  uint64_t start_ns = 0;  // when the CLI started, for the timings
  bool print_timings = false;
  // Called once: with 0 when the container's process runs, else its docker exit code
  // (125/126/127) and the error.
  std::function<void(int code, const std::string& error)> on_started = [](int, const std::string&) {};
  // In the monitor once the VMM process (which calls on_started) exists: lets go of
  // on_started's channel, so that its reader sees the VMM's end of it alone.
  std::function<void()> release_started = [] {};
  // A limit or a part of the jail that could not be set up; the container runs anyway.
  std::function<void(const std::string& warning)> on_warning = [](const std::string&) {};
};

// Runs the container to its end and returns its exit status.
int run_monitor(const Paths& paths, ContainerStore& store, const Container& container, const MonitorOptions& options);

}  // namespace hyper::runtime
