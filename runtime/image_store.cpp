#include "runtime/image_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "runtime/file_lock.hpp"
#include "runtime/guarded.hpp"
#include "runtime/image_archive.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/image_formats.hpp"
#include "runtime/image_index.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace {

using formats::Json;
using namespace index_file;

constexpr uint64_t kStreamAlignment = 4096;

// A load killed half-way leaves its staging directory behind; one a day old is
// certainly not in use (loads take seconds to minutes).
void remove_stale_staging(const std::filesystem::path& tmp) {
  constexpr auto kStale = std::chrono::hours(24);
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (std::filesystem::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    const auto modified = it->last_write_time(entry_ec);
    if (!entry_ec && now - modified > kStale) std::filesystem::remove_all(it->path(), entry_ec);
  }
}

struct Timestamp {
  int64_t seconds = INT64_MIN;
  int64_t nanos = 0;
  auto operator<=>(const Timestamp&) const = default;
};

// Days since 1970-01-01 of a proleptic Gregorian date.
int64_t days_from_civil(int64_t year, int64_t month, int64_t day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

// RFC 3339 ("2024-05-01T12:00:00.5+02:00"); anything else sorts as the oldest.
Timestamp parse_rfc3339(const std::string& text) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
                  &consumed) != 6)
    return {};
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return {};
  Timestamp out;
  size_t at = static_cast<size_t>(consumed);
  if (at < text.size() && text[at] == '.') {
    int64_t scale = 100'000'000;
    for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, scale /= 10) out.nanos += (text[at] - '0') * scale;
  }
  int64_t offset = 0;
  if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    int offset_hours = 0, offset_minutes = 0;
    if (std::sscanf(text.c_str() + at + 1, "%2d:%2d", &offset_hours, &offset_minutes) != 2 || offset_hours < 0 ||
        offset_hours > 23 || offset_minutes < 0 || offset_minutes > 59)
      return {};
    offset = (text[at] == '+' ? 1 : -1) * (offset_hours * 3600 + offset_minutes * 60);
  }
  out.seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
  return out;
}

Result<Image> read_image(const ImageStore& store, const std::string& id, const std::string& manifest_digest) {
  const auto read_json = [&](const std::string& digest) -> Result<Json> {
    const auto where = "image " + id.substr(0, 19) + ": blob " + digest;
    const auto text = HYPER_TRY(blobs::read_small_file(store.blob_path(digest), blobs::kMaxJsonBytes));
    return formats::parse_json(text, where);
  };
  const auto manifest_where = "image " + id.substr(0, 19) + ": manifest";
  const auto manifest_doc = HYPER_TRY(read_json(manifest_digest));
  const auto manifest = HYPER_TRY(formats::parse_manifest(manifest_doc, manifest_where));
  if (manifest.config.digest != id)
    return make_error(Errc::bad_image, manifest_where + " names config " + manifest.config.digest);
  const auto config_doc = HYPER_TRY(read_json(id));
  const auto config = HYPER_TRY(formats::parse_config(config_doc, "image " + id.substr(0, 19) + ": config"));
  Image image;
  image.id = id;
  image.manifest_digest = manifest_digest;
  image.config = config.config;
  image.diff_ids = config.diff_ids;
  image.created = config.created;
  for (const auto& layer : manifest.layers) {
    image.layers.push_back(LayerRef{layer.digest, layer.media_type, layer.size});
    image.size += layer.size;
  }
  return image;
}

// Every indexed image with its tags, in index order.
Result<std::vector<Image>> read_all(const ImageStore& store, const std::filesystem::path& index_path) {
  const auto index = HYPER_TRY(read_index(index_path));
  std::vector<Image> images;
  for (const auto& [id, entry] : index["images"].items()) {
    auto image = HYPER_TRY(read_image(store, id, entry["manifest"].get<std::string>()));
    for (const auto& tag : entry["tags"]) image.tags.push_back(tag.get<std::string>());
    if (entry.contains("digests"))
      for (const auto& digest : entry["digests"]) image.repo_digests.push_back(digest.get<std::string>());
    images.push_back(std::move(image));
  }
  return images;
}

}  // namespace

