// Where the VMM's threads wait while the machine is paused for a snapshot: the pauser
// closes the gate and kicks them, each thread parks at its next safe point (a vCPU out
// of KVM_RUN with its last exit completed, an I/O thread between requests), and the
// pauser, once all have parked, has the machine to itself until it opens the gate.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace hyper {

class PauseGate {
 public:
  void close() {
    std::lock_guard lock(mutex_);
    closed_.store(true, std::memory_order_release);
  }
  // Whether a thread should park now (cheap: read on every vCPU loop iteration).
  [[nodiscard]] bool closed() const { return closed_.load(std::memory_order_acquire); }
  // Waits until `count` threads have parked; false when `timeout` passed first.
  [[nodiscard]] bool wait_parked(size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return parked_ >= count; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    closed_.store(false, std::memory_order_release);
    changed_.notify_all();
  }
  // Called by a thread at its safe point: returns once the gate is open again.
  void park() {
    std::unique_lock lock(mutex_);
    ++parked_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !closed_.load(std::memory_order_relaxed); });
    --parked_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::atomic<bool> closed_{false};
  size_t parked_ = 0;
};

}  // namespace hyper
