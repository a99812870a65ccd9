#include "runtime/container_export.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "runtime/agent_client.hpp"
#include "runtime/vm_session.hpp"

namespace hyper::runtime {
namespace {

// Between two frames of an export; generous, since nested (emulated) VMs are slow.
constexpr int kExportIdleTimeoutMs = 120'000;
constexpr int kBootTimeoutMs = 120'000;
// After the exit frame the agent unmounts and powers off at once.
constexpr int kPowerOffTimeoutMs = 10'000;
// Enough for the guest kernel, the init and the page cache of the files being read.
constexpr uint64_t kExportVmMemoryMib = 256;
// An export's error output is a line or two; more is kept from being buffered.
constexpr size_t kMaxExportErrorBytes = 4096;
// A tar with no entry is its end-of-archive marker alone: two zero blocks.
constexpr size_t kEmptyTarBytes = 1024;

// The rest of an export whose request was accepted: the tar as stdout frames, errors as
// stderr frames, then the exporter's exit status.
Status receive_export(AgentConnection& conn, const LayerSink& sink) {
  std::string errors;
  for (;;) {
    const auto frame = HYPER_TRY(conn.receive(kExportIdleTimeoutMs));
    if (frame.kind == agent::Kind::stdout_data) {
      HYPER_CHECK(sink(frame.payload.data(), frame.payload.size()));
    } else if (frame.kind == agent::Kind::stderr_data) {
      errors.append(frame.payload, 0, kMaxExportErrorBytes - std::min(errors.size(), kMaxExportErrorBytes));
    } else if (frame.kind == agent::Kind::exit) {
      const auto status = HYPER_TRY(parse_json_payload(frame));
      if (status.value("status", -1) == 0) return {};
      while (!errors.empty() && errors.back() == '\n') errors.pop_back();
      return make_error(Errc::io, "exporting the container's writable layer failed" +
                                      (errors.empty() ? std::string() : ": " + errors));
    }
  }
}

Status export_from_disk(const std::filesystem::path& scratch, const Container& container, const LayerSink& sink) {
  VmSpec spec;
  spec.dir = container.dir;  // free for our vsock sockets: no monitor runs (the claim)
  spec.memory_mib = kExportVmMemoryMib;
  spec.disks.push_back(virtio::BlkOptions{.path = scratch.string(), .read_only = true, .serial = {}, .io_thread = true});
  auto session = HYPER_TRY(VmSession::boot(spec, kBootTimeoutMs));
  AgentConnection& agent = session->agent();
  Status exported = [&]() -> Status {
    (void)HYPER_TRY(agent.request({{"op", "export_disk"}, {"writable", "/dev/vda"}}, kBootTimeoutMs));
    return receive_export(agent, sink);
  }();
  // Closing the boot connection tells the agent the host has the status: it powers off.
  agent.close_write();
  (void)session->wait(kPowerOffTimeoutMs);
  return exported;
}

}  // namespace

Status export_running_layer(const Container& container, const LayerSink& sink) {
  auto conn = HYPER_TRY(AgentConnection::dial(container.dir));
  (void)HYPER_TRY(conn.request({{"op", "export"}}, kExportIdleTimeoutMs));
  return receive_export(conn, sink);
}

Status export_stopped_layer(const Container& container, const FileLock& /*vm_claim*/, const LayerSink& sink) {
  const auto scratch = container.dir / kScratchDiskName;
  if (::access(scratch.c_str(), F_OK) != 0) {
    if (errno != ENOENT) return Error::from_errno("access " + scratch.string());
    const std::string empty(kEmptyTarBytes, '\0');
    return sink(empty.data(), empty.size());
  }
  return export_from_disk(scratch, container, sink);
}

}  // namespace hyper::runtime
