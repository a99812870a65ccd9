#include "guest-init/layer_apply.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "vmm/unique_fd.hpp"

namespace hyper::layer {
namespace {

using tar::Entry;
using tar::EntryType;

constexpr size_t kCopyChunk = 128 * 1024;
// Removing a tree holds one fd per level; deeper trees are refused rather than running
// the process out of fds (real images stay far below this).
constexpr int kMaxRemoveDepth = 256;

// A directory inside the root, resolved as if the root were "/": symlinks in `path`, even
// absolute ones or ones with "..", cannot leave it. Returns the fd or -errno.
int open_dir_in_root(int root, const std::string& path) {
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* name = path.empty() ? "." : path.c_str();
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, root, name, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a concurrent rename or mount made the kernel give up; it is worth retrying.
    if ((errno == EAGAIN || errno == EINTR) && attempt < 16) continue;
    return -errno;
  }
}

// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<std::string, std::string> split_parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {std::string(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

std::string join(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "/" + std::string(name);
}

bool is_device(EntryType type) { return type == EntryType::char_device || type == EntryType::block_device; }

Status write_all(int fd, const char* data, size_t size, const std::string& context) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(context + ": write");
    if (n == 0) return make_error(Errc::io, context + ": write made no progress");
    data += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

// The names in a directory, "." and ".." left out.
Result<std::vector<std::string>> list_names(int dirfd, const std::string& context) {
  const int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::from_errno(context + ": opening a directory to list it");
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int err = errno;
    ::close(fd);
    return Error::from_errno(context + ": fdopendir", err);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* de = ::readdir(dir);
    if (de == nullptr) break;
    const std::string_view name = de->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int err = errno;
  ::closedir(dir);
  if (err != 0) return Error::from_errno(context + ": readdir", err);
  return names;
}

bool privileged_xattr(std::string_view name) {
  return name.starts_with("trusted.") || name.starts_with("security.");
}

class Applier {
 public:
  Applier(int root, tar::ByteSource& source, const ApplyOptions& options)
      : root_(root), source_(source), options_(options) {}

  Result<ApplyStats> run() {
    tar::Reader reader(source_);
    for (;;) {
      auto entry = HYPER_TRY(reader.next());
      if (!entry) break;
      ++stats_.entries;
      context_ = "layer entry " + tar::printable(entry->path) + " at offset " + std::to_string(entry->header_offset);
      HYPER_CHECK(apply(*entry));
    }
    context_ = "layer";
    HYPER_CHECK(apply_directory_times());
    return stats_;
  }

 private:
  struct DirectoryTime {
    std::string path;
    timespec mtime;
  };

  Error bad(const std::string& why) const { return make_error(Errc::bad_image, context_ + ": " + why); }
  Error failed(const std::string& call, int err = errno) const { return Error::from_errno(context_ + ": " + call, err); }

  Status apply(const Entry& entry) {
    const auto path = normalise_path(entry.path);
    if (!path) return bad("the path leaves the root");
    if (path->empty()) {
      if (entry.type != EntryType::directory) {
        return bad(std::string("a ") + tar::entry_type_name(entry.type) + " cannot replace the root directory");
      }
      return apply_root(entry);
    }
    const auto [parent_path, name] = split_parent(*path);
    if (name.starts_with(kWhiteoutPrefix)) return apply_whiteout(parent_path, name);
    const UniqueFd parent = HYPER_TRY(make_parents(parent_path));
    switch (entry.type) {
      case EntryType::directory: return apply_directory(entry, parent.get(), name, *path);
      case EntryType::regular: return apply_regular(entry, parent.get(), name, *path);
      case EntryType::symlink: return apply_symlink(entry, parent.get(), name, *path);
      case EntryType::hard_link: return apply_hard_link(entry, parent.get(), name, *path);
      case EntryType::char_device:
      case EntryType::block_device:
      case EntryType::fifo: return apply_special(entry, parent.get(), name, *path);
    }
    return bad("unknown entry type");
  }

