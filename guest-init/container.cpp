#include "guest-init/container.hpp"

#include "vmm/mac_address.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <set>

#include "guest-init/netlink.hpp"
#include "guest-init/system.hpp"

namespace hyper::guest {
namespace {

constexpr const char* kImageMount = "/run/image";
constexpr const char* kWritableMount = "/run/rw";
// Where a virtio-fs share whose entries are bound one by one is mounted whole, by tag.
constexpr const char* kSharesDir = "/run/shares";

Status mount_host_rootfs(const RootfsSpec& spec) {
  HYPER_CHECK(make_dirs(kContainerRoot));
  // nodev: device nodes in a host directory are inert; /dev is our own tmpfs below.
  if (::mount(spec.virtiofs_tag.c_str(), kContainerRoot, "virtiofs", MS_NODEV | (spec.read_only ? MS_RDONLY : 0),
              nullptr) != 0)
    return Error::from_errno("mount virtio-fs " + spec.virtiofs_tag + " as the container's root");
  return {};
}

Status mount_rootfs(const RootfsSpec& spec) {
  if (!spec.virtiofs_tag.empty()) return mount_host_rootfs(spec);
  HYPER_CHECK(make_dirs(kImageMount));
  HYPER_CHECK(make_dirs(kWritableMount));
  HYPER_CHECK(make_dirs(kContainerRoot));
  const unsigned long image_flags = MS_RDONLY | MS_NODEV;
  HYPER_CHECK(wait_for_disk(spec.image_device));
  if (!spec.writable_device.empty()) HYPER_CHECK(wait_for_disk(spec.writable_device));
  HYPER_CHECK(mount_fs(spec.image_device.c_str(), kImageMount, spec.image_fstype.c_str(), image_flags,
                       spec.image_fstype == "ext4" ? "noload" : ""));
  if (spec.writable_device.empty()) {
    HYPER_CHECK(mount_fs("rw", kWritableMount, "tmpfs", MS_NODEV, "mode=0755"));
  } else {
    HYPER_CHECK(mount_fs(spec.writable_device.c_str(), kWritableMount, "ext4", MS_NODEV, "noinit_itable"));
  }
  const std::string upper = kUpperDir;
  const std::string work = std::string(kWritableMount) + "/work";
  HYPER_CHECK(make_dirs(upper));
  HYPER_CHECK(make_dirs(work));
  // nodev: device nodes that came with the image are inert; /dev is our own tmpfs below.
  return mount_fs("overlay", kContainerRoot, "overlay", MS_NODEV,
                  std::string("lowerdir=") + kImageMount + ",upperdir=" + upper + ",workdir=" + work +
                      ",index=off,xino=off");
}

Status make_device(int dev_fd, const char* name, mode_t mode, unsigned major_no, unsigned minor_no) {
  if (::mknodat(dev_fd, name, S_IFCHR | mode, makedev(major_no, minor_no)) != 0 && errno != EEXIST)
    return Error::from_errno(std::string("mknod /dev/") + name);
  ::fchmodat(dev_fd, name, mode, 0);  // mknod applies the umask
  return {};
}

Status populate_dev(int root_fd) {
  UniqueFd dev = HYPER_TRY(open_in_root(root_fd, "dev", O_PATH | O_DIRECTORY));
  struct Node {
    const char* name;
    unsigned major_no, minor_no;
  };
  for (const Node& node : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7}, Node{"random", 1, 8},
                           Node{"urandom", 1, 9}, Node{"tty", 5, 0}})
    HYPER_CHECK(make_device(dev.get(), node.name, 0666, node.major_no, node.minor_no));
  for (const auto& [target, name] : {std::pair{"pts/ptmx", "ptmx"}, std::pair{"/proc/self/fd", "fd"},
                                     std::pair{"/proc/self/fd/0", "stdin"}, std::pair{"/proc/self/fd/1", "stdout"},
                                     std::pair{"/proc/self/fd/2", "stderr"}, std::pair{"/proc/kcore", "core"}})
    if (::symlinkat(target, dev.get(), name) != 0 && errno != EEXIST)
      return Error::from_errno(std::string("symlink /dev/") + name);
  return {};
}

// Each mount point is created through the root fd, so an image whose /proc is a symlink
// to somewhere else still gets its mounts inside its own root.
Status mount_in_root(int root_fd, const char* source, const char* target, const char* type, unsigned long flags,
                     const std::string& data = {}) {
  UniqueFd dir = HYPER_TRY(make_dirs_in_root(root_fd, target));
  const std::string via = "/proc/self/fd/" + std::to_string(dir.get());
  if (::mount(source, via.c_str(), type, flags, data.empty() ? nullptr : data.c_str()) != 0)
    return Error::from_errno(std::string("mount ") + type + " on /" + target + " in the container");
  return {};
}

