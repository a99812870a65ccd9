#include "runtime/image_archive.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "runtime/image_blobs.hpp"
#include "runtime/image_formats.hpp"
#include "runtime/image_store.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime::archive_reader {
namespace {

using blobs::Compression;
using formats::Descriptor;
using formats::Json;

// Bounds on what an untrusted archive can make us do.
constexpr size_t kMaxEntries = size_t{1} << 16;
constexpr int kMaxLinkHops = 16;
constexpr int kMaxIndexDepth = 4;
constexpr const char* kBlobDir = "blobs/sha256/";

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

std::string archive_message(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unexpected end of data";
}

Error bad(const std::string& where, const std::string& what) { return make_error(Errc::bad_image, where + ": " + what); }

std::string join(const std::vector<std::string_view>& parts) {
  std::string out;
  for (const auto part : parts) {
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

// "./a//b/" -> "a/b". Absolute names and ".." are refused (nullopt): names only ever
// key a map, but an archive that has them is not one Docker or an OCI tool wrote.
std::optional<std::string> clean_name(std::string_view name) {
  if (name.empty() || name.front() == '/') return std::nullopt;
  std::vector<std::string_view> parts;
  for (const auto part : blobs::split(name, '/')) {
    if (part == "..") return std::nullopt;
    if (!part.empty() && part != ".") parts.push_back(part);
  }
  return join(parts);
}

// Where a symlink named `link` that points to `target` leads inside the archive (docker
// save links a repeated layer to its first copy: "../<id>/layer.tar").
std::optional<std::string> resolve_link(const std::string& link, std::string_view target) {
  if (target.empty() || target.front() == '/') return std::nullopt;
  auto parts = blobs::split(link, '/');
  parts.pop_back();
  for (const auto part : blobs::split(target, '/')) {
    if (part.empty() || part == ".") continue;
    if (part != "..") {
      parts.push_back(part);
    } else if (parts.empty()) {
      return std::nullopt;
    } else {
      parts.pop_back();
    }
  }
  return join(parts);
}

struct StagedFile {
  std::filesystem::path path;
  std::string digest;
  uint64_t size = 0;
};

// The archive's files, copied into the staging directory and hashed on the way: all of a
// tar (read once, front to back), or a directory's files as they are asked for.
class Staging {
 public:
  Staging(std::string label, std::filesystem::path dir) : label_(std::move(label)), dir_(std::move(dir)) {}

  Status stage_tar(int fd);
  void serve_directory(std::filesystem::path source) { source_ = std::move(source); }

  bool has(const std::string& name) const;
  Result<const StagedFile*> get(const std::string& name);
  // A blob named by a descriptor, whose size must agree.
  Result<const StagedFile*> blob(const Descriptor& descriptor);
  // A small (JSON) file's contents.
  Result<std::string> read_text(const StagedFile& file, const std::string& name) const;
  Result<StagedFile> add_bytes(std::string_view bytes);
  // Whether a layer's uncompressed content is what the config says it is.
  Status check_diff_id(const StagedFile& file, Compression compression, const std::string& diff_id,
                       const std::string& name);

  [[nodiscard]] std::string where(const std::string& name) const { return label_ + ": " + name; }
  [[nodiscard]] const std::string& label() const { return label_; }

 private:
  using Reader = std::function<Result<size_t>(uint8_t* buffer, size_t size)>;
  Result<StagedFile> copy_in(const Reader& read);
  Result<const StagedFile*> stage_from_directory(const std::string& name);
  Status check_blob_name(const std::string& name, const StagedFile& file) const;
  Status stage_entry(archive* a, archive_entry* entry);

  std::string label_;
  std::filesystem::path dir_;
  std::optional<std::filesystem::path> source_;
  std::map<std::string, StagedFile> files_;
  std::map<std::string, std::string> links_;
  std::map<std::string, std::string> plain_digests_;  // staged digest -> uncompressed digest
  std::vector<uint8_t> buffer_;
  size_t next_id_ = 0;
};

Status Staging::stage_tar(int fd) {
  ArchivePtr a(archive_read_new());
  if (!a) return make_error(Errc::io, "out of memory for libarchive");
  // `docker load` takes compressed archives too; only built-in decompressors are enabled.
  if (archive_read_support_filter_gzip(a.get()) != ARCHIVE_OK || archive_read_support_filter_zstd(a.get()) != ARCHIVE_OK ||
      archive_read_support_format_tar(a.get()) != ARCHIVE_OK)
    return make_error(Errc::unsupported, "libarchive lacks gzip, zstd or tar support: " + archive_message(a.get()));
  const auto broken = [&] {
    return make_error(Errc::bad_image, label_ + ": truncated or not a tar archive: " + archive_message(a.get()));
  };
  if (archive_read_open_fd(a.get(), fd, blobs::kCopyBuffer) != ARCHIVE_OK) return broken();
  for (size_t count = 0;; ++count) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(a.get(), &entry);
    if (status == ARCHIVE_EOF) return {};
    if (status != ARCHIVE_OK && status != ARCHIVE_WARN) return broken();
    if (count == kMaxEntries) return bad(label_, "more than " + std::to_string(kMaxEntries) + " entries");
    HYPER_CHECK(stage_entry(a.get(), entry));
  }
}

Status Staging::stage_entry(archive* a, archive_entry* entry) {
  const char* raw_name = archive_entry_pathname(entry);
  if (raw_name == nullptr) return bad(label_, "an entry has no name");
  const auto name = clean_name(raw_name);
  if (!name) return bad(label_, std::string("refusing entry \"") + raw_name + "\": absolute path or \"..\"");
  if (name->empty()) return {};
  if (const char* target = archive_entry_hardlink(entry)) {
    const auto cleaned = clean_name(target);
    if (!cleaned) return bad(label_, std::string("refusing hard link to \"") + target + "\": absolute path or \"..\"");
    files_.erase(*name);
    links_[*name] = *cleaned;
    return {};
  }
  if (archive_entry_filetype(entry) == AE_IFLNK) {
    // A link leading out of the archive is not followed: whatever names it is "missing".
    const char* target = archive_entry_symlink(entry);
    files_.erase(*name);
    links_.erase(*name);
    if (target != nullptr)
      if (auto resolved = resolve_link(*name, target)) links_[*name] = *resolved;
    return {};
  }
  if (archive_entry_filetype(entry) != AE_IFREG) return {};  // directories carry no image data
  auto file = HYPER_TRY(copy_in([&](uint8_t* buffer, size_t size) -> Result<size_t> {
    const la_ssize_t n = archive_read_data(a, buffer, size);
    if (n < 0) return make_error(Errc::bad_image, label_ + ": truncated or not a tar archive: " + archive_message(a));
    return static_cast<size_t>(n);
  }));
  HYPER_CHECK(check_blob_name(*name, file));
  links_.erase(*name);
  files_[*name] = std::move(file);
  return {};
}

Result<StagedFile> Staging::copy_in(const Reader& read) {
  StagedFile file{dir_ / std::to_string(next_id_++), "", 0};
  UniqueFd out(::open(file.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!out.valid()) return Error::from_errno("create " + file.path.string());
  auto hasher = HYPER_TRY(blobs::Sha256::create());
  buffer_.resize(blobs::kCopyBuffer);
  for (;;) {
    const size_t n = HYPER_TRY(read(buffer_.data(), buffer_.size()));
    if (n == 0) break;
    hasher.update(buffer_.data(), n);
    HYPER_CHECK(write_all(out.get(), buffer_.data(), n, file.path.string()));
    file.size += n;
  }
  file.digest = HYPER_TRY(hasher.finish());
  return file;
}

// Every "blobs/sha256/<hex>" must hold what its name says, whether it is used or not.
Status Staging::check_blob_name(const std::string& name, const StagedFile& file) const {
  if (name.compare(0, std::string_view(kBlobDir).size(), kBlobDir) != 0) return {};
  const std::string expected = "sha256:" + name.substr(std::string_view(kBlobDir).size());
  if (!blobs::is_sha256_digest(expected)) return {};
  if (file.digest != expected)
    return bad(label_, "blob " + name + " does not match its digest (its content is " + file.digest + ")");
  return {};
}

bool Staging::has(const std::string& name) const {
  if (files_.count(name) != 0 || links_.count(name) != 0) return true;
  return source_ && ::access((*source_ / name).c_str(), F_OK) == 0;
}

Result<const StagedFile*> Staging::get(const std::string& name) {
  std::string current = name;
  for (int hop = 0; hop < kMaxLinkHops; ++hop) {
    if (const auto file = files_.find(current); file != files_.end()) return &file->second;
    const auto link = links_.find(current);
    if (link == links_.end()) {
      if (source_) return stage_from_directory(current);
      break;
    }
    current = link->second;
  }
  return bad(label_, name + " is missing");
}

Result<const StagedFile*> Staging::stage_from_directory(const std::string& name) {
  const auto path = *source_ / name;
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid() && errno == ENOENT) return bad(label_, name + " is missing");
  if (!in.valid()) return Error::from_errno("open " + path.string());
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Error::from_errno("stat " + path.string());
  if (!S_ISREG(st.st_mode)) return bad(label_, name + " is not a regular file");
  auto file = HYPER_TRY(copy_in([&](uint8_t* buffer, size_t size) -> Result<size_t> {
    for (;;) {
      const ssize_t n = ::read(in.get(), buffer, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return Error::from_errno("read " + path.string());
    }
  }));
  HYPER_CHECK(check_blob_name(name, file));
  return &(files_[name] = std::move(file));
}

Result<const StagedFile*> Staging::blob(const Descriptor& descriptor) {
  const std::string name = kBlobDir + descriptor.digest.substr(std::string_view("sha256:").size());
  const StagedFile* file = HYPER_TRY(get(name));
  if (file->digest != descriptor.digest) return bad(label_, "blob " + name + " does not match its digest");
  if (file->size != descriptor.size)
    return bad(label_, "blob " + descriptor.digest + " is " + std::to_string(file->size) +
                           " bytes, its descriptor says " + std::to_string(descriptor.size));
  return file;
}

Result<std::string> Staging::read_text(const StagedFile& file, const std::string& name) const {
  if (file.size > blobs::kMaxJsonBytes)
    return bad(label_, name + " is too large (" + std::to_string(file.size) + " bytes, at most " +
                           std::to_string(blobs::kMaxJsonBytes) + ")");
  return blobs::read_small_file(file.path, blobs::kMaxJsonBytes);
}

Result<StagedFile> Staging::add_bytes(std::string_view bytes) {
  bool done = false;
  return copy_in([&](uint8_t* buffer, size_t size) -> Result<size_t> {
    if (done) return size_t{0};
    done = true;
    if (bytes.size() > size) return make_error(Errc::invalid_argument, "generated document too large");
    std::copy(bytes.begin(), bytes.end(), buffer);
    return bytes.size();
  });
}

Status Staging::check_diff_id(const StagedFile& file, Compression compression, const std::string& diff_id,
                              const std::string& name) {
  std::string plain = file.digest;
  if (compression != Compression::none) {
    auto& cached = plain_digests_[file.digest];
    if (cached.empty()) {
      auto hasher = HYPER_TRY(blobs::Sha256::create());
      const Status read = blobs::for_each_plain_chunk(file.path, compression, [&](const uint8_t* data, size_t size) {
        hasher.update(data, size);
        return Status{};
      });
      if (!read.ok()) return bad(label_, "layer " + name + ": " + read.error().message);
      cached = HYPER_TRY(hasher.finish());
    }
    plain = cached;
  }
  if (plain != diff_id)
    return bad(label_, "layer " + name + " does not match the image config: its content is " + plain +
                           ", the config's diff_id is " + diff_id);
  return {};
}

Result<formats::ParsedConfig> read_config(Staging& staging, const StagedFile& file, const std::string& name) {
  const auto where = staging.where(name);
  const auto text = HYPER_TRY(staging.read_text(file, name));
  const auto doc = HYPER_TRY(formats::parse_json(text, where));
  return formats::parse_config(doc, where);
}

Result<std::string> tag_of(const std::string& reference, const std::string& where) {
  auto normalized = normalize_reference(reference);
  if (!normalized.ok()) return bad(where, "tag \"" + reference + "\": " + normalized.error().message);
  if (normalized->find('@') != std::string::npos) return bad(where, "\"" + reference + "\" is a digest, not a tag");
  return normalized;
}

// ---- docker-archive: manifest.json, a config per image, layer tars --------------------

const char* docker_layer_type(Compression compression) {
  switch (compression) {
    case Compression::gzip: return formats::kDockerLayerGzip;
    case Compression::zstd: return formats::kDockerLayerZstd;
    case Compression::none: break;
  }
  return formats::kDockerLayer;
}

Result<ArchiveImage> read_docker_image(Staging& staging, const formats::DockerArchiveEntry& entry) {
  const auto where = staging.where("manifest.json");
  const auto config_name = clean_name(entry.config);
  if (!config_name) return bad(where, "refusing config path \"" + entry.config + "\"");
  const StagedFile* config_file = HYPER_TRY(staging.get(*config_name));
  const auto config = HYPER_TRY(read_config(staging, *config_file, *config_name));
  if (config.diff_ids.size() != entry.layers.size())
    return bad(where, std::to_string(entry.layers.size()) + " layers for an image whose config lists " +
                          std::to_string(config.diff_ids.size()));

  ArchiveImage image{config_file->digest, "", {}, {{config_file->path, config_file->digest}}};
  std::vector<Descriptor> layers;
  for (size_t i = 0; i < entry.layers.size(); ++i) {
    const auto name = clean_name(entry.layers[i]);
    if (!name) return bad(where, "refusing layer path \"" + entry.layers[i] + "\"");
    const StagedFile* layer = HYPER_TRY(staging.get(*name));
    const auto compression = blobs::sniff_compression(layer->path);
    if (!compression.ok())
      return make_error(compression.error().code, staging.where("layer " + *name + ": ") + compression.error().message);
    HYPER_CHECK(staging.check_diff_id(*layer, compression.value(), config.diff_ids[i], *name));
    layers.push_back(Descriptor{docker_layer_type(compression.value()), layer->digest, layer->size, {}, {}});
    image.blobs.push_back({layer->path, layer->digest});
  }
  const auto manifest = HYPER_TRY(staging.add_bytes(
      formats::docker_manifest(Descriptor{formats::kDockerConfig, config_file->digest, config_file->size, {}, {}}, layers)));
  image.manifest_digest = manifest.digest;
  image.blobs.push_back({manifest.path, manifest.digest});
  for (const auto& tag : entry.repo_tags) image.tags.push_back(HYPER_TRY(tag_of(tag, where)));
  return image;
}

Result<std::vector<ArchiveImage>> read_docker_archive(Staging& staging) {
  const StagedFile* manifest = HYPER_TRY(staging.get("manifest.json"));
  const auto where = staging.where("manifest.json");
  const auto text = HYPER_TRY(staging.read_text(*manifest, "manifest.json"));
  const auto doc = HYPER_TRY(formats::parse_json(text, where));
  std::vector<ArchiveImage> images;
  for (const auto& entry : HYPER_TRY(formats::parse_docker_archive_manifest(doc, where)))
    images.push_back(HYPER_TRY(read_docker_image(staging, entry)));
  return images;
}

// ---- OCI image layout: oci-layout, index.json, blobs/sha256/* -------------------------

class OciLayout {
 public:
  explicit OciLayout(Staging& staging) : staging_(staging) {}
  Result<std::vector<ArchiveImage>> read();

 private:
  Result<std::optional<ArchiveImage>> resolve(const Descriptor& descriptor, int depth);
  Result<std::optional<ArchiveImage>> choose_platform(const formats::ImageIndex& index, int depth);
  Result<std::optional<ArchiveImage>> read_image(const Descriptor& descriptor, const formats::Manifest& manifest,
                                                 const StagedFile& manifest_file);
  Result<Json> read_json(const StagedFile& file, const std::string& name) {
    const auto text = HYPER_TRY(staging_.read_text(file, name));
    return formats::parse_json(text, staging_.where(name));
  }
  static std::string blob_name(const Descriptor& descriptor) {
    return kBlobDir + descriptor.digest.substr(std::string_view("sha256:").size());
  }

  Staging& staging_;
};

// An image's name is in its descriptor's annotations: containerd's holds a whole
// reference; the OCI one is usually just a tag ("1"), which names nothing by itself.
Result<std::vector<std::string>> names_of(const Descriptor& descriptor, const std::string& where) {
  const auto& annotations = descriptor.annotations;
  if (const auto name = annotations.find("io.containerd.image.name"); name != annotations.end() && !name->second.empty()) {
    auto normalized = normalize_reference(name->second);
    if (!normalized.ok()) return bad(where, "io.containerd.image.name \"" + name->second + "\": " + normalized.error().message);
    if (normalized->find('@') != std::string::npos) return std::vector<std::string>{};
    return std::vector<std::string>{*normalized};
  }
  const auto ref = annotations.find("org.opencontainers.image.ref.name");
  if (ref == annotations.end() || ref->second.find_first_of(":/") == std::string::npos) return std::vector<std::string>{};
  auto normalized = normalize_reference(ref->second);
  if (!normalized.ok() || normalized->find('@') != std::string::npos) return std::vector<std::string>{};
  return std::vector<std::string>{*normalized};
}

Result<std::vector<ArchiveImage>> OciLayout::read() {
  if (staging_.has("oci-layout")) {
    const StagedFile* layout_file = HYPER_TRY(staging_.get("oci-layout"));
    const auto layout = HYPER_TRY(read_json(*layout_file, "oci-layout"));
    const auto* version = layout.is_object() && layout.contains("imageLayoutVersion") ? &layout["imageLayoutVersion"] : nullptr;
    if (version == nullptr || !version->is_string() || version->get<std::string>().compare(0, 2, "1.") != 0)
      return make_error(Errc::unsupported, staging_.where("oci-layout") + ": unsupported imageLayoutVersion");
  }
  const StagedFile* index_file = HYPER_TRY(staging_.get("index.json"));
  const auto index_doc = HYPER_TRY(read_json(*index_file, "index.json"));
  const auto index = HYPER_TRY(formats::parse_index(index_doc, staging_.where("index.json")));
  if (index.manifests.empty()) return bad(staging_.where("index.json"), "lists no images");
  std::vector<ArchiveImage> images;
  for (const auto& descriptor : index.manifests) {
    auto image = HYPER_TRY(resolve(descriptor, 0));
    if (!image) continue;
    image->tags = HYPER_TRY(names_of(descriptor, staging_.where("index.json")));
    images.push_back(std::move(*image));
  }
  if (images.empty()) return make_error(Errc::unsupported, "no linux/amd64 image in " + staging_.label());
  return images;
}

// Finds the linux/amd64 image a descriptor leads to (nullopt: it is for another platform).
Result<std::optional<ArchiveImage>> OciLayout::resolve(const Descriptor& descriptor, int depth) {
  if (depth > kMaxIndexDepth) return bad(staging_.label(), "image indexes nested too deeply");
  if (descriptor.platform && !formats::is_linux_amd64(*descriptor.platform)) return std::optional<ArchiveImage>{};
  const StagedFile* file = HYPER_TRY(staging_.blob(descriptor));
  const auto name = blob_name(descriptor);
  const auto doc = HYPER_TRY(read_json(*file, name));
  const auto kind = HYPER_TRY(formats::document_kind(descriptor.media_type, doc, staging_.where(name)));
  if (kind == formats::DocumentKind::index)
    return choose_platform(HYPER_TRY(formats::parse_index(doc, staging_.where(name))), depth);
  return read_image(descriptor, HYPER_TRY(formats::parse_manifest(doc, staging_.where(name))), *file);
}

Result<std::optional<ArchiveImage>> OciLayout::choose_platform(const formats::ImageIndex& index, int depth) {
  // Explicit linux/amd64 entries first; entries with no platform at all (but not
  // BuildKit's attestations) may still be amd64 images, which their config tells.
  for (const bool explicit_platform : {true, false}) {
    for (const auto& entry : index.manifests) {
      if (entry.platform.has_value() != explicit_platform) continue;
      const auto type = entry.annotations.find("vnd.docker.reference.type");
      if (type != entry.annotations.end() && type->second == "attestation-manifest") continue;
      auto image = HYPER_TRY(resolve(entry, depth + 1));
      if (image) return image;
    }
  }
  return std::optional<ArchiveImage>{};
}

Result<std::optional<ArchiveImage>> OciLayout::read_image(const Descriptor& descriptor, const formats::Manifest& manifest,
                                                          const StagedFile& manifest_file) {
  const StagedFile* config_file = HYPER_TRY(staging_.blob(manifest.config));
  const auto config = HYPER_TRY(read_config(staging_, *config_file, blob_name(manifest.config)));
  if ((!config.os.empty() && config.os != "linux") || (!config.architecture.empty() && config.architecture != "amd64"))
    return std::optional<ArchiveImage>{};
  const auto where = staging_.where(blob_name(descriptor));
  if (config.diff_ids.size() != manifest.layers.size())
    return bad(where, std::to_string(manifest.layers.size()) + " layers for an image whose config lists " +
                          std::to_string(config.diff_ids.size()));
  ArchiveImage image{config_file->digest, descriptor.digest, {},
                     {{manifest_file.path, descriptor.digest}, {config_file->path, config_file->digest}}};
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const auto& layer = manifest.layers[i];
    const auto compression = blobs::compression_of(layer.media_type);
    if (!compression.ok()) return make_error(compression.error().code, where + ": " + compression.error().message);
    const StagedFile* file = HYPER_TRY(staging_.blob(layer));
    HYPER_CHECK(staging_.check_diff_id(*file, compression.value(), config.diff_ids[i], layer.digest));
    image.blobs.push_back({file->path, file->digest});
  }
  return std::optional<ArchiveImage>{std::move(image)};
}

}  // namespace

Result<std::vector<ArchiveImage>> read_archive(const std::filesystem::path& archive,
                                               const std::filesystem::path& staging_dir) {
  struct stat st {};
  if (::stat(archive.c_str(), &st) != 0) return Error::from_errno("open " + archive.string());
  Staging staging(archive.string(), staging_dir);
  if (S_ISDIR(st.st_mode)) {
    staging.serve_directory(archive);
  } else {
    UniqueFd fd(::open(archive.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::from_errno("open " + archive.string());
    HYPER_CHECK(staging.stage_tar(fd.get()));
  }
  if (staging.has("manifest.json")) return read_docker_archive(staging);
  if (staging.has("index.json")) return OciLayout(staging).read();
  return bad(archive.string(),
             "not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)");
}

}  // namespace hyper::runtime::archive_reader
