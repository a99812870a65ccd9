// Plumbing for the image store's content-addressed blobs: sha256 while copying, layer
// decompression, bounded reads of the small JSON documents, private temporary files.
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::blobs {

// Big enough that a layer moves in few system calls, small enough to stay on the heap once.
inline constexpr size_t kCopyBuffer = size_t{1} << 20;
// Manifests, indexes and configs are read into memory; anything larger is not an image.
inline constexpr uint64_t kMaxJsonBytes = uint64_t{16} << 20;

class Sha256 {
 public:
  static Result<Sha256> create();
  void update(const void* data, size_t size);
  // "sha256:<64 hex>"; the hasher is spent afterwards.
  Result<std::string> finish();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  explicit Sha256(EVP_MD_CTX* ctx) : ctx_(ctx) {}
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

Result<std::string> sha256_of(std::string_view bytes);

// "sha256:<64 lowercase hex>": the only digests the store names blobs by.
bool is_sha256_digest(std::string_view digest);
bool is_lower_hex(std::string_view text);

// "a/b//c" -> {"a", "b", "", "c"}.
std::vector<std::string_view> split(std::string_view text, char separator);

enum class Compression { none, gzip, zstd };

// From a layer's media type (OCI and Docker spellings); unknown types are refused.
Result<Compression> compression_of(const std::string& media_type);
// From the first bytes of a blob; xz and bzip2 are recognised only to be refused.
Result<Compression> sniff_compression(const std::filesystem::path& path);

// Feeds the uncompressed bytes of a blob to `sink`, in chunks of up to kCopyBuffer.
using Sink = std::function<Status(const uint8_t* data, size_t size)>;
Status for_each_plain_chunk(const std::filesystem::path& path, Compression compression, const Sink& sink);

// The whole file, refused when larger than `limit`.
Result<std::string> read_small_file(const std::filesystem::path& path, uint64_t limit);

// Random lowercase hex for temporary names.
Result<std::string> random_hex(size_t bytes);

// Writes `bytes` to `path` and makes them durable before the caller renames it.
Status write_file_synced(const std::filesystem::path& path, std::string_view bytes);
Status sync_file(const std::filesystem::path& path);
Status sync_dir(const std::filesystem::path& path);
// Replaces `path` with `bytes` atomically and durably: readers see the old or the new
// file, never a torn one, and a crash leaves one of the two rather than an empty file.
Status replace_file(const std::filesystem::path& path, std::string_view bytes);

// A directory removed with everything in it when the owner goes away.
class TempDir {
 public:
  static Result<TempDir> create(const std::filesystem::path& parent);
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

}  // namespace hyper::runtime::blobs