  // The parent directory of an entry, created with its missing ancestors one component at
  // a time, each resolved inside the root.
  Result<UniqueFd> make_parents(const std::string& parent_path) {
    int fd = open_dir_in_root(root_, parent_path);
    if (fd >= 0) return UniqueFd(fd);
    if (fd != -ENOENT) return failed("opening the parent directory " + tar::printable(parent_path), -fd);
    UniqueFd current(open_dir_in_root(root_, ""));
    if (!current.valid()) return failed("opening the root directory");
    size_t start = 0;
    while (start < parent_path.size()) {
      const size_t end = std::min(parent_path.find('/', start), parent_path.size());
      const std::string prefix = parent_path.substr(0, end);
      const std::string component = parent_path.substr(start, end - start);
      fd = open_dir_in_root(root_, prefix);
      if (fd == -ENOENT) {
        if (::mkdirat(current.get(), component.c_str(), 0755) == 0) {
          // Made just now, so not a symlink: chmod may follow. (0755 whatever the umask.)
          if (::fchmodat(current.get(), component.c_str(), 0755, 0) != 0) return failed("fchmodat " + tar::printable(prefix));
          mark_created(prefix);
        } else if (errno != EEXIST) {
          return failed("mkdirat " + tar::printable(prefix));
        }
        fd = open_dir_in_root(root_, prefix);
      }
      if (fd < 0) return failed("opening the parent directory " + tar::printable(prefix), -fd);
      current.reset(fd);
      start = end + 1;
    }
    return current;
  }

  // What the layer wrote is kept by whiteouts: the path itself and its ancestors.
  void mark_created(const std::string& path) { created_.insert(path); }
  bool is_or_holds_created(const std::string& path) const {
    if (created_.contains(path)) return true;
    const std::string below = path + "/";
    const auto next = created_.lower_bound(below);
    return next != created_.end() && next->starts_with(below);
  }

