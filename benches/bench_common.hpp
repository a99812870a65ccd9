// What the benchmark programs share: starting a child with its stdout/stderr on pipes,
// reading `key=value` figures out of its output, and min/median/max statistics.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace hyper::bench {

struct Spawned {
  pid_t pid;
  int out, err;  // the read ends of the child's stdout and stderr
};

inline double now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Everything the pipe holds until its writer closes it; closes `fd`.
inline std::string read_all(int fd) {
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return text;
}

inline std::optional<Spawned> spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args, env;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (char** e = environ; *e; ++e) env.push_back(*e);
  for (const auto& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    std::cerr << "bench: cannot start " << argv[0] << ": " << std::strerror(rc) << '\n';
    ::close(out[0]);
    ::close(err[0]);
    return std::nullopt;
  }
  return Spawned{pid, out[0], err[0]};
}

// The number after "key=" in `text`.
inline std::optional<double> field(const std::string& text, const std::string& key) {
  const auto pos = text.find(key + "=");
  if (pos == std::string::npos) return std::nullopt;
  const char* start = text.c_str() + pos + key.size() + 1;
  char* end = nullptr;
  const double v = std::strtod(start, &end);
  return end == start ? std::nullopt : std::optional<double>(v);
}

// Milliseconds from exec to exit of `command`; nothing when it failed (said on stderr).
inline std::optional<double> time_command(const char* program, const std::vector<std::string>& command) {
  const double start = now_ms();
  auto child = spawn(command, {});
  if (!child) return std::nullopt;
  const std::string out = read_all(child->out), err = read_all(child->err);
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << program << ": " << command[0] << " failed (status " << WEXITSTATUS(status) << "):\n" << out << err;
    return std::nullopt;
  }
  return now_ms() - start;
}

struct Stats {
  double min, median, max;
  size_t n;
};

inline std::optional<Stats> stats(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return Stats{v.front(), median, v.back(), n};
}

// Parses argv into `vm`. Returns the status to exit with when the program should stop
// here: 0 after --help, 2 for a bad command line or fewer than one run.
inline std::optional<int> parse_command_line(int argc, char** argv, const boost::program_options::options_description& desc,
                                             boost::program_options::variables_map& vm, const char* program,
                                             const int& runs) {
  namespace po = boost::program_options;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << '\n';
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << program << ": " << e.what() << '\n';
    return 2;
  }
  if (runs < 1) {
    std::cerr << program << ": --runs must be at least 1\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace hyper::bench
