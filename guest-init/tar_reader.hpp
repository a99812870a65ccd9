// A bounded reader for the uncompressed tar streams of image layers. Layers are hostile:
// every header is checksummed, every length and count is bounded, and nothing is read
// outside the byte source, so a malformed layer costs an error, never a crash or an
// allocation larger than the limits below.
//
// Formats: POSIX ustar (name + prefix), GNU (longname 'L', longlink 'K', base-256
// numbers), pax extended headers 'x' (path, linkpath, size, uid, gid, mtime with a
// fraction, SCHILY.xattr.*); pax global headers 'g' are skipped. Sparse files and other
// vendor types are refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace hyper::tar {

inline constexpr size_t kBlockSize = 512;
inline constexpr size_t kMaxPath = 4096;              // path and link target, in bytes
inline constexpr size_t kMaxPaxHeader = 1u << 20;     // one 'x' header's data
inline constexpr size_t kMaxXattrs = 128;             // per entry
inline constexpr size_t kMaxXattrBytes = 64u << 10;   // names plus values, per entry
inline constexpr size_t kMaxXattrName = 255;          // the kernel's XATTR_NAME_MAX

// Random-access bytes of one archive. The stream ends at size(): nothing past it is read.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  [[nodiscard]] virtual uint64_t size() const = 0;
  // Reads up to `len` bytes at `offset`; fewer only where the source ends.
  virtual Result<size_t> read_at(uint64_t offset, void* buf, size_t len) = 0;
};

// `size` bytes of a file or block device starting at `base`. Does not own the fd.
class FdSource final : public ByteSource {
 public:
  FdSource(int fd, uint64_t base, uint64_t size) : fd_(fd), base_(base), size_(size) {}
  [[nodiscard]] uint64_t size() const override { return size_; }
  Result<size_t> read_at(uint64_t offset, void* buf, size_t len) override;

 private:
  int fd_;
  uint64_t base_;
  uint64_t size_;
};

// A buffer in memory (tests, fuzzing). The buffer must outlive the source.
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  [[nodiscard]] uint64_t size() const override { return bytes_.size(); }
  Result<size_t> read_at(uint64_t offset, void* buf, size_t len) override;

 private:
  std::string_view bytes_;
};

// Reads exactly `len` bytes or fails (a short read is a truncated archive: bad_image).
Status read_exact(ByteSource& source, uint64_t offset, void* buf, size_t len);

enum class EntryType : uint8_t {
  regular,       // '0', '\0', '7'
  hard_link,     // '1'
  symlink,       // '2'
  char_device,   // '3'
  block_device,  // '4'
  directory,     // '5' (and '\0' with a trailing '/')
  fifo,          // '6'
};

[[nodiscard]] const char* entry_type_name(EntryType type);

struct Xattr {
  std::string name;
  std::string value;
};

struct Entry {
  EntryType type = EntryType::regular;
  std::string path;         // as stored in the archive: not normalised, never contains NUL
  std::string link_target;  // hard links and symlinks
  uint32_t mode = 0;        // permission bits with setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;  // < 1e9
  uint32_t dev_major = 0;   // character and block devices
  uint32_t dev_minor = 0;
  // Bytes of data, all inside the source. Only regular files have data: as in Go's
  // archive/tar, the size field of the other types is ignored and no data follows them.
  uint64_t size = 0;
  uint64_t data_offset = 0;    // in the source
  uint64_t header_offset = 0;  // of the entry's first header (extended headers included)
  std::vector<Xattr> xattrs;   // distinct names
};

// The entries of one archive in order. After an error the reader stays failed.
class Reader {
 public:
  explicit Reader(ByteSource& source) : source_(source) {}
  // The next entry, or nullopt at the end of the archive.
  Result<std::optional<Entry>> next();

 private:
  Result<std::optional<Entry>> read_entry();
  Status check_end_of_archive(uint64_t zero_block);

  ByteSource& source_;
  uint64_t offset_ = 0;  // of the next header
  bool done_ = false;
  bool failed_ = false;
};

// A path or name from an archive, quoted and cut for an error message: control
// characters and non-ASCII bytes as \xNN, at most ~200 bytes.
[[nodiscard]] std::string printable(std::string_view text);

}  // namespace hyper::tar