  // Removes `name` in `parent` (at `path` in the root), a directory with all it holds. With
  // keep_created, what this layer wrote and the directories leading to it stay.
  Status remove(int parent, const std::string& name, const std::string& path, bool keep_created, int depth) {
    if (keep_created && !is_or_holds_created(path)) keep_created = false;
    struct stat st;
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return {};
      return failed("fstatat " + tar::printable(path));
    }
    if (!S_ISDIR(st.st_mode)) {
      if (keep_created) return {};
      if (::unlinkat(parent, name.c_str(), 0) != 0) return failed("unlinkat " + tar::printable(path));
      return {};
    }
    if (depth >= kMaxRemoveDepth) {
      return make_error(Errc::unsupported, context_ + ": removing " + tar::printable(path) + ": deeper than " +
                                               std::to_string(kMaxRemoveDepth) + " directory levels");
    }
    const UniqueFd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) return failed("opening directory " + tar::printable(path));
    const auto children = HYPER_TRY(list_names(dir.get(), context_));
    for (const std::string& child : children) {
      HYPER_CHECK(remove(dir.get(), child, join(path, child), keep_created, depth + 1));
    }
    if (keep_created) return {};
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0) return failed("rmdir " + tar::printable(path));
    return {};
  }

  // Clears the way for a new entry. Returns whether an existing directory was kept.
  Result<bool> clear(int parent, const std::string& name, const std::string& path, bool keep_directory) {
    struct stat st;
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return false;
      return failed("fstatat");
    }
    if (S_ISDIR(st.st_mode)) {
      if (keep_directory) return true;
      HYPER_CHECK(remove(parent, name, path, false, 0));
      return false;
    }
    if (::unlinkat(parent, name.c_str(), 0) != 0) return failed("unlinkat of the existing file");
    return false;
  }

  Status apply_whiteout(const std::string& parent_path, const std::string& name) {
    ++stats_.whiteouts;
    const int fd = open_dir_in_root(root_, parent_path);
    if (fd == -ENOENT || fd == -ENOTDIR) return {};  // nothing there to hide
    if (fd < 0) return failed("opening the whiteout's directory", -fd);
    const UniqueFd parent(fd);
    if (name == kOpaqueWhiteout) {
      const auto children = HYPER_TRY(list_names(parent.get(), context_));
      for (const std::string& child : children) {
        HYPER_CHECK(remove(parent.get(), child, join(parent_path, child), true, 0));
      }
      return {};
    }
    const std::string target = name.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == "..") return bad("whiteout of " + tar::printable(target));
    return remove(parent.get(), target, join(parent_path, target), true, 0);
  }

  Status apply_root(const Entry& entry) {
    const UniqueFd dir(::openat(root_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return failed("opening the root directory");
    HYPER_CHECK(set_metadata_fd(dir.get(), entry));
    dir_times_.push_back({std::string(), mtime(entry)});
    ++stats_.directories;
    return {};
  }

  Status apply_directory(const Entry& entry, int parent, const std::string& name, const std::string& path) {
    const bool kept = HYPER_TRY(clear(parent, name, path, true));
    if (!kept && ::mkdirat(parent, name.c_str(), 0700) != 0) return failed("mkdirat");
    mark_created(path);
    const UniqueFd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) return failed("opening the directory");
    HYPER_CHECK(set_metadata_fd(dir.get(), entry));
    dir_times_.push_back({path, mtime(entry)});
    ++stats_.directories;
    return {};
  }

  Status apply_regular(const Entry& entry, int parent, const std::string& name, const std::string& path) {
    HYPER_CHECK(clear(parent, name, path, false));
    const UniqueFd file(::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file.valid()) return failed("openat");
    mark_created(path);
    HYPER_CHECK(copy_data(entry, file.get()));
    HYPER_CHECK(set_metadata_fd(file.get(), entry));
    const timespec times[2] = {mtime(entry), mtime(entry)};
    if (::futimens(file.get(), times) != 0) return failed("futimens");
    ++stats_.regular_files;
    return {};
  }

  Status copy_data(const Entry& entry, int fd) {
    if (entry.size > 0 && buffer_.empty()) buffer_.resize(kCopyChunk);
    uint64_t written = 0;
    while (written < entry.size) {
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(kCopyChunk, entry.size - written));
      HYPER_CHECK(tar::read_exact(source_, entry.data_offset + written, buffer_.data(), chunk));
      HYPER_CHECK(write_all(fd, buffer_.data(), chunk, context_));
      written += chunk;
    }
    stats_.bytes_written += written;
    return {};
  }

  Status apply_symlink(const Entry& entry, int parent, const std::string& name, const std::string& path) {
    HYPER_CHECK(clear(parent, name, path, false));
    if (::symlinkat(entry.link_target.c_str(), parent, name.c_str()) != 0) {
      return failed("symlinkat to " + tar::printable(entry.link_target));
    }
    mark_created(path);
    HYPER_CHECK(set_metadata_at(entry, parent, name));
    ++stats_.symlinks;
    return {};
  }

  Status apply_hard_link(const Entry& entry, int parent, const std::string& name, const std::string& path) {
    const std::string shown = tar::printable(entry.link_target);
    const auto target = normalise_path(entry.link_target);
    if (!target) return bad("the hard link target " + shown + " leaves the root");
    if (target->empty()) return bad("a hard link to the root directory");
    const auto [target_parent_path, target_name] = split_parent(*target);
    const int fd = open_dir_in_root(root_, target_parent_path);
    if (fd == -ENOENT || fd == -ENOTDIR) return bad("the hard link target " + shown + " does not exist");
    if (fd < 0) return failed("opening the hard link target's directory", -fd);
    const UniqueFd target_parent(fd);
    struct stat target_st, existing_st;
    if (::fstatat(target_parent.get(), target_name.c_str(), &target_st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return bad("the hard link target " + shown + " does not exist");
      return failed("fstatat of the hard link target " + shown);
    }
    if (S_ISDIR(target_st.st_mode)) return bad("the hard link target " + shown + " is a directory");
    const bool same = ::fstatat(parent, name.c_str(), &existing_st, AT_SYMLINK_NOFOLLOW) == 0 &&
                      existing_st.st_dev == target_st.st_dev && existing_st.st_ino == target_st.st_ino;
    if (!same) {  // (a link to itself, or to the file it already is, is left alone)
      HYPER_CHECK(clear(parent, name, path, false));
      if (::linkat(target_parent.get(), target_name.c_str(), parent, name.c_str(), 0) != 0) {
        return failed("linkat to " + shown);
      }
    }
    mark_created(path);
    ++stats_.hard_links;
    return {};
  }

  Status apply_special(const Entry& entry, int parent, const std::string& name, const std::string& path) {
    HYPER_CHECK(clear(parent, name, path, false));
    if (is_device(entry.type) && !options_.create_devices) {
      ++stats_.skipped;
      return {};
    }
    const mode_t type = entry.type == EntryType::fifo        ? S_IFIFO
                        : entry.type == EntryType::char_device ? S_IFCHR
                                                               : S_IFBLK;
    if (::mknodat(parent, name.c_str(), type | 0600, ::makedev(entry.dev_major, entry.dev_minor)) != 0) {
      if (errno == EPERM && is_device(entry.type)) {  // no CAP_MKNOD (e.g. in a user namespace)
        ++stats_.skipped;
        return {};
      }
      return failed("mknodat");
    }
    mark_created(path);
    HYPER_CHECK(set_metadata_at(entry, parent, name));
    ++stats_.special_files;
    return {};
  }

  static timespec mtime(const Entry& entry) {
    return timespec{static_cast<time_t>(entry.mtime_sec), static_cast<long>(entry.mtime_nsec)};
  }

  // Owner first: chown clears setuid/setgid and security.capability.
  Status set_metadata_fd(int fd, const Entry& entry) {
    if (options_.preserve_ownership && ::fchown(fd, entry.uid, entry.gid) != 0) return failed("fchown");
    if (::fchmod(fd, entry.mode) != 0) return failed("fchmod");
    for (const tar::Xattr& xattr : entry.xattrs) {
      if (::fsetxattr(fd, xattr.name.c_str(), xattr.value.data(), xattr.value.size(), 0) != 0) {
        if (errno == EPERM && privileged_xattr(xattr.name)) continue;
        return failed("fsetxattr " + tar::printable(xattr.name));
      }
    }
    return {};
  }

  // Symlinks, fifos and devices, by name in their parent, never following the name.
  Status set_metadata_at(const Entry& entry, int parent, const std::string& name) {
    if (options_.preserve_ownership && ::fchownat(parent, name.c_str(), entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return failed("fchownat");
    }
    // A fifo or device made just now is not a symlink, so chmod may follow the name.
    if (entry.type != EntryType::symlink && ::fchmodat(parent, name.c_str(), entry.mode, 0) != 0) {
      return failed("fchmodat");
    }
    if (!entry.xattrs.empty()) {
      // No fd-based call sets an xattr on a symlink: name it through the parent's fd.
      const std::string proc_path = "/proc/self/fd/" + std::to_string(parent) + "/" + name;
      for (const tar::Xattr& xattr : entry.xattrs) {
        if (::lsetxattr(proc_path.c_str(), xattr.name.c_str(), xattr.value.data(), xattr.value.size(), 0) != 0) {
          // ENOENT: no /proc. EPERM: user.* is refused on these types, trusted.* and
          // security.* need privileges. ENOTSUP: the namespace is not supported.
          if (errno == ENOENT || errno == ENOTSUP || errno == EPERM) continue;
          return failed("lsetxattr " + tar::printable(xattr.name));
        }
      }
    }
    const timespec times[2] = {mtime(entry), mtime(entry)};
    if (::utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return failed("utimensat");
    return {};
  }

  // Only directories that are still directories get their archive time.
  Status apply_directory_times() {
    for (const DirectoryTime& dir : dir_times_) {
      const timespec times[2] = {dir.mtime, dir.mtime};
      if (dir.path.empty()) {
        if (::utimensat(root_, ".", times, 0) != 0) return failed("utimensat of the root directory");
        continue;
      }
      const auto [parent_path, name] = split_parent(dir.path);
      const int fd = open_dir_in_root(root_, parent_path);
      if (fd == -ENOENT || fd == -ENOTDIR) continue;  // removed by a later entry
      if (fd < 0) return failed("opening the parent of directory " + tar::printable(dir.path), -fd);
      const UniqueFd parent(fd);
      struct stat st;
      if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
      if (::utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
        return failed("utimensat of directory " + tar::printable(dir.path));
      }
    }
    return {};
  }

  int root_;
  tar::ByteSource& source_;
  ApplyOptions options_;
  ApplyStats stats_;
  std::string context_;
  // Normalised paths this layer wrote; ordered, so "anything below P" is a range lookup.
  std::set<std::string, std::less<>> created_;
  std::vector<DirectoryTime> dir_times_;
  std::vector<char> buffer_;
};

}  // namespace

std::optional<std::string> normalise_path(std::string_view path) {
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string_view component = path.substr(start, end - start);
    if (component == "..") return std::nullopt;
    if (!component.empty() && component != ".") {
      if (!out.empty()) out += '/';
      out += component;
    }
    start = end + 1;
  }
  return out;
}

Result<ApplyStats> apply_layer(int root_dirfd, tar::ByteSource& tar, const ApplyOptions& options) {
  return Applier(root_dirfd, tar, options).run();
}

}  // namespace hyper::layer
