// The machine's insides, shared by its builder and run loop (machine.cpp) and its
// snapshots (machine_snapshot.cpp). Not part of the library's interface.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "devices/serial.hpp"
#include "virtio/mmio.hpp"
#include "vmm/bus.hpp"
#include "vmm/event_fd.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/kvm.hpp"
#include "vmm/machine.hpp"
#include "vmm/pause_gate.hpp"
#include "vmm/seccomp.hpp"
#include "vmm/snapshot_file.hpp"
#include "vmm/vm_exit.hpp"

namespace hyper {

// What a snapshot can only be restored into: the same memory, vCPUs and devices (by
// type, in order), on a CPU whose XSAVE area fits in the saved one.
struct MachineShape {
  uint64_t memory_mib = 0;
  uint32_t vcpus = 0;
  uint64_t xsave_size = 0;
  std::vector<uint32_t> devices;  // virtio device types, in MMIO window order

  [[nodiscard]] std::vector<uint8_t> encode() const;
  static Result<MachineShape> decode(std::span<const uint8_t> bytes);
};

// x86: KVM_CAP_XSAVE2's answer, at least sizeof(kvm_xsave) (arm64 machines keep xsave_bytes 0).
size_t xsave_size(const Vm& vm);
// "blk", "net", ...: a virtio device type's name in errors.
const char* virtio_type_name(uint32_t type);

struct Machine::Impl {
  Impl(MachineConfig c, Kvm k, Vm v, GuestMemory m, EventFd wakeup, EventFd snapshot_wakeup)
      : config(std::move(c)),
        kvm(std::move(k)),
        vm(std::move(v)),
        memory(std::move(m)),
        exits(std::move(wakeup)),
        snapshot_requests(std::move(snapshot_wakeup)) {}

  // The devices, the kernel (unless restoring: the snapshot's memory holds the guest),
  // the vCPUs and what else the CPU architecture needs (vmm/platform_*.cpp).
  Status build(bool restoring);
  // The UART and the guest's exit and boot-timer registers (vmm/platform_*.cpp).
  Status add_platform_devices();
  // The 16550 UART on `bus` (I/O ports or MMIO), raising `irq`; config.console_fd gets
  // what the guest writes.
  Status add_serial(Bus& bus, uint64_t base, uint32_t irq);
  // add_platform_devices(), then the virtio devices; starts the kernel command line.
  Status add_devices();
  Status add_virtio_devices();
  Status add_virtio_device(std::shared_ptr<virtio::VirtioDevice> device, const std::vector<int>& backend_kicks = {});
  Status add_filesystems();
  // The guest's exit status and its boot timer, from the registers of either CPU.
  void guest_exited(int status);
  void guest_reached_user_space();
  VmExit classify(VmExit exit) const;

  MachineConfig config;
  Kvm kvm;
  Vm vm;
  GuestMemory memory;
  ExitLatch exits;
  Bus pio{"PIO"};
  Bus mmio{"MMIO"};
  std::vector<Vcpu> vcpus;
  struct DeviceKicks {
    std::shared_ptr<virtio::VirtioDevice> device;
    std::vector<EventFd> queues;  // index = queue
  };
  std::vector<DeviceKicks> kicks;
  struct Window {
    uint64_t base;
    uint32_t irq;  // x86: the IOAPIC pin; arm64: the shared peripheral interrupt
    std::shared_ptr<virtio::MmioTransport> transport;
  };
  std::vector<Window> windows;  // every virtio device, in the order of its MMIO window
  seccomp::Grants grants;       // the vhost-user back-ends' and NBD disks' sockets
  UniqueFd console;  // our own non-blocking handle on config.console_fd
  UniqueFd arch_device;  // arm64: the in-kernel GIC, which lives as long as this fd
  std::shared_ptr<devices::Serial> serial;
  std::string cmdline;
  std::atomic<uint64_t> first_run_ns{0};
  std::atomic<uint64_t> boot_timer_ns{0};
  bool ran = false;

  // Snapshots (machine_snapshot.cpp).
  PauseGate gate;                       // vCPU and I/O threads park here during a snapshot
  size_t parking_threads = 0;           // how many threads park at the gate (set by run())
  std::function<void()> kick_threads;   // makes them look at the gate (set by run())
  EventFd snapshot_requests;            // Machine::snapshot() wakes the event loop with it
  struct SnapshotRequest {
    std::string path;
    std::promise<Status> done;
  };
  std::mutex snapshot_mutex;
  std::vector<SnapshotRequest> pending_snapshots;  // guarded by snapshot_mutex
  bool accepting_snapshots = false;                // guarded by snapshot_mutex: run() is serving

  size_t xsave_bytes = 0;  // the vCPUs' XSAVE area (asked once: the event loop may not ask KVM)
  [[nodiscard]] MachineShape shape() const;
  [[nodiscard]] Status check_shape(const MachineShape& saved) const;
  void accept_snapshots();
  Status request_snapshot(const std::string& path);  // any thread; waits for the event loop
  void serve_snapshot_request();                     // event loop
  void fail_snapshot_requests();                     // event loop, once it stopped
  void snapshot_on_signal();                         // event loop: SIGUSR2
  // Pauses the running machine and saves it to `path` (event loop); then stops it, or
  // resumes it.
  Status snapshot(const std::string& path, bool then_stop);
  Status save_snapshot(const std::string& path);
  // Puts a snapshot's state into this machine, created with the snapshot's shape and
  // not yet run.
  Status restore(const snapshot::Reader& reader, const MachineShape& saved);
};

}  // namespace hyper
