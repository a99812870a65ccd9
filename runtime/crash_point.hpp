// Fault injection for the crash-consistency tests (tests/e2e/run.sh, group crash): with
// HYPER_CRASH_AT=<point> in its environment, a hyper process kills itself with SIGKILL
// when it reaches that point, as the OOM killer or a `kill -9` would stop it there, so a
// test can check that the next command repairs what was left or reports it clearly.
// Without the variable it costs one getenv. The points are listed in docs/containers.md.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace hyper::runtime {

inline void crash_point(const char* point) {
  const char* wanted = std::getenv("HYPER_CRASH_AT");
  if (!wanted || std::strcmp(wanted, point) != 0) return;
  ::kill(::getpid(), SIGKILL);
  // Still here: PID 1 of a PID namespace (the jailed VMM) ignores its own SIGKILL. Ending
  // without a destructor, an atexit handler or a flush is the same stop as far as the
  // files on disk can tell.
  ::_exit(128 + SIGKILL);
}

}  // namespace hyper::runtime
