// A few workers for a list of independent tasks (layer downloads, blob uploads): the
// first failure stops the tasks not yet begun, and is what the caller gets.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::runtime {

// Runs task(0..count) on at most `max_workers` threads (the caller's among them).
// `failed` is set at the first failure so that running tasks can stop early; their own
// failure ("cancelled") is not reported over the first one.
inline Status run_in_parallel(size_t count, int max_workers, std::atomic<bool>& failed,
                              const std::function<Status(size_t)>& task) {
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::optional<Error> first_error;
  const auto work = [&] {
    for (size_t i = next++; i < count && !failed.load(); i = next++) {
      if (Status status = task(i); !status.ok()) {
        const std::lock_guard lock(error_mutex);
        if (!first_error && !failed.load()) first_error = status.error();
        failed = true;
      }
    }
  };
  const size_t workers = std::min(count, static_cast<size_t>(std::max(1, max_workers)));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (auto& thread : threads) thread.join();
  if (first_error) return *first_error;
  return {};
}

}  // namespace hyper::runtime
