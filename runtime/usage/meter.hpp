// The metering of one run of a container, in its monitor (runtime/monitor.cpp): the
// run's S record in the usage ledger when its VMM starts, its heartbeat every second on a
// thread of the monitor's own, its E record when the VMM has exited
// (runtime/usage/ledger.hpp). In the monitor rather than the VMM: the VMM is jailed and
// confined by seccomp, and cannot reach <root>/usage; and the monitor lives exactly as
// long as the VMM does (a killed monitor takes its VMM along).
#pragma once

#include <memory>

#include "runtime/container_store.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::usage {

class Meter {
 public:
  // Opens the ledger and creates the run's heartbeat, before the container starts, so
  // that a failure can still be told to whoever started it.
  static Result<Meter> open(const Paths& paths, const Container& container);
  Meter(Meter&&) noexcept;
  Meter& operator=(Meter&&) = delete;  // would drop a running meter
  ~Meter();  // stop()

  // Now: the S record, then the heartbeat every second on a thread that blocks every
  // signal (the monitor reads its own from a signalfd). Call it after the VMM is forked:
  // a child forked from a process with threads may find a lock held forever.
  void start();
  // Now: the E record, a second begun counting whole, as per-second billing does; then
  // the heartbeat goes. Errors go to stderr (the terminal, or monitor.log when detached):
  // the container has run by then, and what is lost is its last seconds' metering.
  void stop();

 private:
  struct State;
  explicit Meter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace hyper::runtime::usage
