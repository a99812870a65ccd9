#include "runtime/disk_images.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/crash_point.hpp"
#include "runtime/file_lock.hpp"
#include "runtime/vm_session.hpp"

namespace hyper::runtime {
namespace {

constexpr const char* kRootfsName = "rootfs.ext4";
// Bump when the builder's output changes, so stale caches are rebuilt.
constexpr const char* kBuilderVersion = "1";

Status run_quietly(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error(Errc::io, argv[0] + (WIFEXITED(status) && WEXITSTATUS(status) == 127
                                               ? std::string(" is not installed (Debian package e2fsprogs)")
                                               : " failed with status " + std::to_string(WEXITSTATUS(status))));
  return {};
}

uint64_t round_up_mib(uint64_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }

Status build_rootfs(const ImageStore& store, const Image& image, const std::filesystem::path& dir,
                    const std::filesystem::path& target) {
  const auto layers_path = dir / "layers.tmp";
  const auto building = dir / "rootfs.tmp";
  UniqueFd layers(::open(layers_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!layers.valid()) return Error::from_errno("create " + layers_path.string());
  const auto spans = HYPER_TRY(store.write_layer_stream(image, layers.get()));
  uint64_t total = 0;
  Json layer_list = Json::array();
  for (const auto& span : spans) {
    total += span.size;
    layer_list.push_back({{"offset", span.offset}, {"size", span.size}});
  }
  // Room for the files, ext4's metadata and one inode per 4 KiB; the file stays sparse.
  const uint64_t size_mib = round_up_mib(total + total / 4) + 64;
  HYPER_CHECK(make_ext4(building, size_mib, 4096));

  VmSpec spec;
  spec.dir = dir;
  spec.memory_mib = 256;
  spec.disks.push_back(virtio::BlkOptions{.path = layers_path.string(), .read_only = true, .serial = {}, .io_thread = true});
  spec.disks.push_back(virtio::BlkOptions{.path = building.string(), .read_only = false, .serial = {}, .io_thread = true});
  auto session = HYPER_TRY(VmSession::boot(spec, 120'000));
  auto reply = session->agent().request(
      {{"op", "build"}, {"source", "/dev/vda"}, {"target", "/dev/vdb"}, {"layers", layer_list}}, 3'600'000);
  session->agent().close_write();
  (void)session->wait(10'000);
  ::unlink(layers_path.c_str());
  if (!reply.ok()) {
    ::unlink(building.c_str());
    return make_error(reply.error().code, "building the root filesystem of " + image.id.substr(0, 19) + ": " +
                                              reply.error().message);
  }
  if (::rename(building.c_str(), target.c_str()) != 0) return Error::from_errno("rename " + target.string());
  return {};
}

}  // namespace

Status make_ext4(const std::filesystem::path& path, uint64_t size_mib, uint64_t bytes_per_inode, bool journal) {
  {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return Error::from_errno("create " + path.string());
    if (::ftruncate(fd.get(), static_cast<off_t>(size_mib << 20)) != 0) return Error::from_errno("size " + path.string());
  }
  // Without a journal by default (a crash loses a container's scratch data either way, and
  // the image is read-only), and lazy tables so the file stays sparse.
  return run_quietly({"mke2fs", "-q", "-F", "-t", "ext4", "-O", journal ? "has_journal" : "^has_journal", "-m", "0",
                      "-i", std::to_string(bytes_per_inode), "-E",
                      "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", path.string()});
}

Result<std::filesystem::path> ensure_rootfs(const ImageStore& store, const Image& image,
                                            const std::function<void(const std::string&)>& progress) {
  const auto dir = HYPER_TRY(store.derived_dir(image));
  const auto target = dir / kRootfsName;
  const auto stamp = dir / (std::string(kRootfsName) + ".v") += kBuilderVersion;
  if (::access(stamp.c_str(), F_OK) == 0 && ::access(target.c_str(), R_OK) == 0) return target;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(Errc::io, "create " + dir.string() + ": " + ec.message());
  // Shared with pulls, exclusive for prune, which would otherwise delete a build's directory.
  const auto in_use = HYPER_TRY(store.writer_lock());
  auto lock = HYPER_TRY(FileLock::acquire(dir / "build.lock"));
  if (::access(stamp.c_str(), F_OK) == 0 && ::access(target.c_str(), R_OK) == 0) return target;  // built meanwhile
  progress("Building the root filesystem of " + image.id.substr(0, 19) + " (once per set of layers)");
  HYPER_CHECK(build_rootfs(store, image, dir, target));
  crash_point("rootfs-built");  // built but not stamped: the next run builds it again
  UniqueFd stamp_fd(::open(stamp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!stamp_fd.valid()) return Error::from_errno("create " + stamp.string());
  return target;
}

Status create_scratch_disk(const std::filesystem::path& cache_dir, const std::filesystem::path& path,
                           uint64_t size_mib) {
  const auto template_path = cache_dir / ("scratch-" + std::to_string(size_mib) + "m.ext4");
  if (::access(template_path.c_str(), R_OK) != 0) {
    auto lock = HYPER_TRY(FileLock::acquire(cache_dir / "scratch.lock"));
    if (::access(template_path.c_str(), R_OK) != 0) {
      const auto building = cache_dir / ("scratch-" + std::to_string(size_mib) + "m.tmp");
      HYPER_CHECK(make_ext4(building, size_mib, 16384));
      if (::rename(building.c_str(), template_path.c_str()) != 0) return Error::from_errno("rename " + template_path.string());
    }
  }
  // cp keeps the holes (and reflinks where the filesystem can): a few MiB are written.
  // Copied aside and renamed, so a copy cut short never becomes the container's disk.
  const auto copying = path.string() + ".tmp";
  HYPER_CHECK(run_quietly({"cp", "--sparse=always", "--reflink=auto", template_path.string(), copying}));
  crash_point("scratch-disk-copied");
  if (::rename(copying.c_str(), path.c_str()) != 0) return Error::from_errno("rename " + copying);
  return {};
}

}  // namespace hyper::runtime
