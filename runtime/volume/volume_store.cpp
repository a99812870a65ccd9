#include "runtime/volume/volume_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>

#include "runtime/container_store.hpp"
#include "runtime/disk_images.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/json_record.hpp"
#include "runtime/volume/file_clone.hpp"
#include "runtime/volume/mount_spec.hpp"
#include "runtime/volume/nbd_export.hpp"
#include "virtio/block_backend.hpp"

namespace hyper::runtime::volume {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char* kLockFile = "lock";
constexpr const char* kVolumeFile = "volume.json";
constexpr const char* kSnapshotsDir = "snapshots";
constexpr uint64_t kVolumeBytesPerInode = 16384;

Error bad(const std::string& message) { return make_error(Errc::invalid_argument, message); }

Error corrupt(const fs::path& path, const std::string& why) { return corrupt_record(path, why); }

Result<Json> read_json(const fs::path& path) { return read_json_record(path); }

Json volume_json(const Volume& volume) {
  Json json = {{"name", volume.name},
               {"driver", volume.driver},
               {"created", volume.created},
               {"size_bytes", volume.size_bytes},
               {"anonymous", volume.anonymous}};
  if (!volume.uri.empty()) json["uri"] = volume.uri;
  return json;
}

Result<Volume> parse_volume(const fs::path& path, const Json& json) {
  Volume volume;
  try {
    volume.name = json.at("name").get<std::string>();
    volume.driver = json.at("driver").get<std::string>();
    volume.created = json.at("created").get<std::string>();
    volume.size_bytes = json.at("size_bytes").get<uint64_t>();
    volume.anonymous = json.value("anonymous", false);
    volume.uri = json.value("uri", "");
  } catch (const Json::exception& e) {
    return corrupt(path, e.what());
  }
  volume.dir = path.parent_path();
  return volume;
}

Result<Snapshot> parse_snapshot(const fs::path& path, const Json& json) {
  Snapshot snapshot;
  try {
    snapshot.name = json.at("name").get<std::string>();
    snapshot.volume = json.at("volume").get<std::string>();
    snapshot.created = json.at("created").get<std::string>();
    snapshot.size_bytes = json.at("size_bytes").get<uint64_t>();
    snapshot.method = json.value("method", "");
  } catch (const Json::exception& e) {
    return corrupt(path, e.what());
  }
  snapshot.path = fs::path(path).replace_extension(".ext4");
  return snapshot;
}

// "20261204T181500Z": sortable, and readable in `snapshot ls`.
std::string timestamp_name() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

Result<uint64_t> requested_size(const VolumeRequest& request) {
  const auto it = request.options.find("size");
  if (it == request.options.end()) return kDefaultVolumeBytes;
  const uint64_t bytes = HYPER_TRY(parse_byte_size(it->second));
  if (bytes < kMinVolumeBytes || bytes > kMaxVolumeBytes)
    return bad("volume size " + it->second + " is out of range (16m to 16t)");
  return bytes;
}

Status check_options(const VolumeRequest& request) {
  for (const auto& [key, value] : request.options) {
    const bool known = request.driver == kLocalDriver ? key == "size" : key == "uri";
    if (!known)
      return bad("unknown option \"" + key + "\" for the " + request.driver + " driver (" +
                 (request.driver == kLocalDriver ? "size=SIZE" : "uri=nbd://HOST:PORT/EXPORT") + ")");
  }
  if (request.driver == kNbdDriver) {
    const auto uri = request.options.find("uri");
    if (uri == request.options.end()) return bad("the nbd driver needs --opt uri=nbd://HOST:PORT/EXPORT");
    if (!virtio::is_nbd_uri(uri->second))
      return bad("--opt uri=" + uri->second + ": not an NBD URI (nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)");
    if (request.from_snapshot) return bad("--from-snapshot is for the local driver: an NBD export lives on its server");
  }
  return {};
}

}  // namespace

Result<VolumeStore> VolumeStore::open(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(Errc::io, "create " + dir.string() + ": " + ec.message());
  return VolumeStore(dir);
}

Result<FileLock> VolumeStore::lock() const { return FileLock::acquire(dir_ / kLockFile); }

