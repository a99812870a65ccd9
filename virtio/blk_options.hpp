// How a virtio-blk disk is opened (hyper-vmm --disk, MachineConfig::disks).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace hyper::virtio {

struct BlkOptions {
  // A raw image file, or an NBD URI (nbd://HOST[:PORT][/EXPORT], nbd+unix:///EXPORT?socket=PATH).
  std::string path;
  bool read_only = false;
  std::string serial;  // GET_ID answer, at most 20 bytes
  // Serve the disk on an I/O thread of its own, so the event loop (console, network,
  // vsock) never waits for the disk; false serves it on the event loop. NBD disks always
  // get a thread: a network round trip must never hold up the event loop.
  bool io_thread = true;
  // NBD only: how long connecting, and each request, may take before the disk gives the
  // server up (every later request then fails at once: the guest sees I/O errors).
  uint32_t network_timeout_ms = 30000;
  // An image under one sector is refused, unless it stands in for a disk that a restore
  // will put there (a VM template's): the guest then sees a disk of size 0 until then.
  bool empty_allowed = false;
  // Gets a line when a network disk's server goes away (the machine passes its log).
  std::function<void(const std::string&)> log = [](const std::string&) {};
};

}  // namespace hyper::virtio
