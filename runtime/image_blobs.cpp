#include "runtime/image_blobs.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>
#include <vector>

#include "vmm/file_io.hpp"

namespace hyper::runtime::blobs {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

std::string hex_of(const uint8_t* bytes, size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHexDigits[bytes[i] >> 4]);
    out.push_back(kHexDigits[bytes[i] & 0xf]);
  }
  return out;
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

std::string archive_message(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown libarchive error";
}

Status read_plain(const std::filesystem::path& path, const Sink& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  std::vector<uint8_t> buffer(kCopyBuffer);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read " + path.string());
    if (n == 0) return {};
    HYPER_CHECK(sink(buffer.data(), static_cast<size_t>(n)));
  }
}

// libarchive's "raw" format hands out a single entry: the decompressed stream. Only the
// filters a layer may use are enabled, so no external decompressor is ever started.
Status read_compressed(const std::filesystem::path& path, Compression compression, const Sink& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  ArchivePtr a(archive_read_new());
  if (!a) return make_error(Errc::io, "out of memory for libarchive");
  const int filter = compression == Compression::gzip ? archive_read_support_filter_gzip(a.get())
                                                      : archive_read_support_filter_zstd(a.get());
  if (filter != ARCHIVE_OK || archive_read_support_format_raw(a.get()) != ARCHIVE_OK)
    return make_error(Errc::unsupported, "libarchive cannot decompress " + path.string() + ": " + archive_message(a.get()));
  const auto fail = [&](const std::string& what) {
    return make_error(Errc::bad_image, "decompressing " + path.string() + ": " + what);
  };
  if (archive_read_open_fd(a.get(), fd.get(), kCopyBuffer) != ARCHIVE_OK) return fail(archive_message(a.get()));
  archive_entry* entry = nullptr;
  const int header = archive_read_next_header(a.get(), &entry);
  if (header == ARCHIVE_EOF) return {};  // an empty blob decompresses to nothing
  if (header != ARCHIVE_OK) return fail(archive_message(a.get()));
  std::vector<uint8_t> buffer(kCopyBuffer);
  for (;;) {
    const la_ssize_t n = archive_read_data(a.get(), buffer.data(), buffer.size());
    if (n < 0) return fail(archive_message(a.get()));
    if (n == 0) return {};
    HYPER_CHECK(sink(buffer.data(), static_cast<size_t>(n)));
  }
}

}  // namespace

Result<Sha256> Sha256::create() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return make_error(Errc::io, "out of memory for a sha256 context");
  Sha256 hasher(ctx);
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) return make_error(Errc::unsupported, "OpenSSL has no sha256");
  return hasher;
}

void Sha256::update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }

Result<std::string> Sha256::finish() {
  std::array<uint8_t, EVP_MAX_MD_SIZE> digest{};
  unsigned size = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), digest.data(), &size) != 1 || size != 32)
    return make_error(Errc::io, "computing sha256 failed");
  return "sha256:" + hex_of(digest.data(), size);
}

Result<std::string> sha256_of(std::string_view bytes) {
  auto hasher = HYPER_TRY(Sha256::create());
  hasher.update(bytes.data(), bytes.size());
  return hasher.finish();
}

bool is_lower_hex(std::string_view text) {
  for (const char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_sha256_digest(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  return digest.size() == kPrefix.size() + 64 && digest.substr(0, kPrefix.size()) == kPrefix &&
         is_lower_hex(digest.substr(kPrefix.size()));
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t at = text.find(separator, start);
    if (at == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, at - start));
    start = at + 1;
  }
}

Result<Compression> compression_of(const std::string& media_type) {
  static const std::array<std::pair<std::string_view, Compression>, 13> kTypes{{
      {"application/vnd.oci.image.layer.v1.tar", Compression::none},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::gzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::zstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::none},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::gzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::zstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::none},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::gzip},
      {"application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::zstd},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar", Compression::none},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::gzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.zstd", Compression::zstd},
      // Docker's own name for an uncompressed layer in older manifests.
      {"application/x-tar", Compression::none},
  }};
  for (const auto& [name, compression] : kTypes)
    if (media_type == name) return compression;
  return make_error(Errc::unsupported, "unsupported layer media type \"" + media_type + "\"");
}

