#include "guest-init/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "guest-init/system.hpp"
#include "guest-init/users.hpp"

namespace hyper::guest {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// What the child reports before _exit when it cannot exec: an errno and where it failed.
struct ChildFailure {
  int err;
  char where[120];
};

[[noreturn]] void fail_in_child(int report_fd, const char* where, int err) {
  ChildFailure failure{};
  failure.err = err;
  std::strncpy(failure.where, where, sizeof failure.where - 1);
  (void)!::write(report_fd, &failure, sizeof failure);
  _exit(err == ENOENT ? 127 : err == EACCES || err == ENOEXEC ? 126 : 125);
}

std::string env_value(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& entry : env)
    if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 && entry[key.size()] == '=')
      return entry.substr(key.size() + 1);
  return {};
}

// execvpe with the container's PATH; the first EACCES wins over later ENOENTs, as in
// execvp, so "permission denied" is what a user sees for a file that is there.
void exec_in_path(const std::vector<char*>& argv, const std::vector<char*>& envp, const std::string& path_var) {
  const std::string program = argv[0];
  if (program.find('/') != std::string::npos) {
    ::execve(program.c_str(), argv.data(), envp.data());
    return;
  }
  int saved = ENOENT;
  size_t start = 0;
  const std::string search = path_var.empty() ? kDefaultPath : path_var;
  while (start <= search.size()) {
    size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    std::string dir = search.substr(start, end - start);
    start = end + 1;
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    ::execve(candidate.c_str(), argv.data(), envp.data());
    if (errno == EACCES) saved = EACCES;
    else if (errno != ENOENT && errno != ENOTDIR) saved = errno;
  }
  errno = saved;
}

struct Pipe {
  UniqueFd read, write;
};

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno("pipe");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

struct Pty {
  UniqueFd master, slave;
};

Result<Pty> open_pty(const std::string& root_path, uint16_t rows, uint16_t cols) {
  // The container's own devpts instance, so the slave shows up in its /dev/pts.
  const std::string ptmx = root_path + "/dev/pts/ptmx";
  UniqueFd master(::open(ptmx.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) return Error::from_errno("open " + ptmx);
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) return Error::from_errno("unlock the pty");
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave.valid()) return Error::from_errno("open the pty's peer");
  if (rows != 0 && cols != 0) {
    winsize size{};
    size.ws_row = rows;
    size.ws_col = cols;
    ::ioctl(master.get(), TIOCSWINSZ, &size);
  }
  return Pty{std::move(master), std::move(slave)};
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

struct ChildSetup {
  const std::string& root_path;
  const ProcessSpec& spec;
  const ResolvedUser& user;
  const std::vector<std::string>& env;
  int stdin_fd, stdout_fd, stderr_fd;
  int report_fd;
};

[[noreturn]] void run_child(const ChildSetup& setup) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the init blocks SIGCHLD for its signalfd
  ::setsid();
  if (setup.spec.tty && ::ioctl(setup.stdout_fd, TIOCSCTTY, 0) != 0) fail_in_child(setup.report_fd, "set the controlling terminal", errno);
  if (::dup2(setup.stdin_fd, 0) < 0 || ::dup2(setup.stdout_fd, 1) < 0 || ::dup2(setup.stderr_fd, 2) < 0)
    fail_in_child(setup.report_fd, "set up stdio", errno);
  ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
  if (::chroot(setup.root_path.c_str()) != 0) fail_in_child(setup.report_fd, "chroot", errno);
  if (::chdir(setup.spec.cwd.c_str()) != 0) fail_in_child(setup.report_fd, "chdir to the working directory", errno);
  // While still root: raising a hard limit needs CAP_SYS_RESOURCE, which setuid drops.
  for (const auto& limit : setup.spec.rlimits) {
    const rlimit value{limit.soft, limit.hard};
    if (::setrlimit(static_cast<__rlimit_resource>(limit.resource), &value) != 0)
      fail_in_child(setup.report_fd, "setrlimit", errno);
  }
  std::vector<gid_t> groups(setup.user.supplementary_gids.begin(), setup.user.supplementary_gids.end());
  if (::setgroups(groups.size(), groups.data()) != 0) fail_in_child(setup.report_fd, "setgroups", errno);
  if (::setgid(setup.user.gid) != 0) fail_in_child(setup.report_fd, "setgid", errno);
  if (::setuid(setup.user.uid) != 0) fail_in_child(setup.report_fd, "setuid", errno);
  ::umask(setup.spec.umask);
  const auto argv = c_strings(setup.spec.args);
  const auto envp = c_strings(setup.env);
  exec_in_path(argv, envp, env_value(setup.env, "PATH"));
  fail_in_child(setup.report_fd, "exec", errno);
}

