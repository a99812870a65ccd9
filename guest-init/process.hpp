// Starting a process inside the container's root: the container's main process and every
// `exec`. The parent learns of a failed exec (not found, not executable, bad user) through
// a close-on-exec pipe, so the host gets Docker's 126/127 instead of a silent exit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::guest {

struct Rlimit {
  int resource;
  uint64_t soft;
  uint64_t hard;
};

struct ProcessSpec {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::string user;  // docker's -u forms, resolved in the container's /etc/passwd and /etc/group
  bool tty = false;
  bool open_stdin = false;
  mode_t umask = 022;
  std::vector<Rlimit> rlimits;
  // The supplementary groups exactly (an OCI process's additionalGids), instead of the
  // memberships the container's /etc/group gives the user.
  std::optional<std::vector<uint32_t>> groups;
  uint16_t rows = 0, cols = 0;
};

struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd stdin_fd;   // pipe write end or the pty master; invalid without stdin
  UniqueFd stdout_fd;  // pipe read end or the pty master
  UniqueFd stderr_fd;  // pipe read end; invalid with a tty (merged into stdout)
};

// The exit status Docker reports when the process could not be started: 127 for a command
// that does not exist, 126 for one that cannot be executed, 125 otherwise.
int exit_code_for_start_failure(const Error& error);

// `root_path` is where the container's root is mounted in the init's view; `root_fd` an
// O_PATH fd to it (for resolving the user and the working directory inside it).
Result<SpawnedProcess> spawn_in_root(const std::string& root_path, int root_fd, const ProcessSpec& spec);

}  // namespace hyper::guest
