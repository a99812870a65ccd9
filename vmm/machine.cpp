#include "vmm/machine.hpp"
#include "vmm/machine_impl.hpp"

#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "devices/serial.hpp"
#include "vmm/bus.hpp"
#include "vmm/clock.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/kvm.hpp"
#include "vmm/platform.hpp"
#include "vmm/seccomp.hpp"
#include "vmm/vcpu_loop.hpp"
#include "virtio/mmio.hpp"
#include "virtio/rng.hpp"

namespace hyper {
namespace {

constexpr uint64_t kMinMemoryMib = 32;
constexpr uint64_t kMaxMemoryMib = 1ULL << 20;  // 1 TiB: beyond that something is wrong
constexpr long kConsoleFlushIntervalNs = 50'000'000;
constexpr const char* kPanicMarker = "Kernel panic - not syncing";
constexpr std::chrono::milliseconds kFinalFlushPatience{2000};

// Checks what needs no host first, so a bad flag is reported as such even without KVM.
Status validate(const MachineConfig& config) {
  if (config.vcpus < 1 || config.vcpus > platform::max_vcpus())
    return make_error(Errc::invalid_argument, "--cpus must be between 1 and " + std::to_string(platform::max_vcpus()));
  if (config.memory_mib < kMinMemoryMib || config.memory_mib > kMaxMemoryMib)
    return make_error(Errc::invalid_argument, "--memory must be between " + std::to_string(kMinMemoryMib) + " and " +
                                                  std::to_string(kMaxMemoryMib) + " MiB");
  if (config.hugepages && config.memory_mib % 2)
    return make_error(Errc::invalid_argument, "--memory must be a multiple of 2 MiB with --hugepages");
  if (config.kernel.empty() && config.restore_from.empty()) return make_error(Errc::invalid_argument, "no kernel given");
  if (!config.restore_from.empty() && !config.filesystems.empty())
    return make_error(Errc::unsupported, "a snapshot cannot be restored with virtio-fs devices (their queues are virtiofsd's)");
  if ((config.snapshots || !config.restore_from.empty()) && !platform::has_snapshots())
    return make_error(Errc::unsupported, "snapshots and restores are not supported on this CPU architecture yet");
  if (!config.snapshot_path.empty() && !config.snapshots)
    return make_error(Errc::invalid_argument, "a snapshot path was given without enabling snapshots");
  for (size_t i = 0; i < config.filesystems.size(); ++i) {
    const auto& fs = config.filesystems[i];
    HYPER_CHECK(virtio::check_fs_tag(fs.tag));
    if (fs.socket_path.empty() && fs.socket_fd < 0)
      return make_error(Errc::invalid_argument, "virtio-fs " + fs.tag + ": no back-end socket given");
    for (size_t j = 0; j < i; ++j) {
      if (config.filesystems[j].tag == fs.tag)
        return make_error(Errc::invalid_argument, "two virtio-fs devices have the tag '" + fs.tag + "'");
    }
  }
  return {};
}

Status validate_for_host(const MachineConfig& config, const Kvm& kvm) {
  if (config.vcpus > kvm.max_vcpus())
    return make_error(Errc::unsupported, "this host's KVM allows at most " + std::to_string(kvm.max_vcpus()) + " vCPUs");
  return {};
}

// A console fd whose writes do not block the VMM. Pipes and terminals get a new open
// file description (through /proc/self/fd) with O_NONBLOCK, so the flag does not leak
// to everyone else sharing the caller's stdout; regular files never block. A device
// that cannot be opened twice (a virtio console port, say) keeps blocking writes: they
// happen on the event-loop thread only, never on a vCPU.
Result<UniqueFd> nonblocking_console(int fd) {
  if (fd < 0) return UniqueFd();
  struct stat st {};
  if (::fstat(fd, &st) < 0) return Error::from_errno("console fd");
  if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    UniqueFd reopened(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (reopened.valid()) return reopened;
  }
  UniqueFd duplicate(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!duplicate.valid()) return Error::from_errno("console fd");
  return duplicate;
}

// Blocks the stop signals for the scope, restoring the caller's mask on every path.
class SignalMaskGuard {
 public:
  explicit SignalMaskGuard(const sigset_t& blocked) { pthread_sigmask(SIG_BLOCK, &blocked, &previous_); }
  ~SignalMaskGuard() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalMaskGuard(const SignalMaskGuard&) = delete;
  SignalMaskGuard& operator=(const SignalMaskGuard&) = delete;

