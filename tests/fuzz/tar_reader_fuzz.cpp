// Layers are hostile: whatever the bytes, the tar reader must stop with an entry list or
// an error, every entry's data must lie inside the input, and the limits must hold.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "guest-init/tar_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hyper::tar;
  MemorySource source(std::string_view(reinterpret_cast<const char*>(data), size));
  Reader reader(source);
  char buf[4096];
  for (;;) {
    auto next = reader.next();
    if (!next.ok() || !*next) break;
    const Entry& entry = **next;
    if (entry.path.size() > kMaxPath || entry.link_target.size() > kMaxPath) std::abort();
    if (entry.xattrs.size() > kMaxXattrs || entry.mtime_nsec >= 1000000000 || entry.mode > 07777) std::abort();
    size_t xattr_bytes = 0;
    for (const Xattr& x : entry.xattrs) xattr_bytes += x.name.size() + x.value.size();
    if (xattr_bytes > kMaxXattrBytes) std::abort();
    if (entry.data_offset > size || entry.size > size - entry.data_offset) std::abort();
    for (uint64_t done = 0; done < entry.size;) {
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(sizeof buf, entry.size - done));
      if (!read_exact(source, entry.data_offset + done, buf, chunk).ok()) std::abort();
      done += chunk;
    }
  }
  return 0;
}
