// Removing images and collecting what no image names any more: `hyper rmi` and
// `hyper image prune`. Both hold the store's gc lock exclusively, so no pull, load or
// commit is between writing its blobs and indexing them.
#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <system_error>

#include "runtime/image_blobs.hpp"
#include "runtime/image_index.hpp"
#include "runtime/image_store.hpp"

namespace hyper::runtime {
namespace {

using formats::Json;
using namespace index_file;

struct Live {
  std::set<std::string> blobs;     // hex digests
  std::set<std::string> chains;    // hex chain IDs
};

Result<Live> live_set(const std::vector<Image>& images) {
  Live live;
  const auto hex = [](const std::string& digest) { return digest.substr(digest.find(':') + 1); };
  for (const auto& image : images) {
    live.blobs.insert(hex(image.id));
    live.blobs.insert(hex(image.manifest_digest));
    for (const auto& layer : image.layers) live.blobs.insert(hex(layer.digest));
    const auto chain = HYPER_TRY(chain_id(image.diff_ids));
    if (!chain.empty()) live.chains.insert(hex(chain));
  }
  return live;
}

uint64_t size_of(const std::filesystem::path& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

uint64_t tree_size(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    total += size_of(it->path());
  return total;
}

// Deletes every entry of `dir` for which `keep` is false; returns the bytes freed.
template <class Keep>
uint64_t sweep(const std::filesystem::path& dir, Keep&& keep, std::vector<std::string>* deleted,
               const std::string& prefix) {
  uint64_t freed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (keep(name)) continue;
    const uint64_t size = it->is_directory() ? tree_size(it->path()) : size_of(it->path());
    std::error_code remove_ec;
    std::filesystem::remove_all(it->path(), remove_ec);
    if (remove_ec) continue;
    freed += size;
    // An image's id is its config's digest: reported once.
    if (deleted != nullptr && std::find(deleted->begin(), deleted->end(), prefix + name) == deleted->end())
      deleted->push_back(prefix + name);
  }
  return freed;
}

void drop_image(Json& index, const std::string& id, RemovalReport& report) {
  for (const auto& tag : index["images"][id]["tags"]) report.untagged.push_back(tag.get<std::string>());
  index["images"].erase(id);
  report.deleted.push_back(id);
}

Error conflict(const std::string& what) { return make_error(Errc::invalid_argument, "conflict: " + what); }

}  // namespace

namespace gc {

// Blobs, derived forms and partial downloads nothing indexed names. The caller holds
// the gc lock exclusively.
Status collect(const std::filesystem::path& dir, const std::vector<Image>& images, RemovalReport& report) {
  const auto live = HYPER_TRY(live_set(images));
  report.reclaimed_bytes += sweep(
      dir / "blobs" / "sha256", [&](const std::string& name) { return live.blobs.count(name) != 0; },
      &report.deleted, "sha256:");
  report.reclaimed_bytes +=
      sweep(dir / "by-chain", [&](const std::string& name) { return live.chains.count(name) != 0; }, nullptr, "");
  report.reclaimed_bytes += sweep(dir / "partial", [](const std::string&) { return false; }, nullptr, "");
  // Staging that a killed load, import or commit left: writers hold the gc lock shared
  // while theirs exists, so under the exclusive lock all of it is left over.
  report.reclaimed_bytes += sweep(dir / "tmp", [](const std::string&) { return false; }, nullptr, "");
  // Root filesystems cached by image id, before they were keyed by chain ID.
  if (std::error_code ec; std::filesystem::exists(dir / "by-id", ec)) {
    report.reclaimed_bytes += tree_size(dir / "by-id");
    std::filesystem::remove_all(dir / "by-id", ec);
  }
  return {};
}

}  // namespace gc

Result<RemovalReport> ImageStore::remove(const std::string& reference, bool force,
                                         const std::function<bool(const std::string&)>& in_use) {
  const auto gc_lock = HYPER_TRY(FileLock::acquire(dir_ / kGcLockFile));
  const auto image = HYPER_TRY(find(reference));
  RemovalReport report;
  {
    const auto lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
    auto index = HYPER_TRY(read_index(dir_ / kIndexFile));
    if (!index["images"].contains(image.id)) return make_error(Errc::not_found, "No such image: " + reference);
    auto& tags = index["images"][image.id]["tags"];
    auto parsed = normalize_reference(reference);
    const std::string normalized = parsed.ok() ? *parsed : std::string();
    const bool by_tag = !normalized.empty() && normalized.find('@') == std::string::npos &&
                        std::find(tags.begin(), tags.end(), Json(normalized)) != tags.end();
    const std::string short_id = image.id.substr(7, 12);
    if (by_tag && tags.size() > 1) {
      tags.erase(std::remove(tags.begin(), tags.end(), Json(normalized)), tags.end());
      report.untagged.push_back(normalized);
    } else if (in_use(image.id)) {
      if (!force || !by_tag)
        return conflict("unable to remove image " + (by_tag ? reference : short_id) +
                        " - a container is using it (remove the container first" + (by_tag ? ", or use -f to untag it)" : ")"));
      tags.erase(std::remove(tags.begin(), tags.end(), Json(normalized)), tags.end());
      report.untagged.push_back(normalized);
    } else if (!by_tag && tags.size() > 1 && !force) {
      return conflict("unable to delete " + short_id +
                      " (must be forced) - image is referenced in multiple repositories");
    } else {
      drop_image(index, image.id, report);
    }
    HYPER_CHECK(write_index(dir_ / kIndexFile, index));
  }
  HYPER_CHECK(gc::collect(dir_, HYPER_TRY(list()), report));
  return report;
}

Result<RemovalReport> ImageStore::prune(bool all, const std::function<bool(const std::string&)>& in_use) {
  const auto gc_lock = HYPER_TRY(FileLock::acquire(dir_ / kGcLockFile));
  RemovalReport report;
  {
    const auto lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
    auto index = HYPER_TRY(read_index(dir_ / kIndexFile));
    std::vector<std::string> doomed;
    for (const auto& [id, entry] : index["images"].items())
      if ((all || entry["tags"].empty()) && !in_use(id)) doomed.push_back(id);
    for (const auto& id : doomed) drop_image(index, id, report);
    HYPER_CHECK(write_index(dir_ / kIndexFile, index));
  }
  HYPER_CHECK(gc::collect(dir_, HYPER_TRY(list()), report));
  return report;
}

}  // namespace hyper::runtime