Status mount_kernel_filesystems(int root_fd) {
  constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  HYPER_CHECK(mount_in_root(root_fd, "proc", "proc", "proc", kSafe));
  HYPER_CHECK(mount_in_root(root_fd, "sysfs", "sys", "sysfs", kSafe | MS_RDONLY));
  HYPER_CHECK(mount_in_root(root_fd, "cgroup2", "sys/fs/cgroup", "cgroup2", kSafe));
  HYPER_CHECK(mount_in_root(root_fd, "tmpfs", "dev", "tmpfs", MS_NOSUID, "mode=0755,size=65536k"));
  HYPER_CHECK(populate_dev(root_fd));
  HYPER_CHECK(mount_in_root(root_fd, "devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                            "newinstance,ptmxmode=0666,mode=0620,gid=5"));
  HYPER_CHECK(mount_in_root(root_fd, "shm", "dev/shm", "tmpfs", kSafe, "mode=1777,size=65536k"));
  return mount_in_root(root_fd, "tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

// The kernel's name for the directory behind `fd`, to find the mount again at power-off.
Result<std::string> path_of(int fd) {
  char buf[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) return Error::from_errno("readlink " + link);
  return std::string(buf, static_cast<size_t>(n));
}

Status mount_block_volume(const char* device, const char* via, bool read_only) {
  HYPER_CHECK(wait_for_disk(device));
  const unsigned long flags = read_only ? MS_RDONLY : 0;
  if (::mount(device, via, "ext4", flags, nullptr) == 0) return {};
  // A read-only disk whose journal needs replaying (its last writer was killed) cannot
  // replay it: mount it as the writer left it.
  if (read_only && errno == EROFS && ::mount(device, via, "ext4", flags, "noload") == 0) return {};
  return Error::from_errno(std::string("mount ") + device);
}

// The share mounted whole under kSharesDir, once however many of its entries are bound.
Result<std::string> staged_share(const std::string& tag, std::set<std::string>& staged) {
  const std::string path = std::string(kSharesDir) + "/" + tag;
  if (staged.contains(tag)) return path;
  HYPER_CHECK(make_dirs(path));
  if (::mount(tag.c_str(), path.c_str(), "virtiofs", MS_NODEV | MS_NOSUID, nullptr) != 0)
    return Error::from_errno("mount virtio-fs " + tag);
  staged.insert(tag);
  return path;
}

// A file or directory of a staged share bound on its target, which is made to match.
Result<MountedVolume> bind_share_entry(int root_fd, const MountSpec& spec, std::set<std::string>& staged) {
  const std::string source = HYPER_TRY(staged_share(spec.source, staged)) + "/" + spec.subpath;
  struct stat st{};
  if (::lstat(source.c_str(), &st) != 0) return Error::from_errno("bind " + spec.subpath + " on " + spec.target);
  const bool directory = S_ISDIR(st.st_mode);
  const std::string target = spec.target.substr(1);
  UniqueFd top = directory ? HYPER_TRY(make_dirs_in_root(root_fd, target)) : UniqueFd();
  if (!directory) top = HYPER_TRY(make_file_in_root(root_fd, target));
  const std::string via = "/proc/self/fd/" + std::to_string(top.get());
  if (::mount(source.c_str(), via.c_str(), nullptr, MS_BIND, nullptr) != 0)
    return Error::from_errno("bind " + spec.subpath + " on " + spec.target + " in the container");
  // The fd opened before the bind names what it covers; the remount needs the bind itself.
  UniqueFd mounted = HYPER_TRY(open_in_root(root_fd, target, O_PATH));
  const std::string bound = "/proc/self/fd/" + std::to_string(mounted.get());
  if (spec.read_only && ::mount(nullptr, bound.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0)
    return Error::from_errno("make " + spec.target + " read-only in the container");
  return MountedVolume{spec, HYPER_TRY(path_of(mounted.get()))};
}

Result<MountedVolume> mount_volume(int root_fd, const MountSpec& spec, std::set<std::string>& staged) {
  if (spec.type == MountSpec::Type::virtiofs && !spec.subpath.empty()) return bind_share_entry(root_fd, spec, staged);
  UniqueFd dir = HYPER_TRY(make_dirs_in_root(root_fd, spec.target.substr(1)));
  const std::string via = "/proc/self/fd/" + std::to_string(dir.get());
  const unsigned long read_only = spec.read_only ? MS_RDONLY : 0;
  Status mounted;
  switch (spec.type) {
    case MountSpec::Type::block:
      mounted = mount_block_volume(spec.source.c_str(), via.c_str(), spec.read_only);
      break;
    case MountSpec::Type::virtiofs:
      if (::mount(spec.source.c_str(), via.c_str(), "virtiofs", read_only, nullptr) != 0)
        mounted = Error::from_errno("mount virtio-fs " + spec.source);
      break;
    case MountSpec::Type::tmpfs: {
      char mode[16];
      std::snprintf(mode, sizeof mode, "%o", spec.tmpfs_mode);
      std::string data = std::string("mode=") + mode;
      if (spec.tmpfs_size) data += ",size=" + std::to_string(spec.tmpfs_size);
      if (::mount("tmpfs", via.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | read_only, data.c_str()) != 0)
        mounted = Error::from_errno("mount tmpfs");
      break;
    }
  }
  if (!mounted.ok()) return make_error(mounted.error().code, mounted.error().message + " on " + spec.target + " in the container");
  UniqueFd top = HYPER_TRY(open_in_root(root_fd, spec.target.substr(1), O_PATH | O_DIRECTORY));
  return MountedVolume{spec, HYPER_TRY(path_of(top.get()))};
}

Status configure_interface(Netlink& netlink, const InterfaceSpec& spec) {
  const int index = HYPER_TRY(netlink.link_index(spec.name));
  if (!spec.mac.empty()) {
    const auto mac = parse_mac(spec.mac);
    if (!mac) return make_error(Errc::invalid_argument, "bad MAC address \"" + spec.mac + "\" for " + spec.name);
    HYPER_CHECK(netlink.set_link_address(index, *mac));
  }
  const auto [address, prefix] = HYPER_TRY(parse_ipv4_cidr(spec.address));
  HYPER_CHECK(netlink.add_address(index, address, prefix));
  HYPER_CHECK(netlink.set_link_up(index, spec.mtu ? std::optional<uint32_t>(spec.mtu) : std::nullopt));
  if (!spec.gateway.empty()) HYPER_CHECK(netlink.add_default_route(HYPER_TRY(parse_ipv4(spec.gateway)), index));
  return {};
}

Status configure_network(const NetworkSpec& spec) {
  Netlink netlink = HYPER_TRY(Netlink::open());
  HYPER_CHECK(netlink.set_link_up(HYPER_TRY(netlink.link_index("lo"))));
  for (const auto& interface : spec.interfaces) HYPER_CHECK(configure_interface(netlink, interface));
  return {};
}

std::string hosts_file(const ContainerSpec& spec) {
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  const std::string own = spec.network.interfaces.empty()
                              ? "127.0.1.1"
                              : spec.network.interfaces.front().address.substr(
                                    0, spec.network.interfaces.front().address.find('/'));
  hosts += own + "\t" + spec.hostname + "\n";
  for (const auto& [ip, names] : spec.network.extra_hosts) hosts += ip + "\t" + names + "\n";
  return hosts;
}

std::string resolv_conf(const NetworkSpec& spec) {
  std::string conf;
  for (const auto& server : spec.dns) conf += "nameserver " + server + "\n";
  if (!spec.dns_search.empty()) {
    conf += "search";
    for (const auto& domain : spec.dns_search) conf += " " + domain;
    conf += "\n";
  }
  return conf;
}

Status write_etc_files(int root_fd, const ContainerSpec& spec) {
  HYPER_CHECK(write_in_root(root_fd, "etc/hostname", spec.hostname + "\n"));
  HYPER_CHECK(write_in_root(root_fd, "etc/hosts", hosts_file(spec)));
  return write_in_root(root_fd, "etc/resolv.conf", resolv_conf(spec.network));
}

}  // namespace

Status mount_init_filesystems() {
  HYPER_CHECK(make_dirs("/proc"));
  HYPER_CHECK(make_dirs("/sys"));
  HYPER_CHECK(make_dirs("/dev"));
  HYPER_CHECK(mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC));
  HYPER_CHECK(mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC));
  // The kernel may have mounted devtmpfs already (CONFIG_DEVTMPFS_MOUNT).
  if (::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, nullptr) != 0 && errno != EBUSY)
    return Error::from_errno("mount devtmpfs on /dev");
  return {};
}

Status mount_stopped_writable_layer(const std::string& writable_device) {
  HYPER_CHECK(make_dirs(kWritableMount));
  // Read-only twice over (the host attaches the disk read-only too): a commit must not
  // change the container it reads. Nothing on it is run or opened as a device.
  return mount_fs(writable_device.c_str(), kWritableMount, "ext4", MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC);
}

Result<PreparedContainer> prepare_container(const ContainerSpec& spec) {
  HYPER_CHECK(apply_identity(spec.identity));
  HYPER_CHECK(mount_rootfs(spec.rootfs));
  PreparedContainer prepared;
  prepared.root.reset(::open(kContainerRoot, O_PATH | O_DIRECTORY | O_CLOEXEC));
  const int root = prepared.root.get();
  if (root < 0) return Error::from_errno("open the container's root");
  HYPER_CHECK(mount_kernel_filesystems(root));
  // After the kernel's file systems, so that a volume on /tmp covers the default tmpfs.
  std::set<std::string> staged;
  for (const auto& mount : spec.mounts) prepared.mounts.push_back(HYPER_TRY(mount_volume(root, mount, staged)));
  if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0)
    return Error::from_errno("sethostname " + spec.hostname);
  HYPER_CHECK(configure_network(spec.network));
  // A host root's /etc is the host's: what it needs there comes as mounts (podman's hosts).
  if (spec.rootfs.virtiofs_tag.empty()) HYPER_CHECK(write_etc_files(root, spec));
  return prepared;
}

}  // namespace hyper::guest