 private:
  sigset_t previous_;
};

Result<UniqueFd> periodic_timer(long interval_ns) {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!fd.valid()) return Error::from_errno("timerfd_create");
  itimerspec spec{};
  spec.it_interval.tv_nsec = interval_ns;
  spec.it_value.tv_nsec = interval_ns;
  if (::timerfd_settime(fd.get(), 0, &spec, nullptr) < 0) return Error::from_errno("timerfd_settime");
  return fd;
}

// Signals a CLI's machine handles: the ones that stop the VM, SIGUSR1, which prints
// the devices' state, and SIGUSR2, which saves a snapshot. Blocked on the run() thread (and inherited by vCPU threads) so
// that they arrive through a signalfd instead of interrupting anything.
sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  return set;
}

// Each kind of VMM thread's allow-list, compiled once per run; none with seccomp off.
struct ThreadFilters {
  std::optional<seccomp::Filter> vcpu, event_loop, io;

  static Result<ThreadFilters> compile(const MachineConfig& config, bool io_threads, const seccomp::Grants& grants) {
    ThreadFilters filters;
    if (!config.seccomp) return filters;
    const int report = config.seccomp_report_fd;
    filters.vcpu = HYPER_TRY(seccomp::Filter::compile(seccomp::ThreadKind::vcpu, report, grants));
    filters.event_loop = HYPER_TRY(seccomp::Filter::compile(seccomp::ThreadKind::event_loop, report, grants));
    if (io_threads) filters.io = HYPER_TRY(seccomp::Filter::compile(seccomp::ThreadKind::io, report, grants));
    return filters;
  }
};

// Confines the calling thread with `filter`, if any; a thread that cannot be confined
// must not serve the guest, so the VM stops.
bool confine(const std::optional<seccomp::Filter>& filter, const std::string& name, ExitLatch& exits) {
  if (!filter) return true;
  const Status applied = filter->apply(name.c_str());
  if (applied) return true;
  exits.report({ExitKind::error, 1, applied.error().message});
  return false;
}

// A device's own I/O thread: an event loop serving only that device's queue kicks, so a
// disk waiting for the host's storage never delays the console, network or vsock.
class DeviceThread {
 public:
  static Result<std::unique_ptr<DeviceThread>> create() {
    auto loop = HYPER_TRY(EventLoop::create());
    auto stop = HYPER_TRY(EventFd::create());
    auto t = std::unique_ptr<DeviceThread>(new DeviceThread(std::move(loop), std::move(stop)));
    HYPER_CHECK(t->loop_.add(t->stop_.fd(), [p = t.get()] { p->stop_.drain(); }));
    return t;
  }
  ~DeviceThread() { stop(); }
  EventLoop& loop() { return loop_; }
  // `filter`, `exits` and `gate` outlive the thread. It parks at `gate` between events.
  void start(const std::string& name, const std::optional<seccomp::Filter>& filter, ExitLatch& exits, PauseGate& gate) {
    thread_ = std::thread([this, name, &filter, &exits, &gate] {
      ::pthread_setname_np(::pthread_self(), ("hyper-" + name).c_str());
      if (!confine(filter, name, exits)) return;
      // The VM's end counts too: a disk must not write after a snapshot that stops it.
      const auto ending = [this, &exits] { return stopping_.load() || exits.stopping(); };
      while (!ending()) {
        const Status ran = loop_.run_until([&] { return ending() || gate.closed(); });
        if (!ran) exits.report({ExitKind::error, 1, ran.error().message});
        if (!ran || ending()) return;
        gate.park();
      }
    });
  }
  // Wakes the thread, so that it sees a closed gate.
  void kick() { stop_.signal(); }
  void stop() {
    stopping_ = true;
    stop_.signal();
    if (thread_.joinable()) thread_.join();
  }

