// Volumes without a VM: the -v/--mount/--tmpfs syntax, the volume store's records and
// disks, snapshots (a sparse copy on file systems without reflinks), and what refers to a
// volume.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "runtime/container_store.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/volume/file_clone.hpp"
#include "runtime/volume/mount_spec.hpp"
#include "runtime/volume/volume_store.hpp"
#include "runtime/volume/volume_users.hpp"

using namespace hyper;
using namespace hyper::runtime::volume;
namespace fs = std::filesystem;

namespace {

runtime::blobs::TempDir temp_dir() {
  auto dir = runtime::blobs::TempDir::create(fs::temp_directory_path());
  REQUIRE(dir.ok());
  return std::move(dir).value();
}

VolumeStore open_store(const fs::path& dir) {
  auto store = VolumeStore::open(dir);
  REQUIRE(store.ok());
  return std::move(store).value();
}

uint64_t allocated_bytes(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

void write_at(const fs::path& path, off_t offset, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), offset) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::string read_at(const fs::path& path, off_t offset, size_t size) {
  std::string bytes(size, '\0');
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, bytes.data(), size, offset) == static_cast<ssize_t>(size));
  ::close(fd);
  return bytes;
}

}  // namespace

TEST_CASE("volume: -v names a volume, a host directory or an anonymous volume") {
  auto named = parse_volume_flag("data:/var/lib/data:ro");
  REQUIRE(named.ok());
  CHECK(named->type == MountType::volume);
  CHECK(named->source == "data");
  CHECK(named->target == "/var/lib/data");
  CHECK(named->read_only);

  auto bind = parse_volume_flag("/srv/www//:/usr/share/www/");
  REQUIRE(bind.ok());
  CHECK(bind->type == MountType::bind);
  CHECK(bind->source == "/srv/www//");
  CHECK(bind->target == "/usr/share/www");
  CHECK_FALSE(bind->read_only);

  auto anonymous = parse_volume_flag("/cache:ro");
  REQUIRE(anonymous.ok());
  CHECK(anonymous->anonymous);
  CHECK(anonymous->source.empty());
  CHECK(anonymous->read_only);
}

TEST_CASE("volume: bad -v, --mount and --tmpfs are refused with the reason") {
  auto relative = parse_volume_flag("./dir:/x");
  REQUIRE_FALSE(relative.ok());
  CHECK(relative.error().message.find("relative") != std::string::npos);
  CHECK_FALSE(parse_volume_flag("dir/sub:/x").ok());
  CHECK(parse_volume_flag("data:x").error().message.find("must be absolute") != std::string::npos);
  CHECK(parse_volume_flag("data:/a/../b").error().message.find("..") != std::string::npos);
  CHECK_FALSE(parse_volume_flag("data:/").ok());
  CHECK_FALSE(parse_volume_flag("data:/x:rx").ok());
  CHECK_FALSE(parse_volume_flag(":/x").ok());
  CHECK_FALSE(parse_volume_flag("a:/b:ro:extra").ok());
  CHECK_FALSE(parse_mount_flag("type=volume,source=data").ok());
  CHECK_FALSE(parse_mount_flag("type=nfs,target=/x").ok());
  CHECK_FALSE(parse_mount_flag("type=bind,target=/x").ok());
  CHECK_FALSE(parse_mount_flag("type=volume,target=/x,colour=blue").ok());
  CHECK_FALSE(parse_mount_flag("type=volume,target=/x,tmpfs-size=1m").ok());
  CHECK_FALSE(parse_tmpfs_flag("/x:size=huge").ok());
  CHECK_FALSE(parse_tmpfs_flag("/x:exec").ok());
  CHECK_FALSE(parse_tmpfs_flag("/x:mode=99").ok());
  auto twice = check_mounts({*parse_volume_flag("aa:/x"), *parse_tmpfs_flag("/x/")});
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().message.find("duplicate mount point") != std::string::npos);
}