Result<ImageStore> ImageStore::open(const std::filesystem::path& dir) {
  return guarded("opening the image store", [&]() -> Result<ImageStore> {
    for (const auto& sub : {dir / "blobs" / "sha256", dir / "by-chain", dir / "partial", dir / "tmp"}) {
      std::error_code ec;
      std::filesystem::create_directories(sub, ec);
      if (ec) return make_error(Errc::io, "create " + sub.string() + ": " + ec.message());
    }
    return ImageStore(dir);
  });
}

std::filesystem::path ImageStore::blob_path(const std::string& digest) const {
  const size_t colon = digest.find(':');
  return dir_ / "blobs" / digest.substr(0, colon) / digest.substr(colon == std::string::npos ? 0 : colon + 1);
}

Result<std::filesystem::path> ImageStore::derived_dir(const Image& image) const {
  const auto chain = HYPER_TRY(chain_id(image.diff_ids));
  if (chain.empty()) return make_error(Errc::bad_image, "image " + image.id + " has no layers");
  return dir_ / "by-chain" / chain.substr(chain.find(':') + 1);
}

Result<std::vector<Image>> ImageStore::load(const std::filesystem::path& archive) {
  return guarded("loading an image", [&]() -> Result<std::vector<Image>> {
    // From the first file in tmp/ on: prune takes everything there that no writer holds.
    const auto writing = HYPER_TRY(writer_lock());
    remove_stale_staging(dir_ / "tmp");
    const auto staging = HYPER_TRY(blobs::TempDir::create(dir_ / "tmp"));
    const auto loaded = HYPER_TRY(archive_reader::read_archive(archive, staging.path()));

    // Blobs first: an index entry never names a blob that is not there.
    std::set<std::string> committed;
    for (const auto& image : loaded) {
      for (const auto& blob : image.blobs) {
        const auto target = blob_path(blob.digest);
        if (!committed.insert(blob.digest).second || ::access(target.c_str(), F_OK) == 0) continue;
        HYPER_CHECK(blobs::sync_file(blob.path));
        if (::rename(blob.path.c_str(), target.c_str()) != 0) return Error::from_errno("rename " + target.string());
      }
    }
    if (!committed.empty()) HYPER_CHECK(blobs::sync_dir(dir_ / "blobs" / "sha256"));

    {
      const auto lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
      auto index = HYPER_TRY(read_index(dir_ / kIndexFile));
      for (const auto& image : loaded) move_tags(index["images"], image.id, image.manifest_digest, image.tags);
      HYPER_CHECK(write_index(dir_ / kIndexFile, index));
    }

    // An archive may name one image twice (two tags): report it once, with every tag.
    std::vector<Image> out;
    for (const auto& image : loaded) {
      auto same = std::find_if(out.begin(), out.end(), [&](const Image& seen) { return seen.id == image.id; });
      if (same == out.end()) {
        out.push_back(HYPER_TRY(read_image(*this, image.id, image.manifest_digest)));
        out.back().tags.clear();
        same = out.end() - 1;
      }
      for (const auto& tag : image.tags)
        if (std::find(same->tags.begin(), same->tags.end(), tag) == same->tags.end()) same->tags.push_back(tag);
    }
    return out;
  });
}

