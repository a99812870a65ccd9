#include "guest-init/layer_export.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "guest-init/layer_apply.hpp"
#include "guest-init/tar_reader.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::layer {
namespace {

constexpr size_t kBlock = tar::kBlockSize;
constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";

// The agent writes these three at every start from the container's own settings (its
// hostname, addresses and DNS servers), so they are in every upper directory. Docker keeps
// them out of a committed layer, and so do we: an image must not carry one container's
// name and network into the next, and a later start writes them again anyway. Only these
// exact paths, whatever their type (a whiteout of one included); nothing else under etc/.
bool written_at_start(const std::string& path) {
  return path == "etc/hostname" || path == "etc/hosts" || path == "etc/resolv.conf";
}

// Output in 64 KiB writes: a pipe to the agent takes that in one go.
class TarWriter {
 public:
  explicit TarWriter(int fd) : fd_(fd) {}

  Status put(const void* data, size_t size) {
    const auto* bytes = static_cast<const char*>(data);
    buffer_.append(bytes, size);
    total_ += size;
    return buffer_.size() >= (64u << 10) ? flush() : Status{};
  }
  Status pad() {
    const size_t rest = static_cast<size_t>(total_ % kBlock);
    if (rest == 0) return {};
    const std::string zeros(kBlock - rest, '\0');
    return put(zeros.data(), zeros.size());
  }
  Status flush() {
    HYPER_CHECK(write_all(fd_, buffer_.data(), buffer_.size(), "the export stream"));
    buffer_.clear();
    return {};
  }
  [[nodiscard]] uint64_t total() const { return total_; }

