// Each thread kind's seccomp filter, applied in a forked child (no /dev/kvm needed): what
// the kind needs still works, a forbidden call ends the child with status 159 and the
// reporter's message.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/seccomp.hpp"

using namespace hyper;
using seccomp::ThreadKind;

namespace {

struct ChildEnd {
  int status = -1;     // the exit status, or 128 + the signal that killed it
  std::string stderr_text;
  std::string report;  // what the report fd received
};

std::string drain(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  return text;
}

// Runs `body` in a child whose calling thread carries `kind`'s filter (named "test-thread").
// The child exits with what `body` returns, 0 meaning every allowed call worked.
ChildEnd run_confined(ThreadKind kind, const std::function<int()>& body, const seccomp::Grants& grants = {}) {
  int err[2], report[2];
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(err[1], STDERR_FILENO);
    auto filter = seccomp::Filter::compile(kind, report[1], grants);
    if (!filter.ok()) _exit(200);
    if (!filter->apply("test-thread").ok()) _exit(201);
    _exit(body());
  }
  ::close(err[1]);
  ::close(report[1]);
  ChildEnd end;
  end.stderr_text = drain(err[0]);
  end.report = drain(report[0]);
  ::close(err[0]);
  ::close(report[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  end.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return end;
}

void expect_violation(const ChildEnd& end, const std::string& call) {
  CHECK(end.status == seccomp::kViolationStatus);
  const std::string message = "hyper-vmm: seccomp: thread test-thread made a forbidden system call " + call + "\n";
  CHECK(end.stderr_text == message);
  CHECK(end.report == message);
}

// Calls every kind needs: memory, locks, time, the kick signal's round trip, eventfds.
int common_calls_work() {
  std::vector<char> big(64 << 20, 'x');  // malloc's mmap path
  if (big[12345] != 'x') return 10;
  std::string grown;
  for (int i = 0; i < 10000; ++i) grown += "more";  // brk or mremap
  timespec ts{};
  if (::clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 11;
  if (::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) != 0) return 12;  // without the vDSO
  const timespec nap{0, 1000};
  if (::nanosleep(&nap, nullptr) != 0) return 13;
  if (::raise(SIGUSR1) != 0) return 14;  // tgkill to ourselves, then rt_sigreturn
  if (::syscall(SYS_gettid) <= 0) return 15;
  return 0;
}

void on_usr1(int) {}

struct IgnoreUsr1 {
  IgnoreUsr1() { ::signal(SIGUSR1, on_usr1); }
  ~IgnoreUsr1() { ::signal(SIGUSR1, SIG_DFL); }
};

const char* const kTrue[] = {"/bin/true", nullptr};

int do_execve() {
  ::execve(kTrue[0], const_cast<char* const*>(kTrue), environ);
  return 99;  // reached only if the call was allowed and failed
}

int unix_socket() { return ::socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 98 : 97; }

bool listed(ThreadKind kind, long nr, const seccomp::Grants& grants = {}) {
  const auto calls = seccomp::allowed_syscalls(kind, grants);
  return std::find(calls.begin(), calls.end(), nr) != calls.end();
}

}  // namespace

TEST_CASE("seccomp: no thread kind may exec, fork, ptrace or open files") {
  for (auto kind : {ThreadKind::vcpu, ThreadKind::event_loop, ThreadKind::io}) {
    CAPTURE(seccomp::kind_name(kind));
    CHECK(seccomp::allowed_syscalls(kind).size() > 20);
    for (long nr : {SYS_execve, SYS_execveat, SYS_fork, SYS_vfork, SYS_clone3, SYS_mount, SYS_bpf}) {
      CAPTURE(nr);
      CHECK_FALSE(listed(kind, nr));
    }
  }
  CHECK(listed(ThreadKind::vcpu, SYS_ioctl));
  CHECK_FALSE(listed(ThreadKind::vcpu, SYS_socket));
  CHECK_FALSE(listed(ThreadKind::io, SYS_socket));
  CHECK(listed(ThreadKind::event_loop, SYS_socket));
}

// Descriptors the VMM would have opened before its threads confined themselves.
struct Fds {
  Fds() {
    event = ::eventfd(0, EFD_CLOEXEC);
    epoll = ::epoll_create1(EPOLL_CLOEXEC);
    char name[] = "/tmp/hyper-seccomp-test-XXXXXX";
    file = ::mkstemp(name);
    path = name;
    REQUIRE(event >= 0);
    REQUIRE(epoll >= 0);
    REQUIRE(file >= 0);
  }
  ~Fds() {
    ::close(event);
    ::close(epoll);
    ::close(file);
    ::unlink(path.c_str());
  }
  int event, epoll, file;
  std::string path;
};

// An eventfd's round trip and the event loop's bookkeeping on it.
int eventfd_calls_work(const Fds& fds) {
  const uint64_t one = 1;
  uint64_t got = 0;
  if (::write(fds.event, &one, sizeof one) != sizeof one) return 30;
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (::epoll_ctl(fds.epoll, EPOLL_CTL_ADD, fds.event, &ev) != 0) return 31;
  if (::read(fds.event, &got, sizeof got) != sizeof got || got != 1) return 32;
  return 0;
}

int disk_calls_work(const Fds& fds) {
  const char data[] = "sector";
  char back[sizeof data] = {};
  if (::pwrite(fds.file, data, sizeof data, 512) != sizeof data) return 40;
  if (::pread(fds.file, back, sizeof back, 512) != sizeof back || std::memcmp(data, back, sizeof data) != 0) return 41;
  if (::fdatasync(fds.file) != 0) return 42;
  epoll_event ev{};
  if (::epoll_wait(fds.epoll, &ev, 1, 0) < 0) return 43;
  return 0;
}

TEST_CASE("seccomp: a vCPU thread may run KVM and touch memory, nothing more") {
  const IgnoreUsr1 usr1;
  const Fds fds;
  SUBCASE("what it needs works") {
    const ChildEnd end = run_confined(ThreadKind::vcpu, [&fds] {
      if (int rc = common_calls_work()) return rc;
      if (int rc = eventfd_calls_work(fds)) return rc;
      // KVM's ioctls pass the filter: on a non-KVM fd the kernel itself says ENOTTY.
      if (::ioctl(fds.event, KVM_RUN, 0) != -1 || errno != ENOTTY) return 20;
      kvm_regs regs{};
      if (::ioctl(fds.event, KVM_GET_REGS, &regs) != -1 || errno != ENOTTY) return 21;
      if (::ioctl(fds.event, TUNSETOFFLOAD, 0) != -1 || errno != ENOTTY) return 23;  // net activation
      if (::close(fds.event) != 0) return 22;
      return 0;
    });
    CHECK(end.stderr_text == "");
    CHECK(end.status == 0);
  }
  SUBCASE("execve") { expect_violation(run_confined(ThreadKind::vcpu, do_execve), "59 (execve)"); }
  SUBCASE("socket") { expect_violation(run_confined(ThreadKind::vcpu, unix_socket), "41 (socket)"); }
  SUBCASE("an ioctl other than KVM's") {
    expect_violation(run_confined(ThreadKind::vcpu,
                                  [&fds] {
                                    termios t{};
                                    return ::ioctl(fds.event, TCGETS, &t) == 0 ? 96 : 95;
                                  }),
                     "16 (ioctl)");
  }
  SUBCASE("executable memory") {
    expect_violation(run_confined(ThreadKind::vcpu,
                                  [] {
                                    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC,
                                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                                    return p == MAP_FAILED ? 94 : 93;
                                  }),
                     "9 (mmap)");
  }
  SUBCASE("disk I/O") {
    expect_violation(run_confined(ThreadKind::vcpu,
                                  [&fds] {
                                    const char c = 0;
                                    return ::pwrite(fds.file, &c, 1, 0) >= 0 ? 92 : 91;
                                  }),
                     "18 (pwrite64)");
  }
}

TEST_CASE("seccomp: a vCPU thread may talk to a vhost-user back-end on its socket, and on no other") {
  const IgnoreUsr1 usr1;
  int pair[2], other[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, other) == 0);
  const seccomp::Grants grants{.vhost_user_sockets = {pair[0]}, .disk_sockets = {}};
  const auto send_one = [](int fd) {
    char byte = 'q';
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return ::sendmsg(fd, &msg, MSG_NOSIGNAL) == 1;
  };
  CHECK_FALSE(listed(ThreadKind::vcpu, SYS_sendmsg));  // not without a back-end
  for (long nr : {SYS_sendmsg, SYS_recvmsg, SYS_shutdown}) CHECK(listed(ThreadKind::vcpu, nr, grants));
  CHECK_FALSE(listed(ThreadKind::vcpu, SYS_socket, grants));
  CHECK_FALSE(listed(ThreadKind::vcpu, SYS_connect, grants));
  SUBCASE("on its socket: a request, the reply, the shutdown after a bad one") {
    const ChildEnd end = run_confined(ThreadKind::vcpu, [&] {
      if (int rc = common_calls_work()) return rc;
      if (!send_one(pair[0])) return 70;
      char byte = 0;
      if (::read(pair[1], &byte, 1) != 1 || ::write(pair[1], "r", 1) != 1) return 71;
      iovec iov{&byte, 1};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      if (::recvmsg(pair[0], &msg, MSG_CMSG_CLOEXEC) != 1 || byte != 'r') return 72;
      if (::shutdown(pair[0], SHUT_RDWR) != 0) return 73;
      return 0;
    }, grants);
    CHECK(end.stderr_text == "");
    CHECK(end.status == 0);
  }
  SUBCASE("another socket") {
    expect_violation(run_confined(ThreadKind::vcpu, [&] { return send_one(other[0]) ? 82 : 81; }, grants),
                     "46 (sendmsg)");
  }
  SUBCASE("without the grant") {
    expect_violation(run_confined(ThreadKind::vcpu, [&] { return send_one(pair[0]) ? 80 : 79; }), "46 (sendmsg)");
  }
  for (int fd : {pair[0], pair[1], other[0], other[1]}) ::close(fd);
}