 private:
  DeviceThread(EventLoop loop, EventFd stop) : loop_(std::move(loop)), stop_(std::move(stop)) {}
  EventLoop loop_;
  EventFd stop_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Serves the queue kicks of `device` on `loop`.
Status serve_kicks(EventLoop& loop, std::shared_ptr<virtio::VirtioDevice> device, const std::vector<EventFd>& kicks) {
  for (uint32_t q = 0; q < kicks.size(); ++q) {
    HYPER_CHECK(loop.add(kicks[q].fd(), [device, kick = &kicks[q], q] {
      (void)kick->drain();
      device->queue_notify(q);
    }));
  }
  return {};
}

constexpr std::chrono::seconds kVcpuStopTimeout{5};
constexpr std::chrono::milliseconds kVcpuRekickInterval{100};

// vCPU threads and their stop: kick every vCPU (immediate_exit + signal) until all
// threads have returned, within a bound.
class VcpuThreads {
 public:
  ~VcpuThreads() {
    for (auto& t : threads_)
      if (t.joinable()) t.detach();  // only reached when stop() gave up
  }
  template <class F>
  void start(F body) {
    threads_.emplace_back([this, body] {
      body();
      std::lock_guard lock(mutex_);
      ++finished_;
      done_.notify_all();
    });
  }
  // Makes each vCPU leave KVM_RUN once (to park, say).
  void kick(const std::vector<Vcpu>& vcpus) {
    for (size_t i = 0; i < threads_.size(); ++i) {
      request_immediate_exit(vcpus[i]);
      pthread_kill(threads_[i].native_handle(), kick_signal());
    }
  }
  // Returns false when some thread is still running after kVcpuStopTimeout.
  bool stop(const std::vector<Vcpu>& vcpus) {
    const auto deadline = std::chrono::steady_clock::now() + kVcpuStopTimeout;
    std::unique_lock lock(mutex_);
    while (finished_ < threads_.size()) {
      kick(vcpus);
      if (std::chrono::steady_clock::now() >= deadline) return false;
      done_.wait_for(lock, kVcpuRekickInterval);
    }
    lock.unlock();
    for (auto& t : threads_) t.join();
    return true;
  }

 private:
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable done_;
  size_t finished_ = 0;
};

}  // namespace

Status Machine::Impl::add_serial(Bus& bus, uint64_t base, uint32_t irq) {
  auto irq_fd = HYPER_TRY(EventFd::create());
  HYPER_CHECK(vm.register_irqfd(irq_fd.fd(), irq));
  auto output_ready = HYPER_TRY(EventFd::create());
  console = HYPER_TRY(nonblocking_console(config.console_fd));
  serial = std::make_shared<devices::Serial>(std::move(irq_fd), std::move(output_ready), console.get());
  return bus.insert(serial, base, devices::Serial::kRegisterCount);
}

void Machine::Impl::guest_exited(int status) {
  exits.report({ExitKind::guest_exit, status, "the guest exited with status " + std::to_string(status)});
}

void Machine::Impl::guest_reached_user_space() {
  uint64_t unset = 0;
  if (boot_timer_ns.compare_exchange_strong(unset, monotonic_ns())) {
    config.log("guest init reached user space after " + std::to_string((boot_timer_ns.load() - config.start_ns) / 1000) +
               " us");
  }
}

// A reset right after the kernel printed its panic banner is a panic (panic=-1 resets).
VmExit Machine::Impl::classify(VmExit exit) const {
  const bool reset_like = exit.kind == ExitKind::reset || exit.kind == ExitKind::triple_fault;
  if (reset_like && serial->tail().find(kPanicMarker) != std::string::npos)
    return {ExitKind::panic, 1, "the guest kernel panicked"};
  return exit;
}

Status Machine::Impl::add_devices() {
  cmdline = kBaseCmdline;
  HYPER_CHECK(add_platform_devices());
  HYPER_CHECK(add_virtio_devices());
  if (!config.extra_cmdline.empty()) cmdline += " " + config.extra_cmdline;
  return {};
}

