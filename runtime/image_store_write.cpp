// The image store's ways in for images that do not come from an archive: blobs written
// by pulls, commits and imports, images indexed once their blobs are all there, tags.
#include <unistd.h>

#include <cstdio>

#include "runtime/image_blobs.hpp"
#include "runtime/image_formats.hpp"
#include "runtime/image_index.hpp"
#include "runtime/image_store.hpp"

namespace hyper::runtime {

using formats::Json;
using namespace index_file;

Result<std::string> chain_id(const std::vector<std::string>& diff_ids) {
  std::string chain;
  for (const auto& diff_id : diff_ids) {
    if (!blobs::is_sha256_digest(diff_id)) return make_error(Errc::bad_image, "malformed diff_id \"" + diff_id + "\"");
    chain = chain.empty() ? diff_id : HYPER_TRY(blobs::sha256_of(chain + " " + diff_id));
  }
  return chain;
}

bool ImageStore::has_blob(const std::string& digest) const {
  return blobs::is_sha256_digest(digest) && ::access(blob_path(digest).c_str(), F_OK) == 0;
}

Result<std::string> ImageStore::read_blob_text(const std::string& digest) const {
  if (!blobs::is_sha256_digest(digest)) return make_error(Errc::bad_image, "malformed digest \"" + digest + "\"");
  return blobs::read_small_file(blob_path(digest), blobs::kMaxJsonBytes);
}

Result<FileLock> ImageStore::writer_lock() const { return FileLock::acquire_shared(dir_ / kGcLockFile); }

Result<std::string> ImageStore::put_blob(std::string_view bytes) {
  const auto digest = HYPER_TRY(blobs::sha256_of(bytes));
  if (has_blob(digest)) return digest;
  const auto temp = tmp_dir() / ("blob-" + HYPER_TRY(blobs::random_hex(8)));
  HYPER_CHECK(blobs::write_file_synced(temp, bytes));
  if (::rename(temp.c_str(), blob_path(digest).c_str()) != 0) {
    const Error error = Error::from_errno("rename " + blob_path(digest).string());
    ::unlink(temp.c_str());
    return error;
  }
  HYPER_CHECK(blobs::sync_dir(blob_path(digest).parent_path()));
  return digest;
}

namespace {

Result<std::string> hash_file(const std::filesystem::path& file) {
  auto hasher = HYPER_TRY(blobs::Sha256::create());
  HYPER_CHECK(blobs::for_each_plain_chunk(file, blobs::Compression::none, [&](const uint8_t* data, size_t size) {
    hasher.update(data, size);
    return Status{};
  }));
  return hasher.finish();
}

}  // namespace

Result<std::string> ImageStore::put_blob_file(const std::filesystem::path& file, const std::string& expected_digest) {
  struct Remove {
    const std::filesystem::path& path;
    ~Remove() { ::unlink(path.c_str()); }
  } remove{file};
  const auto digest = HYPER_TRY(hash_file(file));
  if (!expected_digest.empty() && digest != expected_digest)
    return make_error(Errc::bad_image, "digest mismatch: expected " + expected_digest + ", got " + digest);
  HYPER_CHECK(adopt_blob(file, digest));
  return digest;
}

Status ImageStore::adopt_blob(const std::filesystem::path& file, const std::string& digest) {
  if (!blobs::is_sha256_digest(digest)) return make_error(Errc::bad_image, "malformed digest \"" + digest + "\"");
  if (has_blob(digest)) {
    ::unlink(file.c_str());
    return {};
  }
  HYPER_CHECK(blobs::sync_file(file));
  if (::rename(file.c_str(), blob_path(digest).c_str()) != 0) return Error::from_errno("rename " + blob_path(digest).string());
  return blobs::sync_dir(blob_path(digest).parent_path());
}

Result<Image> ImageStore::add_image(const std::string& manifest_digest, const std::vector<std::string>& tags,
                                    const std::vector<std::string>& repo_digests) {
  const auto where = "manifest " + manifest_digest;
  const auto text = HYPER_TRY(read_blob_text(manifest_digest));
  const auto doc = HYPER_TRY(formats::parse_json(text, where));
  const auto manifest = HYPER_TRY(formats::parse_manifest(doc, where));
  if (!has_blob(manifest.config.digest))
    return make_error(Errc::bad_image, where + ": config " + manifest.config.digest + " is not stored");
  for (const auto& layer : manifest.layers)
    if (!has_blob(layer.digest)) return make_error(Errc::bad_image, where + ": layer " + layer.digest + " is not stored");
  {
    const auto lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
    auto index = HYPER_TRY(read_index(dir_ / kIndexFile));
    move_tags(index["images"], manifest.config.digest, manifest_digest, tags);
    add_repo_digests(index["images"][manifest.config.digest], repo_digests);
    HYPER_CHECK(write_index(dir_ / kIndexFile, index));
  }
  return find(manifest.config.digest);
}

Status ImageStore::tag(const Image& image, const std::string& normalized_tag) {
  if (normalized_tag.find('@') != std::string::npos)
    return make_error(Errc::invalid_argument, "refusing to create a tag with a digest reference");
  const auto lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
  auto index = HYPER_TRY(read_index(dir_ / kIndexFile));
  if (!index["images"].contains(image.id)) return make_error(Errc::not_found, "No such image: " + image.id);
  move_tags(index["images"], image.id, index["images"][image.id]["manifest"].get<std::string>(), {normalized_tag});
  return write_index(dir_ / kIndexFile, index);
}

}  // namespace hyper::runtime
