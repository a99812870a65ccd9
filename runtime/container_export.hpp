// A container's writable layer as the uncompressed OCI layer tar its agent exports
// (docs/agent-protocol.md), streamed into a sink as the frames arrive: live from a
// running container's agent (`export`), or, for a stopped container, from a VM booted on
// its scratch disk alone, read-only, with no process started (`export_disk`).
#pragma once

#include <cstddef>
#include <functional>

#include "runtime/container_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

// Takes each piece of the tar in order; an error ends the export.
using LayerSink = std::function<Status(const void* data, size_t size)>;

// The running container keeps running: files it changes meanwhile may be caught
// half-written.
Status export_running_layer(const Container& container, const LayerSink& sink);

// The stopped container stays stopped. `vm_claim` (ContainerStore::claim_vm) is the
// caller's proof that no monitor boots on the scratch disk meanwhile. A container without
// a scratch disk (one that never ran) has an empty layer.
Status export_stopped_layer(const Container& container, const FileLock& vm_claim, const LayerSink& sink);

}  // namespace hyper::runtime
