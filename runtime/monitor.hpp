// The monitor: the one process that runs a container. It boots the container's VM
// in-process, starts the container's main process through the agent, writes its output
// to the container's log (and to the terminal when attached), forwards signals and
// input, and records the exit status in the container's state. Each running container is
// exactly one monitor process; killing it ends the VM and nothing else.
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
};

// Runs the container to its end and returns its exit status.
int run_monitor(const Paths& paths, ContainerStore& store, const Container& container, const MonitorOptions& options);

}  // namespace hyper::runtime
