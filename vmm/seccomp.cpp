#include "vmm/seccomp.hpp"

#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#if defined(__x86_64__)
#include "vmm/kvm_abi.hpp"
#endif
#include "vmm/unique_fd.hpp"

namespace hyper::seccomp {
namespace {

struct Rule {
  int nr;
  std::vector<scmp_arg_cmp> args;  // all must hold; several rules for one call are alternatives
};

// How a vCPU thread reads the guest's program counter for an internal error's report.
#if defined(__x86_64__)
constexpr unsigned long kPcGetter = KVM_GET_REGS;
#else
constexpr unsigned long kPcGetter = KVM_GET_ONE_REG;
#endif

scmp_arg_cmp arg_is(unsigned index, scmp_datum_t value) { return {index, SCMP_CMP_EQ, value, 0}; }
scmp_arg_cmp arg_lacks(unsigned index, scmp_datum_t bits) { return {index, SCMP_CMP_MASKED_EQ, bits, 0}; }

void append(std::vector<Rule>& to, std::vector<Rule> rules) {
  to.insert(to.end(), std::make_move_iterator(rules.begin()), std::make_move_iterator(rules.end()));
}

// What every thread does: copy data through fds it was given, allocate memory, take
// locks, read the clock, take the vCPU kick, signal within this process, and end.
std::vector<Rule> common_rules() {
  const auto self = static_cast<scmp_datum_t>(::getpid());
  return {
      {SCMP_SYS(read), {}},          {SCMP_SYS(write), {}},
      {SCMP_SYS(close), {}},         {SCMP_SYS(mmap), {arg_lacks(2, PROT_EXEC)}},
      {SCMP_SYS(mprotect), {arg_lacks(2, PROT_EXEC)}},
      {SCMP_SYS(munmap), {}},        {SCMP_SYS(madvise), {}},
      {SCMP_SYS(mremap), {}},        {SCMP_SYS(brk), {}},
      {SCMP_SYS(futex), {}},         {SCMP_SYS(sched_yield), {}},
      {SCMP_SYS(clock_gettime), {}}, {SCMP_SYS(gettimeofday), {}},
      {SCMP_SYS(nanosleep), {}},     {SCMP_SYS(clock_nanosleep), {}},
      {SCMP_SYS(rt_sigreturn), {}},  {SCMP_SYS(rt_sigprocmask), {}},
      {SCMP_SYS(restart_syscall), {}},
      {SCMP_SYS(getpid), {}},        {SCMP_SYS(gettid), {}},
      {SCMP_SYS(tgkill), {arg_is(0, self)}},  // pthread_kill, raise and abort: this process only
      {SCMP_SYS(exit), {}},          {SCMP_SYS(exit_group), {}},
  };
}

// The sanitizer runtimes read /proc and their own binary for reports, and the leak
// checker stops the world through a ptrace()ing clone at exit.
std::vector<Rule> sanitizer_rules() {
#ifdef HYPER_SECCOMP_SANITIZER
  return {{SCMP_SYS(open), {}},         {SCMP_SYS(openat), {}},     {SCMP_SYS(readlink), {}},
          {SCMP_SYS(readlinkat), {}},   {SCMP_SYS(fstat), {}},      {SCMP_SYS(stat), {}},
          {SCMP_SYS(lstat), {}},        {SCMP_SYS(newfstatat), {}}, {SCMP_SYS(getdents64), {}},
          {SCMP_SYS(getdents), {}},
          {SCMP_SYS(lseek), {}},        {SCMP_SYS(pread64), {}},    {SCMP_SYS(sigaltstack), {}},
          {SCMP_SYS(rt_sigaction), {}}, {SCMP_SYS(prctl), {}},      {SCMP_SYS(sched_getaffinity), {}},
          {SCMP_SYS(clone), {}},        {SCMP_SYS(ptrace), {}},     {SCMP_SYS(wait4), {}},
          {SCMP_SYS(waitid), {}},       {SCMP_SYS(pipe2), {}},      {SCMP_SYS(getrlimit), {}},
          {SCMP_SYS(prlimit64), {}},    {SCMP_SYS(uname), {}},      {SCMP_SYS(getppid), {}},
          {SCMP_SYS(kill), {}},         {SCMP_SYS(fcntl), {}}};
#else
  return {};
#endif
}

// `calls`, each allowed only with one of `sockets` as its first argument.
std::vector<Rule> on_sockets_only(const std::vector<int>& sockets, std::initializer_list<int> calls) {
  std::vector<Rule> rules;
  for (const int fd : sockets)
    for (const int nr : calls) rules.push_back({nr, {arg_is(0, static_cast<scmp_datum_t>(fd))}});
  return rules;
}

// A vhost-user conversation, on its own socket only: the request with its fds, the
// reply (fds a hostile back-end attaches are closed), and the shutdown that gives a
// connection up after a bad reply. No socket can be made or connected.
std::vector<Rule> vhost_user_rules(const Grants& grants) {
  return on_sockets_only(grants.vhost_user_sockets, {SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(shutdown)});
}

// An NBD disk's connection, on its I/O thread: libnbd sends and receives on its socket,
// waits in poll(2), and the disk shuts the socket down when it gives the server up.
std::vector<Rule> network_disk_rules(const Grants& grants) {
  std::vector<Rule> rules = on_sockets_only(grants.disk_sockets, {SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg),
                                                                  SCMP_SYS(recvmsg), SCMP_SYS(shutdown)});
  if (!rules.empty()) append(rules, {{SCMP_SYS(poll), {}}, {SCMP_SYS(ppoll), {}}});
  return rules;
}

// Taking a snapshot on the event-loop thread: KVM's state getters only (no setter, no
// KVM_RUN), and the calls Writer::write makes to create its file and rename it.
std::vector<Rule> snapshot_rules(const Grants& grants) {
  if (!grants.snapshots) return {};
  std::vector<Rule> rules;
#if defined(__x86_64__)
  for (const unsigned long request : {KVM_GET_MP_STATE, KVM_GET_REGS, KVM_GET_SREGS, kvm_abi::kGetXsave, kvm_abi::kGetXsave2,
                                      KVM_GET_XCRS, KVM_GET_DEBUGREGS, KVM_GET_LAPIC, kvm_abi::kGetMsrs,
                                      KVM_GET_VCPU_EVENTS, KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK})
    rules.push_back({SCMP_SYS(ioctl), {arg_is(1, request)}});
#endif
  append(rules, {{SCMP_SYS(openat), {}}, {SCMP_SYS(ftruncate), {}}, {SCMP_SYS(lseek), {}}, {SCMP_SYS(rename), {}}});
  return rules;
}

std::vector<Rule> rules_for(ThreadKind kind, const Grants& grants) {
  std::vector<Rule> rules = common_rules();
  switch (kind) {
    case ThreadKind::vcpu:
      append(rules, vhost_user_rules(grants));
      append(rules, {
                        {SCMP_SYS(ioctl), {arg_is(1, KVM_RUN)}},
                        {SCMP_SYS(ioctl), {arg_is(1, kPcGetter)}},  // an internal error's guest PC
                        // A driver's status write (on a vCPU) activates or resets a device:
                        // a tap gets the offloads the driver accepted, and the event loop's
                        // interest and timers change.
                        {SCMP_SYS(ioctl), {arg_is(1, TUNSETOFFLOAD)}},
                        {SCMP_SYS(epoll_ctl), {}},
                        {SCMP_SYS(timerfd_settime), {}},
                    });
      break;
    case ThreadKind::event_loop:
      append(rules, {
                        {SCMP_SYS(epoll_wait), {}},      {SCMP_SYS(epoll_pwait), {}},
                        {SCMP_SYS(epoll_ctl), {}},       {SCMP_SYS(poll), {}},  // the console's final flush
                        {SCMP_SYS(ppoll), {}},           {SCMP_SYS(readv), {}},  // tap frames
                        {SCMP_SYS(writev), {}},          {SCMP_SYS(getrandom), {}},  // virtio-rng
                        {SCMP_SYS(timerfd_settime), {}}, {SCMP_SYS(timerfd_gettime), {}},
                        {SCMP_SYS(fcntl), {}},
                        // virtio-blk with io=loop
                        {SCMP_SYS(pread64), {}},         {SCMP_SYS(pwrite64), {}},
                        {SCMP_SYS(preadv), {}},          {SCMP_SYS(pwritev), {}},
                        {SCMP_SYS(fdatasync), {}},       {SCMP_SYS(fsync), {}},
                        // vsock: host programs connect to its Unix socket, the guest connects
                        // to theirs; nothing but Unix sockets
                        {SCMP_SYS(socket), {arg_is(0, AF_UNIX)}},
                        {SCMP_SYS(connect), {}},         {SCMP_SYS(accept4), {}},
                        {SCMP_SYS(recvfrom), {}},        {SCMP_SYS(sendto), {}},
                        {SCMP_SYS(recvmsg), {}},         {SCMP_SYS(sendmsg), {}},
                        {SCMP_SYS(shutdown), {}},        {SCMP_SYS(getsockopt), {}},
                        // teardown: the vsock device removes its socket if it is still its own
                        {SCMP_SYS(newfstatat), {}},      {SCMP_SYS(fstat), {}},
                        {SCMP_SYS(lstat), {}},           {SCMP_SYS(unlink), {}},
#if defined(__aarch64__)
                        // arm64 has no unlink: glibc's is unlinkat, here never of a directory
                        {SCMP_SYS(unlinkat), {arg_is(2, 0)}},
#endif
                    });
      append(rules, snapshot_rules(grants));
      break;
    case ThreadKind::io:
      append(rules, {
                        {SCMP_SYS(epoll_wait), {}}, {SCMP_SYS(epoll_pwait), {}},
                        {SCMP_SYS(pread64), {}},    {SCMP_SYS(pwrite64), {}},
                        {SCMP_SYS(preadv), {}},     {SCMP_SYS(pwritev), {}},
                        {SCMP_SYS(fdatasync), {}},  {SCMP_SYS(fsync), {}},
                    });
      append(rules, network_disk_rules(grants));
      break;
  }
  append(rules, sanitizer_rules());
  return rules;
}

// --- the violation report: async-signal-safe, so no allocation and no stdio ---

constexpr size_t kNameBytes = 24;
thread_local char t_thread_name[kNameBytes] = "unconfined";
std::atomic<int> g_report_fd{-1};

struct SyscallName {
  long nr;
  const char* name;
};
// Names for the calls a subverted thread would most likely try; others show as numbers.
constexpr SyscallName kNotable[] = {
    {SYS_execve, "execve"},   {SYS_execveat, "execveat"},   {SYS_clone, "clone"},   {SYS_clone3, "clone3"},
    {SYS_ptrace, "ptrace"},   {SYS_socket, "socket"},       {SYS_connect, "connect"}, {SYS_bind, "bind"},
    {SYS_listen, "listen"},   {SYS_accept, "accept"},       {SYS_accept4, "accept4"}, {SYS_openat, "openat"},
    {SYS_openat2, "openat2"}, {SYS_ioctl, "ioctl"},         {SYS_mmap, "mmap"},     {SYS_mprotect, "mprotect"},
    {SYS_kill, "kill"},       {SYS_tgkill, "tgkill"},       {SYS_unlinkat, "unlinkat"},
    {SYS_mount, "mount"},     {SYS_prctl, "prctl"},         {SYS_setuid, "setuid"}, {SYS_sendto, "sendto"},
    {SYS_getdents64, "getdents64"}, {SYS_newfstatat, "newfstatat"}, {SYS_rt_sigaction, "rt_sigaction"},
    {SYS_sigaltstack, "sigaltstack"}, {SYS_getrandom, "getrandom"}, {SYS_pread64, "pread64"},
    {SYS_pwrite64, "pwrite64"}, {SYS_epoll_ctl, "epoll_ctl"},
    {SYS_wait4, "wait4"},     {SYS_process_vm_readv, "process_vm_readv"},
    {SYS_memfd_create, "memfd_create"}, {SYS_bpf, "bpf"}, {SYS_seccomp, "seccomp"},
    {SYS_sendmsg, "sendmsg"}, {SYS_recvmsg, "recvmsg"}, {SYS_shutdown, "shutdown"},
#if defined(__x86_64__)  // the older calls arm64 never had
    {SYS_fork, "fork"},       {SYS_vfork, "vfork"},         {SYS_open, "open"},     {SYS_unlink, "unlink"},
    {SYS_chmod, "chmod"},     {SYS_rename, "rename"},       {SYS_readlink, "readlink"},
    {SYS_epoll_wait, "epoll_wait"},
#endif
};

class Message {
 public:
  void add(const char* s) {
    while (*s && used_ < sizeof buf_) buf_[used_++] = *s++;
  }
  void add(unsigned long n) {
    char digits[24];
    size_t count = 0;
    do digits[count++] = static_cast<char>('0' + n % 10);
    while ((n /= 10) && count < sizeof digits);
    while (count && used_ < sizeof buf_) buf_[used_++] = digits[--count];
  }
  void write_to(int fd) const { (void)!::write(fd, buf_, used_); }