std::vector<std::string> final_env(const ProcessSpec& spec, const ResolvedUser& user) {
  std::vector<std::string> env = spec.env;
  if (env_value(env, "PATH").empty()) env.push_back(std::string("PATH=") + kDefaultPath);
  if (env_value(env, "HOME").empty()) env.push_back("HOME=" + (user.home.empty() ? "/" : user.home));
  if (spec.tty && env_value(env, "TERM").empty()) env.push_back("TERM=xterm");
  return env;
}

Error describe_failure(const ProcessSpec& spec, const ChildFailure& failure) {
  const std::string program = spec.args.empty() ? "" : spec.args[0];
  const std::string where = failure.where;
  if (where == "exec" && failure.err == ENOENT)
    return make_error(Errc::not_found, "exec: \"" + program + "\": executable file not found in $PATH");
  if (where == "exec" && (failure.err == EACCES || failure.err == ENOEXEC))
    return make_error(Errc::permission_denied, "exec: \"" + program + "\": permission denied");
  if (where.rfind("chdir", 0) == 0)
    return make_error(Errc::invalid_argument, "chdir to " + spec.cwd + ": " + std::strerror(failure.err));
  return make_error(Errc::io, where + " for \"" + program + "\": " + std::strerror(failure.err));
}

}  // namespace

int exit_code_for_start_failure(const Error& error) {
  if (error.code == Errc::not_found) return 127;
  if (error.code == Errc::permission_denied) return 126;
  return 125;
}

Result<SpawnedProcess> spawn_in_root(const std::string& root_path, int root_fd, const ProcessSpec& spec) {
  if (spec.args.empty()) return make_error(Errc::invalid_argument, "no command given");
  auto resolved = resolve_user_in_root(root_fd, spec.user);
  // An unknown user is the caller's error (Docker: 125), not a missing command (127).
  if (!resolved.ok()) return make_error(Errc::invalid_argument, resolved.error().message);
  ResolvedUser user = std::move(resolved).value();
  if (spec.groups) user.supplementary_gids = *spec.groups;
  if (spec.cwd.empty() || spec.cwd[0] != '/')
    return make_error(Errc::invalid_argument, "the working directory must be absolute: \"" + spec.cwd + "\"");
  // Docker creates a missing working directory.
  (void)HYPER_TRY(make_dirs_in_root(root_fd, spec.cwd));
  const auto env = final_env(spec, user);

  SpawnedProcess process;
  UniqueFd child_in, child_out, child_err;
  if (spec.tty) {
    Pty pty = HYPER_TRY(open_pty(root_path, spec.rows, spec.cols));
    process.stdout_fd = std::move(pty.master);
    process.stdin_fd = UniqueFd(::fcntl(process.stdout_fd.get(), F_DUPFD_CLOEXEC, 0));
    child_in = UniqueFd(::fcntl(pty.slave.get(), F_DUPFD_CLOEXEC, 0));
    child_err = UniqueFd(::fcntl(pty.slave.get(), F_DUPFD_CLOEXEC, 0));
    child_out = std::move(pty.slave);
  } else {
    Pipe out = HYPER_TRY(make_pipe());
    Pipe err = HYPER_TRY(make_pipe());
    process.stdout_fd = std::move(out.read);
    process.stderr_fd = std::move(err.read);
    child_out = std::move(out.write);
    child_err = std::move(err.write);
    if (spec.open_stdin) {
      Pipe in = HYPER_TRY(make_pipe());
      process.stdin_fd = std::move(in.write);
      child_in = std::move(in.read);
    } else {
      child_in = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
  }
  Pipe report = HYPER_TRY(make_pipe());

  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) {
    run_child(ChildSetup{root_path, spec, user, env, child_in.get(), child_out.get(), child_err.get(),
                         report.write.get()});
  }
  report.write.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(report.read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return describe_failure(spec, failure);
  }
  process.pid = pid;
  for (int fd : {process.stdin_fd.get(), process.stdout_fd.get(), process.stderr_fd.get()})
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return process;
}

}  // namespace hyper::guest