 private:
  int fd_;
  std::string buffer_;
  uint64_t total_ = 0;
};

struct Header {
  std::string path, link;
  char type = '0';
  uint32_t mode = 0, uid = 0, gid = 0, major_no = 0, minor_no = 0;
  uint64_t size = 0;
  int64_t mtime = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

bool fits_octal(uint64_t value, size_t field) { return field >= 22 || value < (uint64_t{1} << (3 * (field - 1))); }

// Zero-padded octal filling all but the field's last byte, which stays NUL.
void put_octal(char* field, size_t width, uint64_t value) {
  for (size_t i = width - 1; i-- > 0; value >>= 3) field[i] = static_cast<char>('0' + (value & 7));
}

// One pax record: "<len> key=value\n", where <len> counts itself.
std::string pax_record(const std::string& key, const std::string& value) {
  const size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t length = body + 1;
  while (std::to_string(length).size() + body != length) length = std::to_string(length).size() + body;
  return std::to_string(length) + " " + key + "=" + value + "\n";
}

std::string pax_records(const Header& h) {
  std::string records;
  if (h.path.size() > 100) records += pax_record("path", h.path);
  if (h.link.size() > 100) records += pax_record("linkpath", h.link);
  if (!fits_octal(h.size, 12)) records += pax_record("size", std::to_string(h.size));
  if (!fits_octal(h.uid, 8)) records += pax_record("uid", std::to_string(h.uid));
  if (!fits_octal(h.gid, 8)) records += pax_record("gid", std::to_string(h.gid));
  if (h.mtime < 0 || !fits_octal(static_cast<uint64_t>(h.mtime), 12)) records += pax_record("mtime", std::to_string(h.mtime));
  for (const auto& [name, value] : h.xattrs) records += pax_record("SCHILY.xattr." + name, value);
  return records;
}

std::array<char, kBlock> ustar_block(const Header& h) {
  std::array<char, kBlock> b{};
  std::memcpy(b.data(), h.path.data(), std::min<size_t>(h.path.size(), 100));
  put_octal(&b[100], 8, h.mode & 07777);
  put_octal(&b[108], 8, fits_octal(h.uid, 8) ? h.uid : 0);
  put_octal(&b[116], 8, fits_octal(h.gid, 8) ? h.gid : 0);
  put_octal(&b[124], 12, fits_octal(h.size, 12) ? h.size : 0);
  put_octal(&b[136], 12, h.mtime > 0 && fits_octal(static_cast<uint64_t>(h.mtime), 12) ? static_cast<uint64_t>(h.mtime) : 0);
  b[156] = h.type;
  std::memcpy(&b[157], h.link.data(), std::min<size_t>(h.link.size(), 100));
  std::memcpy(&b[257], "ustar\0" "00", 8);
  put_octal(&b[329], 8, h.major_no);
  put_octal(&b[337], 8, h.minor_no);
  std::memset(&b[148], ' ', 8);
  unsigned sum = 0;
  for (char c : b) sum += static_cast<unsigned char>(c);
  put_octal(&b[148], 7, sum);  // six digits, NUL, and the space already there
  return b;
}

Status write_header(TarWriter& out, const Header& h) {
  const std::string records = pax_records(h);
  if (!records.empty()) {
    Header pax;
    pax.path = "PaxHeaders/" + h.path.substr(0, 80);
    pax.type = 'x';
    pax.mode = 0644;
    pax.size = records.size();
    HYPER_CHECK(out.put(ustar_block(pax).data(), kBlock));
    HYPER_CHECK(out.put(records.data(), records.size()));
    HYPER_CHECK(out.pad());
  }
  return out.put(ustar_block(h).data(), kBlock);
}

Result<std::vector<std::pair<std::string, std::string>>> read_xattrs(int dirfd, const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  // l*xattr through /proc/self/fd: the entry is never followed if it is a symlink.
  const std::string path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  std::vector<char> names(64 << 10);
  const ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) return errno == ENOTSUP || errno == ENOENT ? out : Result<decltype(out)>(Error::from_errno("list xattrs of " + name));
  for (size_t at = 0; at < static_cast<size_t>(n);) {
    const std::string key(&names[at]);
    at += key.size() + 1;
    if (key.starts_with("trusted.overlay.")) continue;
    std::string value(64 << 10, '\0');
    const ssize_t len = ::lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
    if (len < 0) continue;  // removed meanwhile
    value.resize(static_cast<size_t>(len));
    out.emplace_back(key, std::move(value));
  }
  return out;
}

bool is_opaque(int dirfd) {
  char value[2] = {};
  const std::string path = "/proc/self/fd/" + std::to_string(dirfd);
  return ::getxattr(path.c_str(), kOpaqueXattr, value, sizeof value) == 1 && value[0] == 'y';
}

Result<std::vector<std::string>> sorted_names(int dirfd) {
  UniqueFd copy(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!copy.valid()) return Error::from_errno("open a directory of the layer");
  DIR* dir = ::fdopendir(copy.get());
  if (dir == nullptr) return Error::from_errno("read a directory of the layer");
  (void)copy.release();
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

class Exporter {
 public:
  explicit Exporter(int out_fd) : out_(out_fd) {}

  Status directory(int dirfd, const std::string& prefix) {
    if (is_opaque(dirfd)) HYPER_CHECK(marker(prefix + std::string(kOpaqueWhiteout)));
    for (const auto& name : HYPER_TRY(sorted_names(dirfd))) HYPER_CHECK(entry(dirfd, prefix, name));
    return {};
  }

  Status finish() {
    const std::string end(2 * kBlock, '\0');
    HYPER_CHECK(out_.put(end.data(), end.size()));
    HYPER_CHECK(out_.flush());
    stats_.bytes = out_.total();
    return {};
  }
  [[nodiscard]] const ExportStats& stats() const { return stats_; }

 private:
  Status marker(const std::string& path) {
    Header h;
    h.path = path;
    ++stats_.entries;
    ++stats_.whiteouts;
    return write_header(out_, h);
  }

  Status entry(int dirfd, const std::string& prefix, const std::string& name) {
    if (written_at_start(prefix + name)) return {};
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Error::from_errno("stat " + prefix + name);
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) return marker(prefix + std::string(kWhiteoutPrefix) + name);
    if (S_ISSOCK(st.st_mode)) return {};
    Header h;
    h.path = prefix + name;
    h.mode = st.st_mode & 07777;
    h.uid = st.st_uid;
    h.gid = st.st_gid;
    h.mtime = st.st_mtim.tv_sec;
    h.xattrs = HYPER_TRY(read_xattrs(dirfd, name));
    ++stats_.entries;
    if (S_ISDIR(st.st_mode)) return subdirectory(dirfd, name, h);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      const auto [it, first] = links_.try_emplace({st.st_dev, st.st_ino}, h.path);
      if (!first) {
        h.type = '1';
        h.link = it->second;
        return write_header(out_, h);
      }
    }
    if (S_ISREG(st.st_mode)) return regular(dirfd, name, h, static_cast<uint64_t>(st.st_size));
    if (S_ISLNK(st.st_mode)) {
      std::string target(tar::kMaxPath + 1, '\0');
      const ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
      if (n < 0) return Error::from_errno("readlink " + h.path);
      target.resize(static_cast<size_t>(n));
      h.type = '2';
      h.link = target;
      return write_header(out_, h);
    }
    h.type = S_ISCHR(st.st_mode) ? '3' : S_ISBLK(st.st_mode) ? '4' : '6';
    h.major_no = ::major(st.st_rdev);
    h.minor_no = ::minor(st.st_rdev);
    return write_header(out_, h);
  }

  Status subdirectory(int dirfd, const std::string& name, Header& h) {
    h.type = '5';
    h.path += '/';
    HYPER_CHECK(write_header(out_, h));
    UniqueFd child(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child.valid()) return Error::from_errno("open " + h.path);
    return directory(child.get(), h.path);
  }

  Status regular(int dirfd, const std::string& name, Header& h, uint64_t size) {
    UniqueFd file(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!file.valid()) return Error::from_errno("open " + h.path);
    h.size = size;
    HYPER_CHECK(write_header(out_, h));
    std::vector<char> buf(64 << 10);
    uint64_t done = 0;
    while (done < size) {
      const ssize_t n = ::read(file.get(), buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno("read " + h.path);
      // A file that shrank while we read keeps its announced size: zeros fill the rest.
      if (n == 0) std::fill(buf.begin(), buf.end(), '\0');
      const size_t got = n == 0 ? static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done)) : static_cast<size_t>(n);
      HYPER_CHECK(out_.put(buf.data(), got));
      done += got;
    }
    return out_.pad();
  }

  TarWriter out_;
  ExportStats stats_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

Result<ExportStats> export_layer(int upper_dirfd, int out_fd) {
  Exporter exporter(out_fd);
  HYPER_CHECK(exporter.directory(upper_dirfd, ""));
  HYPER_CHECK(exporter.finish());
  return exporter.stats();
}

}  // namespace hyper::layer
