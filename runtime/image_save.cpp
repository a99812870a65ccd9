#include "runtime/image_save.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <set>

#include "runtime/guarded.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/image_formats.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace {

using formats::Json;

constexpr const char* kBlobDir = "blobs/sha256/";

std::string blob_name(const std::string& digest) { return kBlobDir + digest.substr(digest.find(':') + 1); }
std::string repository_of(const std::string& tag) { return tag.substr(0, tag.rfind(':')); }
std::string tag_part(const std::string& tag) { return tag.substr(tag.rfind(':') + 1); }

// A name without tag or digest ("busybox", "host:5000/a/b"): Docker saves every tag of it.
bool is_repository_only(const std::string& name) {
  if (name.find('@') != std::string::npos) return false;
  const size_t slash = name.rfind('/');
  return name.find(':', slash == std::string::npos ? 0 : slash) == std::string::npos;
}

void add_item(std::vector<SaveItem>& items, const Image& image, const std::optional<std::string>& tag) {
  auto same = std::find_if(items.begin(), items.end(), [&](const SaveItem& item) { return item.image.id == image.id; });
  if (same == items.end()) {
    items.push_back(SaveItem{image, {}});
    items.back().image.tags.clear();
    same = items.end() - 1;
  }
  if (tag && std::find(same->tags.begin(), same->tags.end(), *tag) == same->tags.end()) same->tags.push_back(*tag);
}

// Every image tagged in `repository` (normalised), with those tags; false if none.
Result<bool> add_repository(const ImageStore& store, const std::string& repository, std::vector<SaveItem>& items) {
  bool found = false;
  for (const auto& image : HYPER_TRY(store.list())) {
    for (const auto& tag : image.tags) {
      if (repository_of(tag) != repository) continue;
      add_item(items, image, tag);
      found = true;
    }
  }
  return found;
}

// ---- the tar ------------------------------------------------------------------------

struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};

// A pax tar on a file descriptor; every entry belongs to root, dated 1970 like Docker's.
class TarOut {
 public:
  explicit TarOut(int fd) : fd_(fd), writer_(archive_write_new()) {}

  Status open() {
    if (!writer_) return make_error(Errc::io, "out of memory for libarchive");
    if (archive_write_set_format_pax_restricted(writer_.get()) != ARCHIVE_OK ||
        archive_write_open2(writer_.get(), this, nullptr, &TarOut::output, nullptr, nullptr) != ARCHIVE_OK)
      return failed("start the archive");
    return {};
  }
  Status add_dir(const std::string& name) { return header(name, AE_IFDIR, 0755, 0); }
  Status add_bytes(const std::string& name, const std::string& bytes) {
    HYPER_CHECK(header(name, AE_IFREG, 0644, bytes.size()));
    return data(bytes.data(), bytes.size());
  }
  Status add_blob(const ImageStore& store, const std::string& digest);
  Status close() {
    if (archive_write_close(writer_.get()) != ARCHIVE_OK) return failed("finish the archive");
    return {};
  }

 private:
  static la_ssize_t output(archive*, void* self, const void* bytes, size_t size) {
    auto* out = static_cast<TarOut*>(self);
    out->failure_ = write_all(out->fd_, bytes, size, "the archive");
    return out->failure_.ok() ? static_cast<la_ssize_t>(size) : -1;
  }
  Error failed(const std::string& what) {
    if (!failure_.ok()) return failure_.error();
    const char* message = archive_error_string(writer_.get());
    return make_error(Errc::io, what + ": " + (message != nullptr ? message : "libarchive failed"));
  }
  Status header(const std::string& name, unsigned type, unsigned mode, uint64_t size);
  Status data(const void* bytes, size_t size);

  int fd_;
  Status failure_;  // of the output callback, which can only tell libarchive "-1"
  // Last, so it is freed (flushing through output()) while the rest is still there.
  std::unique_ptr<archive, WriteFree> writer_;
};

Status TarOut::header(const std::string& name, unsigned type, unsigned mode, uint64_t size) {
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(), &archive_entry_free);
  if (!entry) return make_error(Errc::io, "out of memory for libarchive");
  archive_entry_set_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), type);
  archive_entry_set_perm(entry.get(), mode);
  archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
  archive_entry_set_mtime(entry.get(), 0, 0);
  if (archive_write_header(writer_.get(), entry.get()) != ARCHIVE_OK) return failed("write " + name);
  return {};
}

