#include "runtime/api/image_json.hpp"

#include <time.h>

namespace hyper::runtime::api {

// `docker image inspect`'s fields, from the stored config (unknown fields are kept in
// Config as they are).
Result<OrderedJson> image_json(const ImageStore& store, const Image& image) {
  const auto text = HYPER_TRY(store.read_blob_text(image.id));
  const nlohmann::json config = nlohmann::json::parse(text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) return make_error(Errc::bad_image, "image " + image.id + ": bad config");
  const auto string_field = [&](const char* key) {
    const auto it = config.find(key);
    return it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  OrderedJson tags = OrderedJson::array(), digests = OrderedJson::array();
  for (const auto& tag : image.tags) tags.push_back(familiar_name(tag));
  for (const auto& digest : image.repo_digests) digests.push_back(familiar_name(digest));
  const auto chain = HYPER_TRY(chain_id(image.diff_ids));
  return OrderedJson{{"Id", image.id},
              {"RepoTags", tags},
              {"RepoDigests", digests},
              {"Parent", ""},
              {"Comment", string_field("comment")},
              {"Created", image.created},
              {"Author", string_field("author")},
              {"Config", config.contains("config") ? config["config"] : nlohmann::json()},
              {"Architecture", string_field("architecture")},
              {"Os", string_field("os")},
              {"Size", image.size},
              {"RootFS", {{"Type", "layers"}, {"Layers", image.diff_ids}}},
              {"Metadata", {{"ManifestDigest", image.manifest_digest}, {"ChainID", chain}}}};
}

OrderedJson image_summary_json(const Image& image) {
  OrderedJson tags = OrderedJson::array(), digests = OrderedJson::array();
  for (const auto& tag : image.tags) tags.push_back(familiar_name(tag));
  for (const auto& digest : image.repo_digests) digests.push_back(familiar_name(digest));
  tm utc{};
  const bool dated = ::strptime(image.created.c_str(), "%Y-%m-%dT%H:%M:%S", &utc) != nullptr;
  return {{"Containers", -1},
          {"Created", dated ? static_cast<int64_t>(::timegm(&utc)) : 0},
          {"Id", image.id},
          {"Labels", OrderedJson::object()},
          {"ParentId", ""},
          {"RepoDigests", digests},
          {"RepoTags", tags},
          {"SharedSize", -1},
          {"Size", image.size}};
}

}  // namespace hyper::runtime::api