Result<Image> ImageStore::find(const std::string& reference) const {
  return guarded("finding an image", [&]() -> Result<Image> {
    const auto images = HYPER_TRY(read_all(*this, dir_ / kIndexFile));
    // A name that does not parse may still be an id prefix ("sha256:ab12" parses as a
    // tag of the repository "sha256", which nothing has).
    if (const auto normalized = normalize_reference(reference); normalized.ok()) {
      const size_t at = normalized.value().find('@');
      for (const auto& image : images) {
        const auto& name = normalized.value();
        const auto has = [&](const std::vector<std::string>& list, const std::string& item) {
          return std::find(list.begin(), list.end(), item) != list.end();
        };
        // "name:tag@digest" is found by its digest, as Docker does.
        std::string by_digest;
        if (at != std::string::npos) {
          const std::string repository = name.substr(0, at);
          const size_t colon = repository.rfind(':');
          const bool tagged = colon != std::string::npos && colon > repository.rfind('/');
          by_digest = repository.substr(0, tagged ? colon : repository.size()) + name.substr(at);
        }
        const bool match = at != std::string::npos
                               ? image.manifest_digest == name.substr(at + 1) || has(image.repo_digests, by_digest)
                               : has(image.tags, name);
        if (match) return image;
      }
    }
    std::string hex = reference;
    if (hex.compare(0, 7, "sha256:") == 0) hex.erase(0, 7);
    if (hex.size() >= 4 && hex.size() <= 64 && blobs::is_lower_hex(hex)) {
      const Image* found = nullptr;
      for (const auto& image : images) {
        if (image.id.compare(7, hex.size(), hex) != 0) continue;
        if (found != nullptr)
          return make_error(Errc::invalid_argument,
                            "ambiguous image id prefix " + reference + ": it matches more than one image");
        found = &image;
      }
      if (found != nullptr) return *found;
    }
    return make_error(Errc::not_found, "No such image: " + reference);
  });
}

Result<std::vector<Image>> ImageStore::list() const {
  return guarded("listing images", [&]() -> Result<std::vector<Image>> {
    auto images = HYPER_TRY(read_all(*this, dir_ / kIndexFile));
    std::vector<std::pair<Timestamp, size_t>> order;
    for (size_t i = 0; i < images.size(); ++i) order.emplace_back(parse_rfc3339(images[i].created), i);
    std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first > b.first;
      return images[a.second].id < images[b.second].id;
    });
    std::vector<Image> sorted;
    for (const auto& [time, i] : order) sorted.push_back(std::move(images[i]));
    return sorted;
  });
}

Result<std::vector<LayerSpan>> ImageStore::write_layer_stream(const Image& image, int fd) const {
  return guarded("writing layers", [&]() -> Result<std::vector<LayerSpan>> {
    static const std::vector<uint8_t> zeros(kStreamAlignment);
    if (image.diff_ids.size() != image.layers.size())
      return make_error(Errc::bad_image, "image " + image.id + ": " + std::to_string(image.layers.size()) +
                                             " layers but " + std::to_string(image.diff_ids.size()) + " diff_ids");
    std::vector<LayerSpan> spans;
    uint64_t position = 0;
    for (size_t i = 0; i < image.layers.size(); ++i) {
      const auto& layer = image.layers[i];
      if (!blobs::is_sha256_digest(layer.digest))
        return make_error(Errc::bad_image, "malformed layer digest \"" + layer.digest + "\"");
      const auto compression = blobs::compression_of(layer.media_type);
      if (!compression.ok())
        return make_error(compression.error().code, "layer " + layer.digest + ": " + compression.error().message);
      LayerSpan span{position, 0};
      auto hasher = HYPER_TRY(blobs::Sha256::create());
      const auto copy = [&](const uint8_t* data, size_t size) {
        span.size += size;
        hasher.update(data, size);
        return write_all(fd, data, size, "the layer stream");
      };
      HYPER_CHECK(blobs::for_each_plain_chunk(blob_path(layer.digest), compression.value(), copy));
      const auto diff_id = HYPER_TRY(hasher.finish());
      if (diff_id != image.diff_ids[i])
        return make_error(Errc::bad_image, "layer " + layer.digest + " unpacks to " + diff_id + ", but the config says " +
                                               image.diff_ids[i]);
      position += span.size;
      const uint64_t padding = (kStreamAlignment - position % kStreamAlignment) % kStreamAlignment;
      HYPER_CHECK(write_all(fd, zeros.data(), padding, "the layer stream"));
      position += padding;
      spans.push_back(span);
    }
    return spans;
  });
}

}  // namespace hyper::runtime