TEST_CASE("volume: --mount and --tmpfs in Docker's syntax") {
  auto mount = parse_mount_flag("type=bind,src=/srv,dst=/data,readonly");
  REQUIRE(mount.ok());
  CHECK(mount->type == MountType::bind);
  CHECK(mount->read_only);
  auto anonymous = parse_mount_flag("target=/scratch");
  REQUIRE(anonymous.ok());
  CHECK(anonymous->anonymous);
  auto tmpfs = parse_mount_flag("type=tmpfs,target=/run/cache,tmpfs-size=64m,tmpfs-mode=1770");
  REQUIRE(tmpfs.ok());
  CHECK(tmpfs->tmpfs_size == 64u << 20);
  CHECK(tmpfs->tmpfs_mode == 01770);
  auto flag = parse_tmpfs_flag("/tmp:size=1g,ro");
  REQUIRE(flag.ok());
  CHECK(flag->tmpfs_size == 1ull << 30);
  CHECK(flag->read_only);

  auto round_trip = parse_mount_json(mount_json(*tmpfs));
  REQUIRE(round_trip.ok());
  CHECK(round_trip->target == "/run/cache");
  CHECK(round_trip->tmpfs_mode == 01770);
}

TEST_CASE("volume: sizes in Docker's units") {
  CHECK(*parse_byte_size("512m") == 512ull << 20);
  CHECK(*parse_byte_size("10G") == 10ull << 30);
  CHECK(*parse_byte_size("1GiB") == 1ull << 30);
  CHECK(*parse_byte_size("4096") == 4096);
  CHECK_FALSE(parse_byte_size("").ok());
  CHECK_FALSE(parse_byte_size("0").ok());
  CHECK_FALSE(parse_byte_size("-1g").ok());
  CHECK_FALSE(parse_byte_size("1x").ok());
  CHECK_FALSE(parse_byte_size("99999999999t").ok());
}

TEST_CASE("volume: a sparse copy keeps the data and the holes") {
  auto dir = temp_dir();
  const fs::path from = dir.path() / "from.img", to = dir.path() / "to.img";
  write_at(from, 0, "head");
  write_at(from, 300 << 20, "middle");
  REQUIRE(::truncate(from.c_str(), 1ll << 30) == 0);
  auto method = clone_file(from, to);
  REQUIRE(method.ok());
  CHECK(fs::file_size(to) == 1ull << 30);
  CHECK(read_at(to, 0, 4) == "head");
  CHECK(read_at(to, 300 << 20, 6) == "middle");
  CHECK(read_at(to, 100 << 20, 4) == std::string(4, '\0'));
  if (*method == CloneMethod::sparse_copy) CHECK(allocated_bytes(to) < (16u << 20));
  // Never over an existing file.
  CHECK_FALSE(clone_file(from, to).ok());
}