Result<Volume> VolumeStore::load(const std::string& name) const {
  const fs::path path = dir_ / name / kVolumeFile;
  if (::access(path.c_str(), F_OK) != 0) return make_error(Errc::not_found, "no such volume: " + name);
  const Json json = HYPER_TRY(read_json(path));
  return parse_volume(path, json);
}

Result<Volume> VolumeStore::find(const std::string& name) const {
  if (!valid_name(name)) return make_error(Errc::not_found, "no such volume: " + name);
  return load(name);
}

Result<std::vector<Volume>> VolumeStore::list() const {
  std::vector<Volume> volumes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !valid_name(name)) continue;
    auto volume = load(name);
    if (volume.ok()) volumes.push_back(std::move(volume).value());
    else if (volume.error().code != Errc::not_found) return volume.error();  // half-made ones are skipped
  }
  if (ec) return make_error(Errc::io, "list " + dir_.string() + ": " + ec.message());
  std::sort(volumes.begin(), volumes.end(), [](const Volume& a, const Volume& b) { return a.name < b.name; });
  return volumes;
}

Status VolumeStore::fill_local_disk(const Volume& volume, const VolumeRequest& request) const {
  const fs::path building = volume.dir / "disk.tmp";
  ::unlink(building.c_str());
  if (request.from_snapshot) {
    const Snapshot snapshot = HYPER_TRY(find_snapshot(*request.from_snapshot));
    HYPER_CHECK(clone_file(snapshot.path, building));
  } else {
    HYPER_CHECK(make_ext4(building, (volume.size_bytes + (1u << 20) - 1) >> 20, kVolumeBytesPerInode, true));
  }
  if (::rename(building.c_str(), volume.disk().c_str()) != 0) return Error::from_errno("rename " + building.string());
  return {};
}

Status VolumeStore::fill_nbd_export(Volume& volume) const {
  volume.size_bytes = HYPER_TRY(prepare_nbd_export(volume.uri, volume.dir)).size_bytes;
  return {};
}

Result<Volume> VolumeStore::create_locked(const VolumeRequest& request) const {
  if (request.driver != kLocalDriver && request.driver != kNbdDriver)
    return bad("volume driver \"" + request.driver + "\" not found (local or nbd)");
  HYPER_CHECK(check_options(request));
  Volume volume;
  volume.name = request.name ? *request.name : HYPER_TRY(blobs::random_hex(32));
  if (!valid_name(volume.name))
    return bad("\"" + volume.name + "\" includes invalid characters for a volume name; only "
               "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  if (auto existing = load(volume.name); existing.ok()) {
    if (existing->driver != request.driver)
      return make_error(Errc::invalid_argument, "volume " + volume.name + " exists with the " + existing->driver + " driver");
    return existing;
  }
  volume.driver = request.driver;
  volume.created = now_rfc3339();
  volume.anonymous = request.anonymous;
  volume.dir = dir_ / volume.name;
  if (request.driver == kNbdDriver) {
    volume.uri = request.options.at("uri");
  } else if (request.from_snapshot) {
    volume.size_bytes = HYPER_TRY(find_snapshot(*request.from_snapshot)).size_bytes;
  } else {
    volume.size_bytes = HYPER_TRY(requested_size(request));
  }
  std::error_code ec;
  fs::remove_all(volume.dir, ec);  // a create cut short left no volume.json: nothing of value
  fs::create_directories(volume.dir, ec);
  if (ec) return make_error(Errc::io, "create " + volume.dir.string() + ": " + ec.message());
  Status filled = request.driver == kLocalDriver ? fill_local_disk(volume, request) : fill_nbd_export(volume);
  // volume.json last: until it exists, the directory is no volume.
  if (filled.ok()) filled = blobs::replace_file(volume.dir / kVolumeFile, volume_json(volume).dump(2) + "\n");
  if (!filled.ok()) {
    fs::remove_all(volume.dir, ec);
    return filled.error();
  }
  return volume;
}

Result<Volume> VolumeStore::create(const VolumeRequest& request) const {
  auto held = HYPER_TRY(lock());
  return create_locked(request);
}