Result<Compression> sniff_compression(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  std::array<uint8_t, 6> magic{};
  ssize_t n = 0;
  do {
    n = ::pread(fd.get(), magic.data(), magic.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::from_errno("read " + path.string());
  const auto starts = [&](std::initializer_list<uint8_t> prefix) {
    return static_cast<size_t>(n) >= prefix.size() && std::equal(prefix.begin(), prefix.end(), magic.begin());
  };
  if (starts({0x1f, 0x8b})) return Compression::gzip;
  if (starts({0x28, 0xb5, 0x2f, 0xfd})) return Compression::zstd;
  if (starts({0xfd, '7', 'z', 'X', 'Z', 0x00}) || starts({'B', 'Z', 'h'}))
    return make_error(Errc::unsupported, "xz and bzip2 compressed layers are not supported");
  return Compression::none;
}

Status for_each_plain_chunk(const std::filesystem::path& path, Compression compression, const Sink& sink) {
  if (compression == Compression::none) return read_plain(path, sink);
  return read_compressed(path, compression, sink);
}

Result<std::string> read_small_file(const std::filesystem::path& path, uint64_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("stat " + path.string());
  if (!S_ISREG(st.st_mode)) return make_error(Errc::bad_image, path.string() + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > limit)
    return make_error(Errc::bad_image, path.string() + " is too large (" + std::to_string(st.st_size) +
                                           " bytes, at most " + std::to_string(limit) + ")");
  std::string out(static_cast<size_t>(st.st_size), '\0');
  HYPER_CHECK(read_exact_at(fd.get(), {reinterpret_cast<uint8_t*>(out.data()), out.size()}, 0));
  return out;
}

Result<std::string> random_hex(size_t bytes) {
  std::vector<uint8_t> raw(bytes);
  size_t done = 0;
  while (done < raw.size()) {
    const ssize_t n = ::getrandom(raw.data() + done, raw.size() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("getrandom");
    done += static_cast<size_t>(n);
  }
  return hex_of(raw.data(), raw.size());
}

Status write_file_synced(const std::filesystem::path& path, std::string_view bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Error::from_errno("create " + path.string());
  HYPER_CHECK(write_all(fd.get(), bytes.data(), bytes.size(), path.string()));
  if (::fdatasync(fd.get()) != 0) return Error::from_errno("sync " + path.string());
  return {};
}

Status sync_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  if (::fdatasync(fd.get()) != 0) return Error::from_errno("sync " + path.string());
  return {};
}

Status sync_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  if (::fsync(fd.get()) != 0) return Error::from_errno("sync " + path.string());
  return {};
}

Status replace_file(const std::filesystem::path& path, std::string_view bytes) {
  const auto suffix = HYPER_TRY(random_hex(8));
  const auto temp = path.parent_path() / (path.filename().string() + ".tmp-" + suffix);
  const Status written = write_file_synced(temp, bytes);
  if (written.ok() && ::rename(temp.c_str(), path.c_str()) == 0) return sync_dir(path.parent_path());
  const Error error = written.ok() ? Error::from_errno("rename " + path.string()) : written.error();
  ::unlink(temp.c_str());
  return error;
}

Result<TempDir> TempDir::create(const std::filesystem::path& parent) {
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return make_error(Errc::io, "create " + parent.string() + ": " + ec.message());
  const auto name = HYPER_TRY(random_hex(8));
  auto path = parent / name;
  if (::mkdir(path.c_str(), 0700) != 0) return Error::from_errno("create " + path.string());
  return TempDir(std::move(path));
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);  // best effort: a leftover is only wasted space
}

}  // namespace hyper::runtime::blobs
