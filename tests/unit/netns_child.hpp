// Tests that change network configuration run in a forked child inside a network
// namespace of its own, never in the host's; the child reports back as text.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::test {

// Collects failures as text, since doctest's assertions do not report from a child process.
class ChildChecks {
 public:
  void expect(bool ok, const std::string& what) {
    if (!ok) failures_ += "FAIL: " + what + "\n";
  }
  void expect_ok(const Status& status, const std::string& what) {
    expect(status.ok(), what + (status.ok() ? "" : ": " + status.error().message));
  }
  [[nodiscard]] const std::string& failures() const { return failures_; }

 private:
  std::string failures_;
};

// sysfs shows the network namespace of whoever mounted it: a child that reads
// /sys/class/net needs a mount namespace with a sysfs of its own. Call it in the body.
inline Status mount_own_sysfs() {
  if (::unshare(CLONE_NEWNS) != 0) return Error::from_errno("unshare(CLONE_NEWNS)");
  // Private first, so the new mount does not propagate back to the host's /sys.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return Error::from_errno("make / private");
  if (::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) return Error::from_errno("mount sysfs on /sys");
  return {};
}

// Runs `body` in a forked child after unshare(CLONE_NEWNET). Returns "OK\n" when body
// returns no failures, its failures otherwise, or "SKIP: <why>" when the namespace could
// not be made (the caller decides whether that is a failure).
inline std::string run_in_new_network_namespace(const std::function<std::string()>& body) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return std::string("FAIL: pipe2: ") + std::strerror(errno);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  const pid_t child = ::fork();
  if (child < 0) return std::string("FAIL: fork: ") + std::strerror(errno);
  if (child == 0) {
    read_end.reset();
    std::string report;
    // Everything after this point must happen in the new namespace, never in the host's.
    if (::unshare(CLONE_NEWNET) != 0) {
      report = std::string("SKIP: unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs CAP_SYS_ADMIN)";
    } else {
      // An exception must not unwind into doctest's runner in the child.
      try {
        report = body();
      } catch (const std::exception& error) {
        report = std::string("FAIL: exception: ") + error.what() + "\n";
      }
      if (report.empty()) report = "OK\n";
    }
    (void)!::write(write_end.get(), report.data(), report.size());
    ::_exit(0);
  }
  write_end.reset();
  std::string report;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(read_end.get(), buffer, sizeof buffer)) > 0) report.append(buffer, static_cast<size_t>(got));
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    report += "FAIL: the child did not exit cleanly\n";
  }
  return report;
}

}  // namespace hyper::test