TEST_CASE("seccomp: a disk's I/O thread may talk to its NBD server on that connection, and on no other") {
  const IgnoreUsr1 usr1;
  int pair[2], other[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, other) == 0);
  const seccomp::Grants grants{.vhost_user_sockets = {}, .disk_sockets = {pair[0]}};
  CHECK_FALSE(listed(ThreadKind::io, SYS_sendto));  // not without a network disk
  CHECK_FALSE(listed(ThreadKind::io, SYS_poll));
  for (long nr : {SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_shutdown, SYS_poll})
    CHECK(listed(ThreadKind::io, nr, grants));
  CHECK_FALSE(listed(ThreadKind::io, SYS_socket, grants));
  CHECK_FALSE(listed(ThreadKind::io, SYS_connect, grants));
  CHECK_FALSE(listed(ThreadKind::vcpu, SYS_sendto, grants));
  SUBCASE("on its connection: libnbd's calls") {
    const ChildEnd end = run_confined(ThreadKind::io, [&] {
      if (int rc = common_calls_work()) return rc;
      if (::send(pair[0], "q", 1, MSG_NOSIGNAL) != 1) return 60;
      char byte = 0;
      if (::read(pair[1], &byte, 1) != 1 || ::write(pair[1], "r", 1) != 1) return 61;
      pollfd p{pair[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) != 1) return 62;
      if (::recv(pair[0], &byte, 1, 0) != 1 || byte != 'r') return 63;
      if (::shutdown(pair[0], SHUT_RDWR) != 0) return 64;
      return 0;
    }, grants);
    CHECK(end.stderr_text == "");
    CHECK(end.status == 0);
  }
  SUBCASE("another socket") {
    expect_violation(run_confined(ThreadKind::io, [&] { return ::send(other[0], "q", 1, MSG_NOSIGNAL) == 1 ? 66 : 65; },
                                  grants),
                     "44 (sendto)");
  }
  for (int fd : {pair[0], pair[1], other[0], other[1]}) ::close(fd);
}

