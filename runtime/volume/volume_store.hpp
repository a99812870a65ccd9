// Named volumes under the state root, kept as `docker volume` keeps them, so that every
// `hyper` command sees the same ones without a daemon:
//
//   volumes/lock                         held while volumes are created, removed or
//                                        snapshotted, and by `run` from resolving its
//                                        volumes until its container is recorded
//   volumes/<name>/volume.json           name, driver, size, created, NBD URI (written once)
//   volumes/<name>/disk.ext4             the local driver's sparse ext4 image
//   volumes/<name>/use.lock              flock'ed by each running container that mounts
//                                        the volume: shared for :ro, exclusive for rw, since
//                                        ext4 on a block device has one writer or only readers
//   volumes/<name>/snapshots/<snap>.ext4 a point-in-time copy (a reflink where possible)
//   volumes/<name>/snapshots/<snap>.json its name, time and size
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/file_lock.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::volume {

inline constexpr const char* kLocalDriver = "local";
inline constexpr const char* kNbdDriver = "nbd";
inline constexpr uint64_t kDefaultVolumeBytes = 10ull << 30;
inline constexpr uint64_t kMinVolumeBytes = 16ull << 20;   // ext4 with its journal
inline constexpr uint64_t kMaxVolumeBytes = 16ull << 40;

struct Volume {
  std::string name;
  std::string driver = kLocalDriver;
  std::string created;  // RFC 3339
  uint64_t size_bytes = 0;
  std::string uri;  // the nbd driver's export
  bool anonymous = false;
  std::filesystem::path dir;

  [[nodiscard]] std::filesystem::path disk() const { return dir / "disk.ext4"; }
  [[nodiscard]] std::filesystem::path use_lock() const { return dir / "use.lock"; }
  // What the VMM opens: the image file, or the NBD URI.
  [[nodiscard]] std::string device() const { return driver == kNbdDriver ? uri : disk().string(); }
};

struct Snapshot {
  std::string name;
  std::string volume;
  std::string created;
  uint64_t size_bytes = 0;
  std::string method;  // "reflink" or "sparse copy": how it was taken
  std::filesystem::path path;
};

struct VolumeRequest {
  std::optional<std::string> name;  // generated (64 hex digits) when absent
  std::string driver = kLocalDriver;
  std::map<std::string, std::string> options;  // --opt KEY=VALUE: size= (local), uri= (nbd)
  std::optional<std::string> from_snapshot;    // VOLUME/SNAPSHOT, or SNAPSHOT when unique
  bool anonymous = false;
};

class VolumeStore {
 public:
  static Result<VolumeStore> open(const std::filesystem::path& dir);

  // The store-wide lock (see above); create() and remove() take it themselves.
  [[nodiscard]] Result<FileLock> lock() const;

  // A new volume; an existing name with the same driver is returned as it is, as Docker does.
  // The caller holds lock().
  Result<Volume> create_locked(const VolumeRequest& request) const;
  Result<Volume> create(const VolumeRequest& request) const;
  [[nodiscard]] Result<Volume> find(const std::string& name) const;
  [[nodiscard]] Result<std::vector<Volume>> list() const;  // by name
  // The caller has made sure no container refers to it; refuses one that a running
  // container still holds. The caller holds lock().
  Status remove_locked(const Volume& volume) const;

  [[nodiscard]] Result<std::vector<Snapshot>> snapshots(const Volume& volume) const;  // oldest first
  [[nodiscard]] Result<Snapshot> find_snapshot(const std::string& reference) const;
  // Copies the volume's disk into a new snapshot; the caller holds lock() and has made the
  // disk consistent (no writer, or the writer's file system frozen).
  Result<Snapshot> snapshot_locked(const Volume& volume, const std::optional<std::string>& name) const;
  Status remove_snapshot_locked(const Snapshot& snapshot) const;

 private:
  explicit VolumeStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  [[nodiscard]] Result<Volume> load(const std::string& name) const;
  Status fill_local_disk(const Volume& volume, const VolumeRequest& request) const;
  Status fill_nbd_export(Volume& volume) const;
  std::filesystem::path dir_;
};

}  // namespace hyper::runtime::volume