// Each virtio device gets the next MMIO window and IRQ; its queue kicks arrive on
// ioeventfds that the event loop serves, so no vCPU ever runs device work. A device
// whose queues another process serves gives that process's kick eventfds instead
// (`backend_kicks`, one per queue): KVM signals them, and nothing here reads them.
Status Machine::Impl::add_virtio_device(std::shared_ptr<virtio::VirtioDevice> device,
                                        const std::vector<int>& backend_kicks) {
  const auto index = static_cast<uint32_t>(kicks.size());
  if (index >= platform::max_virtio_devices())
    return make_error(Errc::invalid_argument, "too many virtio devices: this machine has interrupt lines for " +
                                                  std::to_string(platform::max_virtio_devices()));
  const auto [base, irq] = platform::virtio_slot(index);
  auto irq_fd = HYPER_TRY(EventFd::create());
  HYPER_CHECK(vm.register_irqfd(irq_fd.fd(), irq));
  const uint32_t queue_count = static_cast<uint32_t>(device->queue_max_sizes().size());
  auto transport = std::make_shared<virtio::MmioTransport>(device, memory, std::move(irq_fd));
  HYPER_CHECK(mmio.insert(transport, base, virtio::kMmioWindowSize));
  windows.push_back({base, irq, transport});
  std::vector<EventFd> device_kicks;
  if (!backend_kicks.empty()) {
    if (backend_kicks.size() != queue_count)
      return make_error(Errc::invalid_argument, "a device gave " + std::to_string(backend_kicks.size()) +
                                                    " kick fds for " + std::to_string(queue_count) + " queues");
    for (uint32_t q = 0; q < queue_count; ++q)
      HYPER_CHECK(vm.register_ioeventfd(backend_kicks[q], base + virtio::kMmioQueueNotify, 4, q));
  }
  for (uint32_t q = 0; q < queue_count && backend_kicks.empty(); ++q) {
    auto kick = HYPER_TRY(EventFd::create());
    HYPER_CHECK(vm.register_ioeventfd(kick.fd(), base + virtio::kMmioQueueNotify, 4, q));
    device_kicks.push_back(std::move(kick));
  }
  kicks.push_back({device, std::move(device_kicks)});
  if (platform::virtio_on_cmdline()) cmdline += " " + virtio::mmio_cmdline_entry(base, irq);
  return {};
}

Status Machine::Impl::add_virtio_devices() {
  for (auto disk : config.disks) {
    disk.log = config.log;
    auto blk = HYPER_TRY(virtio::Blk::open(disk));
    for (const int fd : blk->sockets()) grants.disk_sockets.push_back(fd);
    HYPER_CHECK(add_virtio_device(std::move(blk)));
  }
  for (const auto& options : config.nets) {
    auto net = HYPER_TRY(virtio::Net::open(options));
    config.log("eth" + std::to_string(&options - config.nets.data()) + ": tap " + options.tap + ", MAC " +
               virtio::format_mac(net->mac()));
    HYPER_CHECK(add_virtio_device(std::move(net)));
  }
  if (config.vsock) HYPER_CHECK(add_virtio_device(HYPER_TRY(virtio::Vsock::create(*config.vsock))));
  if (config.rng) HYPER_CHECK(add_virtio_device(std::make_shared<virtio::Rng>()));
  return add_filesystems();
}

// Connects to each back-end now, before any thread confines itself (and before a
// caller's jail hides the socket's path).
Status Machine::Impl::add_filesystems() {
  for (auto options : config.filesystems) {
    options.log = config.log;
    auto fs = HYPER_TRY(virtio::Fs::connect(options));
    config.log("virtio-fs " + options.tag + ": vhost-user back-end " +
               (options.socket_path.empty() ? "fd " + std::to_string(options.socket_fd) : options.socket_path));
    grants.vhost_user_sockets.push_back(fs->socket_fd());
    const std::vector<int> fs_kicks = fs->kick_fds();
    HYPER_CHECK(add_virtio_device(std::move(fs), fs_kicks));
  }
  return {};
}

namespace {

// The snapshot to restore, its shape put into `config` (memory size, vCPU count).
Result<std::optional<std::pair<snapshot::Reader, MachineShape>>> open_restore(MachineConfig& config) {
  using Restore = std::optional<std::pair<snapshot::Reader, MachineShape>>;
  if (config.restore_from.empty()) return Restore();
  auto reader = HYPER_TRY(snapshot::Reader::open(config.restore_from));
  const auto bytes = HYPER_TRY(reader.section(snapshot::SectionKind::machine));
  auto shape = HYPER_TRY(MachineShape::decode(bytes));
  config.memory_mib = shape.memory_mib;
  config.vcpus = shape.vcpus;
  return Restore(std::make_pair(std::move(reader), std::move(shape)));
}

}  // namespace

