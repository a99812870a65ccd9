// Snapshots of a running machine and restores into a new one (docs/snapshots.md).
//
// A snapshot is taken with every vCPU out of KVM_RUN and every I/O thread between
// requests, parked at the machine's PauseGate; the event-loop thread, which takes it,
// serves nothing meanwhile. What is saved depends on the CPU: machine_snapshot_x86.cpp.
#include <chrono>
#include <cstring>
#include <future>

#include "vmm/machine_impl.hpp"
#include "vmm/snapshot_codec.hpp"

namespace hyper {
namespace {

constexpr std::chrono::milliseconds kPausePatience{5000};

}  // namespace

const char* virtio_type_name(uint32_t type) {
  switch (type) {
    case 1: return "net";
    case 2: return "blk";
    case 4: return "rng";
    case 19: return "vsock";
    case 26: return "fs";
    default: return "?";
  }
}

Result<MachineShape> MachineShape::decode(std::span<const uint8_t> bytes) {
  snapshot::Decoder d(bytes, "machine");
  MachineShape shape;
  shape.memory_mib = HYPER_TRY(d.get<uint64_t>());
  shape.vcpus = HYPER_TRY(d.get<uint32_t>());
  shape.xsave_size = HYPER_TRY(d.get<uint64_t>());
  shape.devices = HYPER_TRY(d.get_vector<uint32_t>());
  HYPER_CHECK(d.finish());
  return shape;
}

std::vector<uint8_t> MachineShape::encode() const {
  snapshot::Encoder e;
  e.put(memory_mib).put(vcpus).put(xsave_size).put_vector(devices);
  return e.bytes();
}

MachineShape Machine::Impl::shape() const {
  MachineShape s{config.memory_mib, config.vcpus, xsave_bytes, {}};
  for (const auto& w : kicks) s.devices.push_back(w.device->device_type());
  return s;
}

void Machine::Impl::accept_snapshots() {
  std::lock_guard lock(snapshot_mutex);
  accepting_snapshots = true;
}

Status Machine::Impl::request_snapshot(const std::string& path) {
  std::future<Status> done;
  {
    std::lock_guard lock(snapshot_mutex);
    if (!accepting_snapshots) return make_error(Errc::invalid_argument, "the machine is not running: nothing to snapshot");
    pending_snapshots.push_back({path, {}});
    done = pending_snapshots.back().done.get_future();
  }
  snapshot_requests.signal();
  return done.get();
}

void Machine::Impl::serve_snapshot_request() {
  std::vector<SnapshotRequest> requests;
  {
    std::lock_guard lock(snapshot_mutex);
    requests.swap(pending_snapshots);
  }
  for (auto& r : requests) r.done.set_value(snapshot(r.path, false));
}

void Machine::Impl::fail_snapshot_requests() {
  std::lock_guard lock(snapshot_mutex);
  accepting_snapshots = false;
  for (auto& r : pending_snapshots) r.done.set_value(make_error(Errc::invalid_argument, "the machine stopped before the snapshot"));
  pending_snapshots.clear();
}

void Machine::Impl::snapshot_on_signal() {
  if (config.snapshot_path.empty()) {
    config.log("SIGUSR2: no snapshot path was given (--snapshot PATH): ignored");
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  const Status saved = snapshot(config.snapshot_path, config.stop_after_snapshot);
  if (!saved) {
    config.log("snapshot failed: " + saved.error().message);
    return;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  config.log("saved a snapshot to " + config.snapshot_path + " in " + std::to_string(ms.count()) + " ms");
}

Status Machine::Impl::snapshot(const std::string& path, bool then_stop) {
  if (exits.stopping()) return make_error(Errc::invalid_argument, "the machine is stopping: nothing to snapshot");
  if (!config.snapshots)
    return make_error(Errc::invalid_argument, "this machine was created without snapshots enabled (--snapshot PATH)");
  for (const auto& k : kicks) {
    if (!k.device->can_snapshot())
      return make_error(Errc::unsupported, std::string("a virtio-") + virtio_type_name(k.device->device_type()) +
                                               " device's queues are served by another process: it cannot be saved");
  }
  gate.close();
  // Opened on every way out, exceptions included: parked threads wait for it.
  struct Reopen {
    PauseGate& gate;
    ~Reopen() { gate.open(); }
  } reopen{gate};
  kick_threads();
  if (!gate.wait_parked(parking_threads, kPausePatience))
    return make_error(Errc::io, "the machine's threads did not pause within 5 s");
  HYPER_CHECK(save_snapshot(path));
  // Before the threads go on: not one more guest instruction or disk write after the
  // memory that was saved.
  if (then_stop) exits.report({ExitKind::snapshot, 0, "saved a snapshot to " + path + " and stopped"});
  return {};
}

}  // namespace hyper
