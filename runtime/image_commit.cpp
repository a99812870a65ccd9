#include "runtime/image_commit.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>

#include "runtime/container_export.hpp"
#include "runtime/crash_point.hpp"
#include "runtime/guarded.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/image_changes.hpp"

namespace hyper::runtime {
namespace {

using formats::Json;

constexpr size_t kTarBlock = 512;

Json strings_or_null(const std::vector<std::string>& items) { return items.empty() ? Json(nullptr) : Json(items); }

// The same bytes under Docker's name, so a schema 2 manifest names only Docker types.
Result<std::string> docker_layer_type(const std::string& media_type) {
  switch (HYPER_TRY(blobs::compression_of(media_type))) {
    case blobs::Compression::gzip: return std::string(formats::kDockerLayerGzip);
    case blobs::Compression::zstd: return std::string(formats::kDockerLayerZstd);
    case blobs::Compression::none: break;
  }
  return std::string(formats::kDockerLayer);
}

Result<Json> base_config(const ImageStore& store, const std::optional<Image>& base) {
  if (!base) {
    return Json{{"architecture", "amd64"},
                {"os", "linux"},
                {"config", Json::object()},
                {"rootfs", {{"type", "layers"}, {"diff_ids", Json::array()}}},
                {"history", Json::array()}};
  }
  const auto text = HYPER_TRY(store.read_blob_text(base->id));
  auto doc = HYPER_TRY(formats::parse_json(text, "image " + base->id.substr(0, 19) + ": config"));
  if (!doc.is_object()) return make_error(Errc::bad_image, "image " + base->id + ": the config is not an object");
  // What described the base image's own making does not describe this one.
  for (const char* stale : {"author", "comment", "container", "container_config"}) doc.erase(stale);
  return doc;
}

// `member` of `doc` as the JSON type `kind`, made empty when missing or null.
Result<Json*> member_as(Json& doc, const char* member, Json::value_t kind) {
  Json& value = doc[member];
  if (value.is_null()) value = kind == Json::value_t::array ? Json::array() : Json::object();
  if (value.type() != kind) return make_error(Errc::bad_image, std::string("the image config's \"") + member + "\" is malformed");
  return &value;
}

Result<std::string> new_config(const ImageStore& store, const std::optional<Image>& base, const std::string& diff_id,
                               const NewImage& options) {
  Json doc = HYPER_TRY(base_config(store, base));
  const std::string created = now_rfc3339();
  doc["created"] = created;
  if (!options.author.empty()) doc["author"] = options.author;
  if (!options.container.empty()) doc["container"] = options.container;
  // Docker records an import's message on the image as well as in its history.
  if (!base && !options.comment.empty()) doc["comment"] = options.comment;

  Json& config = *HYPER_TRY(member_as(doc, "config", Json::value_t::object));
  for (const auto& [key, value] : options.run_config.items()) config[key] = value;
  HYPER_CHECK(changes::apply(config, options.changes));

  Json& rootfs = *HYPER_TRY(member_as(doc, "rootfs", Json::value_t::object));
  rootfs["type"] = "layers";
  HYPER_TRY(member_as(rootfs, "diff_ids", Json::value_t::array))->push_back(diff_id);

  Json entry = {{"created", created}};
  if (!options.created_by.empty()) entry["created_by"] = options.created_by;
  if (!options.author.empty()) entry["author"] = options.author;
  if (!options.comment.empty()) entry["comment"] = options.comment;
  HYPER_TRY(member_as(doc, "history", Json::value_t::array))->push_back(std::move(entry));
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Whether a tar's first header block is one: its checksum is right (ustar, GNU and v7
// headers all have it).
bool starts_like_tar(const std::string& block) {
  if (block.size() < kTarBlock) return false;
  unsigned long expected = 0;
  bool digits = false;
  for (size_t i = 148; i < 156 && block[i] != '\0' && block[i] != ' '; ++i) {
    if (block[i] < '0' || block[i] > '7') return false;
    expected = expected * 8 + static_cast<unsigned long>(block[i] - '0');
    digits = true;
  }
  unsigned long sum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(block[i]);
  return digits && sum == expected;
}

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// Feeds libarchive from a file descriptor, counting what it read: an input with no byte
// at all is told apart from one libarchive could not read.
struct Source {
  int fd;
  uint64_t total = 0;
  std::vector<uint8_t> buffer = std::vector<uint8_t>(blobs::kCopyBuffer);

  static la_ssize_t read(archive* a, void* self, const void** data) {
    auto* source = static_cast<Source*>(self);
    *data = source->buffer.data();
    for (;;) {
      const ssize_t n = ::read(source->fd, source->buffer.data(), source->buffer.size());
      if (n >= 0) {
        source->total += static_cast<uint64_t>(n);
        return n;
      }
      if (errno != EINTR) {
        archive_set_error(a, errno, "read: %s", std::strerror(errno));
        return -1;
      }
    }
  }
};

// Decompresses (gzip, zstd or nothing) what `fd` holds into `writer`; checks it is a tar.
Status copy_import_source(int fd, LayerBlobWriter& writer) {
  Source source{fd};  // outlives the archive that reads from it
  std::unique_ptr<archive, ReadFree> a(archive_read_new());
  if (!a) return make_error(Errc::io, "out of memory for libarchive");
  // Only the built-in decompressors: no external program is ever started.
  if (archive_read_support_filter_gzip(a.get()) != ARCHIVE_OK || archive_read_support_filter_zstd(a.get()) != ARCHIVE_OK ||
      archive_read_support_format_raw(a.get()) != ARCHIVE_OK)
    return make_error(Errc::unsupported, "libarchive lacks gzip, zstd or raw support");
  const auto fail = [&](const std::string& what) {
    const char* message = archive_error_string(a.get());
    return make_error(Errc::bad_image, what + (message != nullptr ? std::string(": ") + message : std::string()));
  };
  archive_entry* entry = nullptr;
  if (archive_read_open(a.get(), &source, nullptr, &Source::read, nullptr) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &entry) != ARCHIVE_OK) {
    // The raw format takes any byte: only an empty input has no format at all.
    if (source.total == 0) return make_error(Errc::bad_image, "the archive is empty");
    return fail("reading the archive");
  }
  std::vector<uint8_t> buffer(blobs::kCopyBuffer);
  std::string first_block;
  for (;;) {
    const la_ssize_t n = archive_read_data(a.get(), buffer.data(), buffer.size());
    if (n < 0) return fail("reading the archive");
    if (n == 0) break;
    if (first_block.size() < kTarBlock)
      first_block.append(reinterpret_cast<const char*>(buffer.data()),
                         std::min(static_cast<size_t>(n), kTarBlock - first_block.size()));
    HYPER_CHECK(writer.write(buffer.data(), static_cast<size_t>(n)));
  }
  if (first_block.empty()) return make_error(Errc::bad_image, "the archive is empty");
  if (!starts_like_tar(first_block))
    return make_error(Errc::bad_image, "not a tar archive (plain, gzip or zstd compressed)");
  return {};
}

// A new image of `base` and the layer `export_layer` writes: the store's writer lock is
// held from before the layer's blob is written until the image is indexed.
Result<Image> commit_layer(ImageStore& store, const Image& base, const NewImage& options,
                           const std::function<Status(const LayerSink&)>& export_layer) {
  HYPER_CHECK(changes::validate(options.changes));
  const auto lock = HYPER_TRY(store.writer_lock());
  const auto temp = HYPER_TRY(blobs::TempDir::create(store.tmp_dir()));
  auto writer = HYPER_TRY(LayerBlobWriter::create(temp.path()));
  HYPER_CHECK(export_layer([&](const void* data, size_t size) { return writer.write(data, size); }));
  const auto layer = HYPER_TRY(writer.finish());
  return build_image(store, base, layer, options);
}

}  // namespace

Json run_config_of(const ContainerConfig& config) {
  Json out = {{"Entrypoint", strings_or_null(config.entrypoint)},
              {"Cmd", strings_or_null(config.cmd)},
              {"Env", strings_or_null(config.env)},
              {"WorkingDir", config.working_dir},
              {"User", config.user}};
  if (!config.stop_signal.empty()) out["StopSignal"] = config.stop_signal;
  return out;
}

Result<Image> build_image(ImageStore& store, const std::optional<Image>& base, const LayerBlob& layer,
                          const NewImage& options) {
  return guarded("building the image", [&]() -> Result<Image> {
    if (base && base->layers.size() != base->diff_ids.size())
      return make_error(Errc::bad_image, "image " + base->id + ": its layers and diff_ids do not match");
    const auto config = HYPER_TRY(new_config(store, base, layer.diff_id, options));
    std::vector<formats::Descriptor> layers;
    if (base) {
      for (const auto& ref : base->layers) {
        auto media_type = HYPER_TRY(docker_layer_type(ref.media_type));
        layers.push_back(formats::Descriptor{std::move(media_type), ref.digest, ref.size, {}, {}});
      }
    }
    layers.push_back(formats::Descriptor{formats::kDockerLayerGzip, layer.digest, layer.size, {}, {}});
    (void)HYPER_TRY(store.put_blob_file(layer.path, layer.digest));
    const auto config_digest = HYPER_TRY(store.put_blob(config));
    const formats::Descriptor config_descriptor{formats::kDockerConfig, config_digest, config.size(), {}, {}};
    const auto manifest_digest = HYPER_TRY(store.put_blob(formats::docker_manifest(config_descriptor, layers)));
    crash_point("commit-blobs-stored");  // blobs no image names: image prune removes them
    return store.add_image(manifest_digest, options.tags);
  });
}

Result<Image> import_image(ImageStore& store, int fd, const NewImage& options) {
  HYPER_CHECK(changes::validate(options.changes));
  const auto lock = HYPER_TRY(store.writer_lock());
  const auto temp = HYPER_TRY(blobs::TempDir::create(store.tmp_dir()));
  auto writer = HYPER_TRY(LayerBlobWriter::create(temp.path()));
  HYPER_CHECK(copy_import_source(fd, writer));
  const auto layer = HYPER_TRY(writer.finish());
  return build_image(store, std::nullopt, layer, options);
}

Result<Image> commit_container(ImageStore& store, const Container& container, const Image& base,
                               const NewImage& options) {
  return commit_layer(store, base, options,
                      [&](const LayerSink& sink) { return export_running_layer(container, sink); });
}

Result<Image> commit_stopped_container(ImageStore& store, const Container& container, const FileLock& vm_claim,
                                       const Image& base, const NewImage& options) {
  return commit_layer(store, base, options,
                      [&](const LayerSink& sink) { return export_stopped_layer(container, vm_claim, sink); });
}

}  // namespace hyper::runtime