TEST_CASE("seccomp: the event loop may serve devices and vsock's Unix sockets") {
  const IgnoreUsr1 usr1;
  const Fds fds;
  // A host program's listener, as the vsock tests' peer has.
  const std::string sock = fds.path + ".sock";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  SUBCASE("what it needs works") {
    const ChildEnd end = run_confined(ThreadKind::event_loop, [&] {
      if (int rc = common_calls_work()) return rc;
      if (int rc = eventfd_calls_work(fds)) return rc;
      if (int rc = disk_calls_work(fds)) return rc;  // virtio-blk with io=loop
      uint8_t entropy[16];
      if (::getrandom(entropy, sizeof entropy, 0) != sizeof entropy) return 50;
      const int out = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (out < 0) return 51;
      if (::connect(out, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return 52;
      const int in = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (in < 0) return 53;
      if (::send(out, "CONNECT 5\n", 10, MSG_NOSIGNAL) != 10) return 54;
      char line[16];
      if (::recv(in, line, sizeof line, 0) != 10) return 55;
      if (::shutdown(out, SHUT_WR) != 0) return 56;
      pollfd p{in, POLLIN, 0};
      if (::poll(&p, 1, 1000) != 1) return 57;
      ::close(in);
      ::close(out);
      // Teardown: the vsock device removes its own socket.
      struct stat st {};
      if (::lstat(sock.c_str(), &st) != 0 || ::unlink(sock.c_str()) != 0) return 58;
      return 0;
    });
    CHECK(end.stderr_text == "");
    CHECK(end.status == 0);
  }
  SUBCASE("an IP socket") {
    expect_violation(run_confined(ThreadKind::event_loop,
                                  [] { return ::socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 90 : 89; }),
                     "41 (socket)");
  }
  SUBCASE("execve") { expect_violation(run_confined(ThreadKind::event_loop, do_execve), "59 (execve)"); }
  SUBCASE("any ioctl") {
    expect_violation(run_confined(ThreadKind::event_loop,
                                  [&fds] { return ::ioctl(fds.event, KVM_RUN, 0) == 0 ? 88 : 87; }),
                     "16 (ioctl)");
  }
  SUBCASE("signals to another process") {
    const pid_t parent = ::getpid();
    expect_violation(run_confined(ThreadKind::event_loop,
                                  [parent] { return ::syscall(SYS_tgkill, parent, parent, 0) == 0 ? 86 : 85; }),
                     "234 (tgkill)");
  }
  ::close(listener);
  ::unlink(sock.c_str());
}

TEST_CASE("seccomp: a disk's I/O thread may only do disk I/O") {
  const IgnoreUsr1 usr1;
  const Fds fds;
  SUBCASE("what it needs works") {
    const ChildEnd end = run_confined(ThreadKind::io, [&fds] {
      if (int rc = common_calls_work()) return rc;
      if (int rc = disk_calls_work(fds)) return rc;
      const uint64_t one = 1;
      if (::write(fds.event, &one, sizeof one) != sizeof one) return 60;  // the interrupt
      return 0;
    });
    CHECK(end.stderr_text == "");
    CHECK(end.status == 0);
  }
  SUBCASE("socket") { expect_violation(run_confined(ThreadKind::io, unix_socket), "41 (socket)"); }
  SUBCASE("execve") { expect_violation(run_confined(ThreadKind::io, do_execve), "59 (execve)"); }
  SUBCASE("epoll_ctl") {
    expect_violation(run_confined(ThreadKind::io,
                                  [&fds] {
                                    epoll_event ev{};
                                    return ::epoll_ctl(fds.epoll, EPOLL_CTL_ADD, fds.event, &ev) == 0 ? 84 : 83;
                                  }),
                     "233 (epoll_ctl)");
  }
}

TEST_CASE("seccomp: a filter confines only the thread that applies it") {
  const ChildEnd end = run_confined(ThreadKind::io, [] { return 0; });
  REQUIRE(end.status == 0);
  // In a child of its own: the confined thread's sibling still opens sockets.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto filter = seccomp::Filter::compile(ThreadKind::vcpu);
    if (!filter.ok()) _exit(200);
    int applied = -1;
    std::thread confined([&] { applied = filter->apply("vcpu0").ok() ? 0 : 1; });
    confined.join();
    if (applied != 0) _exit(201);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    _exit(fd >= 0 ? 0 : 202);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