Result<std::unique_ptr<Machine>> Machine::create(MachineConfig config) {
  if (config.start_ns == 0) config.start_ns = monotonic_ns();
  auto restore = HYPER_TRY(open_restore(config));
  HYPER_CHECK(validate(config));
  auto kvm = HYPER_TRY(Kvm::open());
  HYPER_CHECK(validate_for_host(config, kvm));
  if (kvm.is_pvm()) {
    config.log("host KVM is PVM (no VT-x/SVM): only guest kernels with PVM guest support "
               "(CONFIG_PVM_GUEST) can run here");
  }
  const unsigned long vm_type = HYPER_TRY(platform::vm_type(kvm, config.memory_mib << 20));
  auto vm = HYPER_TRY(kvm.create_vm(vm_type));
  HYPER_CHECK(platform::prepare_vm(vm));

  // Memory slots go in before the irqchip: once an irqchip exists, every slot update
  // waits for an SRCU grace period (measured on PVM: 0.07 ms before, 7-11 ms after).
  // Anonymous memory unless a vhost-user back-end must map it: only anonymous memory
  // takes the kernel and initrd copy-on-write and gets transparent huge pages
  // (docs/virtio.md, "Guest memory").
  const auto specs = platform::memory_layout(config.memory_mib << 20);
  const auto backing = config.filesystems.empty() ? MemoryBacking::anonymous : MemoryBacking::shared_memfd;
  auto memory = HYPER_TRY(GuestMemory::create(specs, config.hugepages, backing));
  uint32_t slot = 0;
  for (const auto& region : memory.regions())
    HYPER_CHECK(vm.set_user_memory_region(slot++, region.gpa, region.size(), region.mapping.data()));
  HYPER_CHECK(platform::create_early_irqchip(vm));

  auto wakeup = HYPER_TRY(EventFd::create());
  auto snapshot_wakeup = HYPER_TRY(EventFd::create());
  auto impl = std::make_unique<Impl>(std::move(config), std::move(kvm), std::move(vm), std::move(memory),
                                     std::move(wakeup), std::move(snapshot_wakeup));
  HYPER_CHECK(impl->build(restore.has_value()));
  if (restore) HYPER_CHECK(impl->restore(restore->first, restore->second));
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Machine::Machine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Machine::~Machine() = default;

const std::string& Machine::cmdline() const { return impl_->cmdline; }

void Machine::stop(VmExit exit) { impl_->exits.report(std::move(exit)); }

Status Machine::snapshot(const std::string& path) { return impl_->request_snapshot(path); }

std::string Machine::describe_devices() const {
  std::string text;
  for (const auto& w : impl_->windows) {
    char base[32];
    std::snprintf(base, sizeof base, "virtio-mmio@0x%llx ", static_cast<unsigned long long>(w.base));
    text += base + w.transport->describe() + "\n";
  }
  return text.empty() ? "no virtio devices\n" : text;
}

Result<RunResult> Machine::run() {
  Impl& m = *impl_;
  if (m.ran) return make_error(Errc::invalid_argument, "Machine::run called twice");
  m.ran = true;
  HYPER_CHECK(install_kick_handler());

  const sigset_t blocked = handled_signals();
  std::optional<SignalMaskGuard> mask;
  UniqueFd signal_fd;
  if (m.config.handle_signals) {
    // An ignored signal is discarded before a signalfd could see it, and a parent may
    // have left ours ignored (ctest does): SIGUSR1 and SIGUSR2 are requests to this VMM,
    // so take them back. The stop signals keep what the caller chose (nohup).
    ::signal(SIGUSR1, SIG_DFL);
    ::signal(SIGUSR2, SIG_DFL);
    mask.emplace(blocked);
    signal_fd.reset(::signalfd(-1, &blocked, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd.valid()) return Error::from_errno("signalfd");
  }

  auto loop = HYPER_TRY(EventLoop::create());
  HYPER_CHECK(loop.add(m.exits.wakeup_fd(), [&] { m.exits.acknowledge_wakeup(); }));
  HYPER_CHECK(loop.add(m.serial->output_ready_fd(), [&] {
    uint64_t count;
    (void)!::read(m.serial->output_ready_fd(), &count, sizeof count);
    m.serial->flush();
  }));
  // Partial lines (a prompt, say) still reach the console within this interval.
  auto flush_timer = HYPER_TRY(periodic_timer(kConsoleFlushIntervalNs));
  HYPER_CHECK(loop.add(flush_timer.get(), [&] {
    uint64_t ticks;
    (void)!::read(flush_timer.get(), &ticks, sizeof ticks);
    m.serial->flush();
  }));
  if (signal_fd.valid()) {
    HYPER_CHECK(loop.add(signal_fd.get(), [&] {
      signalfd_siginfo info{};
      if (::read(signal_fd.get(), &info, sizeof info) != sizeof info) return;
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGUSR1) {
        m.config.log("device state:\n" + describe_devices());
        return;
      }
      if (sig == SIGUSR2) {
        m.snapshot_on_signal();
        return;
      }
      m.exits.report({ExitKind::signal, 128 + sig, std::string("stopped by signal ") + ::strsignal(sig)});
    }));
  }

  std::vector<std::unique_ptr<DeviceThread>> device_threads;
  for (auto& dev : m.kicks) {
    HYPER_CHECK(dev.device->attach(loop));
    if (!dev.device->wants_io_thread()) {
      HYPER_CHECK(serve_kicks(loop, dev.device, dev.queues));
      continue;
    }
    device_threads.push_back(HYPER_TRY(DeviceThread::create()));
    HYPER_CHECK(serve_kicks(device_threads.back()->loop(), dev.device, dev.queues));
  }

  m.grants.snapshots = m.config.snapshots;
  const ThreadFilters filters = HYPER_TRY(ThreadFilters::compile(m.config, !device_threads.empty(), m.grants));
  VcpuContext ctx{m.pio, m.mmio, m.exits, m.kvm.is_pvm(), m.first_run_ns, &m.gate};
  VcpuThreads threads;
  m.parking_threads = m.vcpus.size() + device_threads.size();
  m.kick_threads = [&] {
    threads.kick(m.vcpus);
    for (auto& t : device_threads) t->kick();
  };
  HYPER_CHECK(loop.add(m.snapshot_requests.fd(), [&] {
    (void)m.snapshot_requests.drain();
    m.serve_snapshot_request();
  }));
  try {
    for (size_t i = 0; i < device_threads.size(); ++i)
      device_threads[i]->start("io" + std::to_string(i), filters.io, m.exits, m.gate);
    for (const auto& vcpu : m.vcpus) {
      threads.start([&vcpu, &ctx, &filters, &m] {
        const std::string name = "vcpu" + std::to_string(vcpu.id());
        ::pthread_setname_np(::pthread_self(), ("hyper-" + name).c_str());
        if (confine(filters.vcpu, name, m.exits)) run_vcpu(vcpu, ctx);
      });
    }
  } catch (const std::system_error& e) {  // the threads already started are stopped below
    m.exits.report({ExitKind::error, 1, std::string("cannot start a vCPU or I/O thread: ") + e.what()});
  }
  // Only now: the threads created above would have inherited this thread's filter.
  (void)confine(filters.event_loop, "event-loop", m.exits);

  m.accept_snapshots();
  const Status loop_status = loop.run_until([&] { return m.exits.stopping(); });
  m.fail_snapshot_requests();
  if (!loop_status) m.exits.report({ExitKind::error, 1, loop_status.error().message});
  if (!threads.stop(m.vcpus)) {
    // A vCPU that ignores immediate_exit and signals is stuck in the host kernel; waiting
    // longer would hang the VMM, so end the process and let the kernel reclaim the VM.
    m.serial->flush();
    std::fprintf(stderr, "hyper-vmm: a vCPU thread did not leave KVM_RUN within %d s of the stop; exiting\n",
                 static_cast<int>(kVcpuStopTimeout.count()));
    std::_Exit(1);
  }
  for (auto& t : device_threads) t->stop();
  m.serial->flush(kFinalFlushPatience);
  if (const uint64_t dropped = m.serial->dropped_bytes())
    m.config.log("the console reader fell behind: " + std::to_string(dropped) + " bytes of guest output were dropped");

  RunResult result{m.classify(*m.exits.result()), {}, m.serial->tail()};
  result.timings = {m.config.start_ns, m.first_run_ns.load(), m.boot_timer_ns.load(), monotonic_ns()};
  return result;
}

}  // namespace hyper
