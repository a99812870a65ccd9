#include "runtime/usage/meter.hpp"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <system_error>
#include <thread>

#include "runtime/usage/ledger.hpp"

namespace hyper::runtime::usage {

using Clock = std::chrono::steady_clock;

struct Meter::State {
  Ledger ledger;
  Heartbeat heartbeat;
  Run run;
  Clock::time_point begun;
  bool recorded = false;  // the S record is in the ledger
  bool started = false, stopped = false, warned = false;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;  // under `mutex`
  std::thread thread;

  State(Ledger ledger_, Heartbeat heartbeat_, Run run_)
      : ledger(std::move(ledger_)), heartbeat(std::move(heartbeat_)), run(std::move(run_)) {}

  // Once: the monitor carries on, and a full disk would say the same every second.
  void warn(const Status& status) {
    if (status.ok() || warned) return;
    warned = true;
    std::fprintf(stderr, "hyper: warning: the container's usage metering failed: %s\n", status.error().message.c_str());
  }

  // The S record, until it is written: without it the run's seconds count for nothing.
  bool record_start() {
    if (!recorded) {
      const Status appended = ledger.append(start_record(run));
      warn(appended);
      recorded = appended.ok();
    }
    return recorded;
  }

  [[nodiscard]] Clock::duration elapsed() const { return Clock::now() - begun; }

  void tick(uint64_t seconds) {
    (void)record_start();
    warn(heartbeat.beat(seconds));
  }

  // At every whole second since the start, until stop().
  void run_ticks() {
    std::unique_lock lock(mutex);
    for (uint64_t next = 1;; ++next) {
      if (wake.wait_until(lock, begun + std::chrono::seconds(next), [&] { return stopping; })) return;
      const auto seconds = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(elapsed()).count());
      lock.unlock();
      tick(seconds);
      lock.lock();
      next = std::max(next, seconds);  // after a late wake-up: the next whole second, not every one missed
    }
  }
};

Result<Meter> Meter::open(const Paths& paths, const Container& container) {
  Ledger ledger = HYPER_TRY(Ledger::open(paths.usage()));
  Run run;
  run.run = HYPER_TRY(new_run_id());
  run.container_id = container.id;
  run.name = container.name;
  run.vcpus = container.config.cpus;
  run.memory_mib = container.config.memory_mib;
  Heartbeat heartbeat = HYPER_TRY(Heartbeat::create(paths.usage(), run.run));
  return Meter(std::make_unique<State>(std::move(ledger), std::move(heartbeat), std::move(run)));
}

Meter::Meter(std::unique_ptr<State> state) : state_(std::move(state)) {}
Meter::Meter(Meter&&) noexcept = default;

Meter::~Meter() {
  if (state_) stop();
}

void Meter::start() {
  State& state = *state_;
  if (state.started) return;
  state.started = true;
  state.run.start = static_cast<int64_t>(::time(nullptr));
  state.begun = Clock::now();
  (void)state.record_start();
  // The thread takes no signal: the monitor reads its own from a signalfd.
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    state.thread = std::thread([&state] { state.run_ticks(); });
  } catch (const std::system_error& e) {
    state.warn(make_error(Errc::io, std::string("no heartbeat thread: ") + e.what()));
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void Meter::stop() {
  State& state = *state_;
  if (state.stopped) return;
  state.stopped = true;
  if (!state.started) {
    (void)state.heartbeat.remove();  // the run never began
    return;
  }
  {
    const std::lock_guard lock(state.mutex);
    state.stopping = true;
  }
  state.wake.notify_all();
  if (state.thread.joinable()) state.thread.join();
  const auto nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(state.elapsed()).count();
  const auto seconds = static_cast<uint64_t>((nanoseconds + 999'999'999) / 1'000'000'000);
  const bool recorded = state.record_start();
  const Status ended = recorded ? state.ledger.append(end_record(state.run.run, seconds))
                                : Status(make_error(Errc::io, "no start record"));
  if (!ended.ok()) {
    // The heartbeat keeps the seconds, as for a killed monitor.
    state.warn(ended);
    state.warn(state.heartbeat.beat(seconds));
    return;
  }
  state.warn(state.heartbeat.remove());
}

}  // namespace hyper::runtime::usage
