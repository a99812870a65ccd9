#include "runtime/image_index.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "runtime/image_blobs.hpp"

namespace hyper::runtime::index_file {

using formats::Json;

namespace {

Error corrupt(const std::filesystem::path& path, const std::string& what) {
  return make_error(Errc::bad_image, path.string() + ": corrupt image index: " + what);
}

}  // namespace

Result<Json> read_index(const std::filesystem::path& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return Json{{"images", Json::object()}};
  const auto text = HYPER_TRY(blobs::read_small_file(path, kMaxIndexBytes));
  auto index = HYPER_TRY(formats::parse_json(text, path.string()));
  if (!index.is_object() || !index.contains("images") || !index["images"].is_object())
    return corrupt(path, "no \"images\" object");
  for (const auto& [id, entry] : index["images"].items()) {
    if (!blobs::is_sha256_digest(id) || !entry.is_object() || !entry.contains("manifest") ||
        !entry["manifest"].is_string() || !blobs::is_sha256_digest(entry["manifest"].get<std::string>()) ||
        !entry.contains("tags") || !entry["tags"].is_array())
      return corrupt(path, "bad entry for " + id);
    for (const auto& tag : entry["tags"])
      if (!tag.is_string()) return corrupt(path, "bad tag of " + id);
    if (entry.contains("digests")) {
      if (!entry["digests"].is_array()) return corrupt(path, "bad digests of " + id);
      for (const auto& digest : entry["digests"])
        if (!digest.is_string()) return corrupt(path, "bad digest of " + id);
    }
  }
  return index;
}

Status write_index(const std::filesystem::path& path, const Json& index) {
  return blobs::replace_file(path, index.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

void move_tags(Json& images, const std::string& image_id, const std::string& manifest_digest,
               const std::vector<std::string>& new_tags) {
  for (auto& [id, entry] : images.items()) {
    if (id == image_id) continue;
    auto& tags = entry["tags"];
    for (const auto& tag : new_tags) tags.erase(std::remove(tags.begin(), tags.end(), Json(tag)), tags.end());
  }
  auto& entry = images[image_id];
  if (!entry.is_object()) entry = Json{{"tags", Json::array()}};
  entry["manifest"] = manifest_digest;
  auto& tags = entry["tags"];
  for (const auto& tag : new_tags)
    if (std::find(tags.begin(), tags.end(), Json(tag)) == tags.end()) tags.push_back(tag);
}

void add_repo_digests(Json& entry, const std::vector<std::string>& repo_digests) {
  if (!entry.contains("digests")) entry["digests"] = Json::array();
  auto& digests = entry["digests"];
  for (const auto& reference : repo_digests) {
    const std::string repository = reference.substr(0, reference.find('@') + 1);
    digests.erase(std::remove_if(digests.begin(), digests.end(),
                                 [&](const Json& d) { return d.get<std::string>().rfind(repository, 0) == 0; }),
                  digests.end());
    digests.push_back(reference);
  }
}

}  // namespace hyper::runtime::index_file