 private:
  char buf_[192];
  size_t used_ = 0;
};

void on_sigsys(int, siginfo_t* info, void*) {
  const long nr = info->si_syscall;
  Message m;
  m.add("hyper-vmm: seccomp: thread ");
  m.add(t_thread_name);
  m.add(" made a forbidden system call ");
  m.add(static_cast<unsigned long>(nr));
  for (const auto& known : kNotable) {
    if (known.nr != nr) continue;
    m.add(" (");
    m.add(known.name);
    m.add(")");
  }
  m.add("\n");
  m.write_to(STDERR_FILENO);
  if (const int fd = g_report_fd.load(std::memory_order_relaxed); fd >= 0) m.write_to(fd);
  ::_exit(kViolationStatus);
}

Status install_reporter() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGSYS, &sa, nullptr) < 0) return Error::from_errno("sigaction(SIGSYS)");
  return {};
}

Error libseccomp_error(int rc, const std::string& what) {
  return make_error(Errc::io, "seccomp: " + what + ": " + std::strerror(-rc));
}

// libseccomp 2.5 exports BPF only to an fd: through a memfd into memory.
Result<std::vector<sock_filter>> export_program(scmp_filter_ctx ctx) {
  UniqueFd fd(::memfd_create("hyper-seccomp", MFD_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("seccomp: memfd_create");
  if (const int rc = seccomp_export_bpf(ctx, fd.get()); rc < 0) return libseccomp_error(rc, "export");
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    return make_error(Errc::io, "seccomp: the exported filter has a bad size");
  std::vector<sock_filter> program(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(fd.get(), program.data(), static_cast<size_t>(size), 0) != size)
    return Error::from_errno("seccomp: reading the exported filter");
  return program;
}

}  // namespace

const char* kind_name(ThreadKind kind) {
  switch (kind) {
    case ThreadKind::vcpu: return "vcpu";
    case ThreadKind::event_loop: return "event-loop";
    case ThreadKind::io: return "io";
  }
  return "?";
}

std::vector<int> allowed_syscalls(ThreadKind kind, const Grants& grants) {
  std::vector<int> numbers;
  for (const auto& rule : rules_for(kind, grants)) numbers.push_back(rule.nr);
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  return numbers;
}

Result<Filter> Filter::compile(ThreadKind kind, int report_fd, const Grants& grants) {
  HYPER_CHECK(install_reporter());
  g_report_fd.store(report_fd, std::memory_order_relaxed);
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_TRAP), seccomp_release);
  if (!ctx) return make_error(Errc::io, "seccomp: seccomp_init failed");
  for (const auto& rule : rules_for(kind, grants)) {
    const int rc = seccomp_rule_add_array(ctx.get(), SCMP_ACT_ALLOW, rule.nr, static_cast<unsigned>(rule.args.size()),
                                          rule.args.data());
    if (rc < 0) return libseccomp_error(rc, "rule for system call " + std::to_string(rule.nr));
  }
  return Filter(kind, HYPER_TRY(export_program(ctx.get())));
}

Status Filter::apply(const char* name) const {
  std::strncpy(t_thread_name, name, kNameBytes - 1);
  t_thread_name[kNameBytes - 1] = '\0';
  // A blocked SIGSYS would turn the report into a silent core dump.
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  pthread_sigmask(SIG_UNBLOCK, &sys, nullptr);
  // Without privileges a filter needs no_new_privs; it too is per thread.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Error::from_errno("seccomp: PR_SET_NO_NEW_PRIVS");
  sock_fprog prog{static_cast<unsigned short>(program_.size()), const_cast<sock_filter*>(program_.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
    return Error::from_errno(std::string("seccomp: loading the ") + kind_name(kind_) + " filter");
  return {};
}

}  // namespace hyper::seccomp