Status TarOut::data(const void* bytes, size_t size) {
  const auto* at = static_cast<const uint8_t*>(bytes);
  while (size > 0) {
    const la_ssize_t n = archive_write_data(writer_.get(), at, size);
    if (n <= 0) return failed("write the archive");
    at += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

Status TarOut::add_blob(const ImageStore& store, const std::string& digest) {
  const auto path = store.blob_path(digest);
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return Error::from_errno("open blob " + digest);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Error::from_errno("stat blob " + digest);
  const auto size = static_cast<uint64_t>(st.st_size);
  HYPER_CHECK(header(blob_name(digest), AE_IFREG, 0644, size));
  auto hasher = HYPER_TRY(blobs::Sha256::create());
  std::vector<uint8_t> buffer(blobs::kCopyBuffer);
  for (uint64_t done = 0; done < size;) {
    const ssize_t n = ::read(in.get(), buffer.data(), std::min<uint64_t>(buffer.size(), size - done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read blob " + digest);
    if (n == 0) return make_error(Errc::io, "blob " + digest + " shrank while it was saved");
    hasher.update(buffer.data(), static_cast<size_t>(n));
    HYPER_CHECK(data(buffer.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  if (HYPER_TRY(hasher.finish()) != digest)
    return make_error(Errc::bad_image, "blob " + digest + " in the image store is corrupt: it does not match its digest");
  return {};
}

// ---- the documents ------------------------------------------------------------------

// What index.json names for an image: its stored manifest when that is an OCI one, or an
// OCI manifest for the same config and layers, written beside the blobs (OCI readers
// such as skopeo's take only OCI media types from an index).
struct OciManifest {
  std::string digest, media_type;
  uint64_t size = 0;
  std::string generated;  // the document, when it is not a stored blob
};

Result<std::string> oci_layer_type(const std::string& media_type) {
  switch (HYPER_TRY(blobs::compression_of(media_type))) {
    case blobs::Compression::gzip: return std::string("application/vnd.oci.image.layer.v1.tar+gzip");
    case blobs::Compression::zstd: return std::string("application/vnd.oci.image.layer.v1.tar+zstd");
    case blobs::Compression::none: break;
  }
  return std::string("application/vnd.oci.image.layer.v1.tar");
}

Result<OciManifest> oci_manifest(const ImageStore& store, const Image& image) {
  const auto where = "image " + image.id.substr(0, 19) + ": manifest";
  const auto text = HYPER_TRY(store.read_blob_text(image.manifest_digest));
  const auto doc = HYPER_TRY(formats::parse_json(text, where));
  const auto type = doc.is_object() ? doc.find("mediaType") : doc.end();
  const std::string media_type = type != doc.end() && type->is_string() ? type->get<std::string>() : formats::kOciManifest;
  if (media_type != formats::kDockerManifest) return OciManifest{image.manifest_digest, media_type, text.size(), {}};
  const auto manifest = HYPER_TRY(formats::parse_manifest(doc, where));
  Json layers = Json::array();
  for (const auto& layer : manifest.layers) {
    const auto layer_type = HYPER_TRY(oci_layer_type(layer.media_type));
    layers.push_back({{"mediaType", layer_type}, {"digest", layer.digest}, {"size", layer.size}});
  }
  const Json converted = {{"schemaVersion", 2},
                          {"mediaType", formats::kOciManifest},
                          {"config",
                           {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                            {"digest", manifest.config.digest},
                            {"size", manifest.config.size}}},
                          {"layers", std::move(layers)}};
  OciManifest out{"", formats::kOciManifest, 0, converted.dump(-1, ' ', false, Json::error_handler_t::replace)};
  out.digest = HYPER_TRY(blobs::sha256_of(out.generated));
  out.size = out.generated.size();
  return out;
}

std::string index_json(const std::vector<SaveItem>& items, const std::vector<OciManifest>& manifests) {
  Json entries = Json::array();
  for (size_t i = 0; i < items.size(); ++i) {
    const Json descriptor = {{"mediaType", manifests[i].media_type}, {"digest", manifests[i].digest}, {"size", manifests[i].size}};
    if (items[i].tags.empty()) entries.push_back(descriptor);
    for (const auto& tag : items[i].tags) {
      Json named = descriptor;
      named["annotations"] = {{"io.containerd.image.name", tag}, {"org.opencontainers.image.ref.name", tag_part(tag)}};
      entries.push_back(std::move(named));
    }
  }
  const Json index = {{"schemaVersion", 2}, {"mediaType", formats::kOciIndex}, {"manifests", std::move(entries)}};
  return index.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string manifest_json(const std::vector<SaveItem>& items) {
  Json out = Json::array();
  for (const auto& item : items) {
    Json layers = Json::array();
    for (const auto& layer : item.image.layers) layers.push_back(blob_name(layer.digest));
    Json tags = nullptr;
    for (const auto& tag : item.tags) tags.push_back(familiar_name(tag));
    out.push_back({{"Config", blob_name(item.image.id)}, {"RepoTags", std::move(tags)}, {"Layers", std::move(layers)}});
  }
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The legacy `repositories`: {"busybox": {"latest": "<hex of the top layer>"}}.
std::optional<std::string> repositories_json(const std::vector<SaveItem>& items) {
  Json out = Json::object();
  for (const auto& item : items) {
    if (item.image.layers.empty()) continue;
    const auto& top = item.image.layers.back().digest;
    for (const auto& tag : item.tags) {
      const auto familiar = familiar_name(tag);
      out[familiar.substr(0, familiar.rfind(':'))][tag_part(tag)] = top.substr(top.find(':') + 1);
    }
  }
  if (out.empty()) return std::nullopt;
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Status write_blobs(const ImageStore& store, const std::vector<SaveItem>& items,
                   const std::vector<OciManifest>& manifests, TarOut& tar) {
  std::set<std::string> written;
  for (size_t i = 0; i < items.size(); ++i) {
    if (written.insert(manifests[i].digest).second) {
      if (manifests[i].generated.empty()) {
        HYPER_CHECK(tar.add_blob(store, manifests[i].digest));
      } else {
        HYPER_CHECK(tar.add_bytes(blob_name(manifests[i].digest), manifests[i].generated));
      }
    }
    std::vector<std::string> digests = {items[i].image.id};
    for (const auto& layer : items[i].image.layers) digests.push_back(layer.digest);
    for (const auto& digest : digests) {
      if (!blobs::is_sha256_digest(digest)) return make_error(Errc::bad_image, "malformed digest \"" + digest + "\"");
      if (written.insert(digest).second) HYPER_CHECK(tar.add_blob(store, digest));
    }
  }
  return {};
}

Status write_archive(const ImageStore& store, const std::vector<SaveItem>& items, int fd) {
  std::vector<OciManifest> manifests;
  for (const auto& item : items) {
    auto manifest = HYPER_TRY(oci_manifest(store, item.image));
    manifests.push_back(std::move(manifest));
  }
  TarOut tar(fd);
  HYPER_CHECK(tar.open());
  HYPER_CHECK(tar.add_dir("blobs/"));
  HYPER_CHECK(tar.add_dir(kBlobDir));
  HYPER_CHECK(write_blobs(store, items, manifests, tar));
  HYPER_CHECK(tar.add_bytes("index.json", index_json(items, manifests)));
  HYPER_CHECK(tar.add_bytes("manifest.json", manifest_json(items)));
  HYPER_CHECK(tar.add_bytes("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  if (const auto repositories = repositories_json(items)) HYPER_CHECK(tar.add_bytes("repositories", *repositories));
  return tar.close();
}

}  // namespace

Result<std::vector<SaveItem>> resolve_save_names(const ImageStore& store, const std::vector<std::string>& names) {
  return guarded("finding the images to save", [&]() -> Result<std::vector<SaveItem>> {
    std::vector<SaveItem> items;
    for (const auto& name : names) {
      const auto normalized = normalize_reference(name);
      if (normalized.ok() && is_repository_only(name) &&
          HYPER_TRY(add_repository(store, repository_of(normalized.value()), items)))
        continue;
      const auto image = HYPER_TRY(store.find(name));
      // Named by tag: saved under it. By id or digest: saved without a name, as Docker does.
      const bool by_tag = normalized.ok() &&
                          std::find(image.tags.begin(), image.tags.end(), normalized.value()) != image.tags.end();
      add_item(items, image, by_tag ? std::optional<std::string>(normalized.value()) : std::nullopt);
    }
    return items;
  });
}

Status write_save_archive(const ImageStore& store, const std::vector<SaveItem>& items, int fd) {
  return guarded("saving images", [&]() -> Status {
    const auto lock = HYPER_TRY(store.writer_lock());
    return write_archive(store, items, fd);
  });
}

Status save_to_file(const ImageStore& store, const std::vector<SaveItem>& items, const std::filesystem::path& path) {
  const std::filesystem::path temp = path.string() + ".tmp";
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Error::from_errno("create " + temp.string());
  Status saved = write_save_archive(store, items, fd.get());
  if (saved.ok() && ::fsync(fd.get()) != 0) saved = Error::from_errno("sync " + temp.string());
  if (saved.ok() && ::rename(temp.c_str(), path.c_str()) != 0) saved = Error::from_errno("rename to " + path.string());
  if (!saved.ok()) ::unlink(temp.c_str());
  return saved;
}

}  // namespace hyper::runtime