TEST_CASE("volume: create, find, list, snapshot, restore and remove (needs mke2fs)") {
  auto dir = temp_dir();
  const VolumeStore store = open_store(dir.path());
  VolumeRequest request;
  request.name = "data";
  request.options = {{"size", "64m"}};
  auto volume = store.create(request);
  REQUIRE_MESSAGE(volume.ok(), volume.error().message);
  CHECK(volume->size_bytes == 64u << 20);
  CHECK(fs::file_size(volume->disk()) == 64u << 20);
  CHECK(allocated_bytes(volume->disk()) < (8u << 20));  // sparse
  CHECK(read_at(volume->disk(), 1024 + 56, 2) == std::string("\x53\xef", 2));  // the ext4 magic

  auto again = store.create(request);  // Docker: the same name is the same volume
  REQUIRE(again.ok());
  CHECK(again->created == volume->created);
  VolumeRequest other_driver = request;
  other_driver.driver = kNbdDriver;
  other_driver.options = {{"uri", "nbd://127.0.0.1/x"}};
  CHECK_FALSE(store.create(other_driver).ok());

  write_at(volume->disk(), 40 << 20, "before");
  Snapshot snapshot;
  {
    auto held = store.lock();
    REQUIRE(held.ok());
    auto taken = store.snapshot_locked(*volume, std::string("first"));
    REQUIRE_MESSAGE(taken.ok(), taken.error().message);
    snapshot = *taken;
    CHECK_FALSE(store.snapshot_locked(*volume, std::string("first")).ok());  // the name is taken
    auto unnamed = store.snapshot_locked(*volume, std::nullopt);
    REQUIRE(unnamed.ok());
    CHECK(unnamed->name.size() >= 16);
  }
  write_at(volume->disk(), 40 << 20, "after!");
  auto list = store.snapshots(*volume);
  REQUIRE(list.ok());
  CHECK(list->size() == 2);
  CHECK(read_at(snapshot.path, 40 << 20, 6) == "before");

  VolumeRequest restore;
  restore.name = "restored";
  restore.from_snapshot = "data/first";
  auto restored = store.create(restore);
  REQUIRE_MESSAGE(restored.ok(), restored.error().message);
  CHECK(read_at(restored->disk(), 40 << 20, 6) == "before");
  CHECK(restored->size_bytes == volume->size_bytes);
  restore.name = "nope";
  restore.from_snapshot = "data/missing";
  CHECK_FALSE(store.create(restore).ok());
  CHECK_FALSE(store.find("nope").ok());

  auto all = store.list();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].name == "data");

  {
    auto held = store.lock();
    REQUIRE(held.ok());
    REQUIRE(store.remove_snapshot_locked(snapshot).ok());
    CHECK(store.snapshots(*volume)->size() == 1);
    REQUIRE(store.remove_locked(*restored).ok());
  }
  CHECK(store.find("restored").error().code == Errc::not_found);
}

TEST_CASE("volume: a volume a running container holds is not removed") {
  auto dir = temp_dir();
  const VolumeStore store = open_store(dir.path());
  VolumeRequest request;
  request.name = "held";
  request.options = {{"size", "16m"}};
  auto volume = store.create(request);
  REQUIRE(volume.ok());
  auto in_use = runtime::FileLock::try_acquire_shared(volume->use_lock());  // as a :ro container's VMM does
  REQUIRE(in_use.ok());
  REQUIRE(in_use->has_value());
  auto held = store.lock();
  REQUIRE(held.ok());
  auto removed = store.remove_locked(*volume);
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().message.find("in use") != std::string::npos);
}

TEST_CASE("volume: bad requests name what is wrong") {
  auto dir = temp_dir();
  const VolumeStore store = open_store(dir.path());
  auto with = [&](std::string driver, std::map<std::string, std::string> options) {
    VolumeRequest request;
    request.name = "vol";
    request.driver = std::move(driver);
    request.options = std::move(options);
    return store.create(request);
  };
  CHECK(with("local", {{"size", "1k"}}).error().message.find("out of range") != std::string::npos);
  CHECK(with("local", {{"size", "abc"}}).error().message.find("invalid size") != std::string::npos);
  CHECK(with("local", {{"colour", "red"}}).error().message.find("unknown option") != std::string::npos);
  CHECK(with("ceph", {}).error().message.find("not found") != std::string::npos);
  CHECK(with("nbd", {}).error().message.find("uri=") != std::string::npos);
  CHECK(with("nbd", {{"uri", "http://x"}}).error().message.find("not an NBD URI") != std::string::npos);
  VolumeRequest bad_name;
  bad_name.name = "../escape";
  CHECK_FALSE(store.create(bad_name).ok());
  CHECK(store.find("../escape").error().code == Errc::not_found);
  CHECK(store.list()->empty());
}

TEST_CASE("volume: the containers that refer to a volume") {
  runtime::Container a, b;
  a.id = std::string(64, 'a');
  b.id = std::string(64, 'b');
  a.config.mounts = {*parse_volume_flag("data:/x")};
  b.config.mounts = {*parse_volume_flag("/host:/data")};  // a host directory named like it
  const auto users = containers_using({a, b}, "data");
  REQUIRE(users.size() == 1);
  CHECK(users[0].id == a.id);
}