Status VolumeStore::remove_locked(const Volume& volume) const {
  auto unused = HYPER_TRY(FileLock::try_acquire(volume.use_lock()));
  if (!unused) return make_error(Errc::invalid_argument, "volume " + volume.name + " is in use by a running container");
  // volume.json first, so that a removal cut short leaves no half volume behind a name.
  if (::unlink((volume.dir / kVolumeFile).c_str()) != 0) return Error::from_errno("remove volume " + volume.name);
  std::error_code ec;
  fs::remove_all(volume.dir, ec);
  if (ec) return make_error(Errc::io, "remove " + volume.dir.string() + ": " + ec.message());
  return {};
}

Result<std::vector<Snapshot>> VolumeStore::snapshots(const Volume& volume) const {
  std::vector<Snapshot> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(volume.dir / kSnapshotsDir, ec)) {
    if (entry.path().extension() != ".json") continue;
    const Json json = HYPER_TRY(read_json(entry.path()));
    out.push_back(HYPER_TRY(parse_snapshot(entry.path(), json)));
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) {
    return a.created != b.created ? a.created < b.created : a.name < b.name;
  });
  return out;
}

Result<Snapshot> VolumeStore::find_snapshot(const std::string& reference) const {
  const auto slash = reference.find('/');
  if (slash != std::string::npos) {
    const Volume volume = HYPER_TRY(find(reference.substr(0, slash)));
    const std::string name = reference.substr(slash + 1);
    for (auto& snapshot : HYPER_TRY(snapshots(volume)))
      if (snapshot.name == name) return snapshot;
    return make_error(Errc::not_found, "no such snapshot: " + name + " of volume " + volume.name);
  }
  std::vector<Snapshot> found;
  for (const auto& volume : HYPER_TRY(list()))
    for (auto& snapshot : HYPER_TRY(snapshots(volume)))
      if (snapshot.name == reference) found.push_back(std::move(snapshot));
  if (found.empty()) return make_error(Errc::not_found, "no such snapshot: " + reference);
  if (found.size() > 1)
    return bad("snapshot name " + reference + " is taken in several volumes: say which, as VOLUME/" + reference);
  return found.front();
}

Result<Snapshot> VolumeStore::snapshot_locked(const Volume& volume, const std::optional<std::string>& name) const {
  if (volume.driver != kLocalDriver)
    return bad("volume " + volume.name + " uses the " + volume.driver +
               " driver: its data lives on the NBD server; snapshot it there");
  Snapshot snapshot;
  snapshot.volume = volume.name;
  snapshot.name = name ? *name : timestamp_name();
  if (!valid_name(snapshot.name))
    return bad("\"" + snapshot.name + "\" includes invalid characters for a snapshot name; only "
               "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  const fs::path dir = volume.dir / kSnapshotsDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(Errc::io, "create " + dir.string() + ": " + ec.message());
  if (!name)
    for (int n = 2; ::access((dir / (snapshot.name + ".json")).c_str(), F_OK) == 0; ++n)
      snapshot.name = timestamp_name() + "-" + std::to_string(n);
  if (::access((dir / (snapshot.name + ".json")).c_str(), F_OK) == 0)
    return make_error(Errc::invalid_argument, "volume " + volume.name + " has a snapshot named " + snapshot.name + " already");
  snapshot.created = now_rfc3339();
  snapshot.size_bytes = volume.size_bytes;
  snapshot.path = dir / (snapshot.name + ".ext4");
  const fs::path copying = dir / (snapshot.name + ".tmp");
  ::unlink(copying.c_str());
  snapshot.method = clone_method_name(HYPER_TRY(clone_file(volume.disk(), copying)));
  if (::rename(copying.c_str(), snapshot.path.c_str()) != 0) return Error::from_errno("rename " + copying.string());
  const Json json = {{"name", snapshot.name},
                     {"volume", snapshot.volume},
                     {"created", snapshot.created},
                     {"size_bytes", snapshot.size_bytes},
                     {"method", snapshot.method}};
  if (auto written = blobs::replace_file(dir / (snapshot.name + ".json"), json.dump(2) + "\n"); !written.ok()) {
    ::unlink(snapshot.path.c_str());
    return written.error();
  }
  return snapshot;
}

Status VolumeStore::remove_snapshot_locked(const Snapshot& snapshot) const {
  const fs::path record = fs::path(snapshot.path).replace_extension(".json");
  if (::unlink(record.c_str()) != 0) return Error::from_errno("remove snapshot " + snapshot.name);
  ::unlink(snapshot.path.c_str());
  return {};
}

}  // namespace hyper::runtime::volume
