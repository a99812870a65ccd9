#include "runtime/image_formats.hpp"

#include "runtime/image_blobs.hpp"

namespace hyper::runtime::formats {
namespace {

Error bad(const std::string& where, const std::string& what) { return make_error(Errc::bad_image, where + ": " + what); }

// The member `key` of an object, or nullptr when the object lacks it or it is null.
const Json* member(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::string> optional_string(const Json& object, const char* key, const std::string& where) {
  const Json* value = member(object, key);
  if (value == nullptr) return std::string();
  if (!value->is_string()) return bad(where, std::string("\"") + key + "\" is not a string");
  return value->get<std::string>();
}

Result<std::string> required_string(const Json& object, const char* key, const std::string& where) {
  auto value = HYPER_TRY(optional_string(object, key, where));
  if (value.empty()) return bad(where, std::string("\"") + key + "\" is missing");
  return value;
}

Result<std::vector<std::string>> string_list(const Json& object, const char* key, const std::string& where) {
  const Json* value = member(object, key);
  std::vector<std::string> out;
  if (value == nullptr) return out;
  if (!value->is_array()) return bad(where, std::string("\"") + key + "\" is not a list");
  for (const auto& item : *value) {
    if (!item.is_string()) return bad(where, std::string("\"") + key + "\" holds something other than strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<uint64_t> size_of(const Json& object, const std::string& where) {
  const Json* value = member(object, "size");
  if (value == nullptr) return bad(where, "descriptor has no \"size\"");
  if (value->is_number_unsigned()) return value->get<uint64_t>();
  if (value->is_number_integer() && value->get<int64_t>() >= 0) return static_cast<uint64_t>(value->get<int64_t>());
  return bad(where, "descriptor \"size\" is not a byte count");
}

Result<Descriptor> parse_descriptor(const Json& doc, const std::string& where) {
  if (!doc.is_object()) return bad(where, "descriptor is not an object");
  Descriptor out;
  out.media_type = HYPER_TRY(optional_string(doc, "mediaType", where));
  out.digest = HYPER_TRY(required_string(doc, "digest", where));
  if (out.digest.compare(0, 7, "sha256:") != 0)
    return make_error(Errc::unsupported, where + ": unsupported digest \"" + out.digest + "\" (only sha256)");
  if (!blobs::is_sha256_digest(out.digest)) return bad(where, "malformed digest \"" + out.digest + "\"");
  out.size = HYPER_TRY(size_of(doc, where));
  if (const Json* annotations = member(doc, "annotations")) {
    if (!annotations->is_object()) return bad(where, "\"annotations\" is not an object");
    for (const auto& [key, value] : annotations->items())
      if (value.is_string()) out.annotations[key] = value.get<std::string>();
  }
  if (const Json* platform = member(doc, "platform")) {
    // One HYPER_TRY per statement: leaving a statement expression skips the destructors
    // of temporaries already built around it.
    Platform parsed;
    parsed.os = HYPER_TRY(optional_string(*platform, "os", where));
    parsed.architecture = HYPER_TRY(optional_string(*platform, "architecture", where));
    parsed.variant = HYPER_TRY(optional_string(*platform, "variant", where));
    out.platform = std::move(parsed);
  }
  return out;
}

Result<std::vector<Descriptor>> descriptor_list(const Json& doc, const char* key, const std::string& where) {
  std::vector<Descriptor> out;
  const Json* list = member(doc, key);
  if (list == nullptr) return out;
  if (!list->is_array()) return bad(where, std::string("\"") + key + "\" is not a list");
  for (const auto& item : *list) out.push_back(HYPER_TRY(parse_descriptor(item, where)));
  return out;
}

Status check_schema_version(const Json& doc, const std::string& where) {
  const Json* version = member(doc, "schemaVersion");
  if (version != nullptr && !(version->is_number_integer() && version->get<int64_t>() == 2))
    return make_error(Errc::unsupported, where + ": unsupported schemaVersion (only 2)");
  return {};
}

Json descriptor_json(const Descriptor& descriptor) {
  return Json{{"mediaType", descriptor.media_type}, {"digest", descriptor.digest}, {"size", descriptor.size}};
}

}  // namespace

Result<Json> parse_json(std::string_view text, const std::string& where) {
  Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return bad(where, "not valid JSON");
  return doc;
}

Result<Manifest> parse_manifest(const Json& doc, const std::string& where) {
  if (!doc.is_object()) return bad(where, "manifest is not an object");
  HYPER_CHECK(check_schema_version(doc, where));
  const Json* config = member(doc, "config");
  if (config == nullptr) return bad(where, "manifest has no \"config\"");
  Manifest out;
  out.config = HYPER_TRY(parse_descriptor(*config, where));
  out.layers = HYPER_TRY(descriptor_list(doc, "layers", where));
  return out;
}

Result<ImageIndex> parse_index(const Json& doc, const std::string& where) {
  if (!doc.is_object()) return bad(where, "index is not an object");
  HYPER_CHECK(check_schema_version(doc, where));
  if (member(doc, "manifests") == nullptr) return bad(where, "index has no \"manifests\"");
  return ImageIndex{HYPER_TRY(descriptor_list(doc, "manifests", where))};
}

Result<ParsedConfig> parse_config(const Json& doc, const std::string& where) {
  if (!doc.is_object()) return bad(where, "image config is not an object");
  ParsedConfig out;
  out.created = HYPER_TRY(optional_string(doc, "created", where));
  out.os = HYPER_TRY(optional_string(doc, "os", where));
  out.architecture = HYPER_TRY(optional_string(doc, "architecture", where));
  if (const Json* config = member(doc, "config")) {
    if (!config->is_object()) return bad(where, "\"config\" is not an object");
    out.config.entrypoint = HYPER_TRY(string_list(*config, "Entrypoint", where));
    out.config.cmd = HYPER_TRY(string_list(*config, "Cmd", where));
    out.config.env = HYPER_TRY(string_list(*config, "Env", where));
    out.config.working_dir = HYPER_TRY(optional_string(*config, "WorkingDir", where));
    out.config.user = HYPER_TRY(optional_string(*config, "User", where));
    out.config.stop_signal = HYPER_TRY(optional_string(*config, "StopSignal", where));
    if (const Json* ports = member(*config, "ExposedPorts"); ports != nullptr && ports->is_object())
      for (const auto& [port, ignored] : ports->items()) out.config.exposed_ports.push_back(port);
  }
  const Json* rootfs = member(doc, "rootfs");
  if (rootfs == nullptr) return bad(where, "image config has no \"rootfs\"");
  const auto type = HYPER_TRY(optional_string(*rootfs, "type", where));
  if (type != "layers") return bad(where, "rootfs type is \"" + type + "\", not \"layers\"");
  out.diff_ids = HYPER_TRY(string_list(*rootfs, "diff_ids", where));
  for (const auto& diff_id : out.diff_ids)
    if (!blobs::is_sha256_digest(diff_id)) return bad(where, "malformed diff_id \"" + diff_id + "\"");
  return out;
}

Result<std::vector<DockerArchiveEntry>> parse_docker_archive_manifest(const Json& doc, const std::string& where) {
  if (!doc.is_array() || doc.empty()) return bad(where, "lists no images");
  std::vector<DockerArchiveEntry> out;
  for (const auto& entry : doc) {
    if (!entry.is_object()) return bad(where, "an entry is not an object");
    DockerArchiveEntry parsed;
    parsed.config = HYPER_TRY(required_string(entry, "Config", where));
    parsed.layers = HYPER_TRY(string_list(entry, "Layers", where));
    parsed.repo_tags = HYPER_TRY(string_list(entry, "RepoTags", where));
    out.push_back(std::move(parsed));
  }
  return out;
}

Result<DocumentKind> document_kind(const std::string& descriptor_type, const Json& doc, const std::string& where) {
  std::string type = descriptor_type;
  if (type.empty()) type = HYPER_TRY(optional_string(doc, "mediaType", where));
  if (type.empty()) {
    if (member(doc, "manifests") != nullptr) return DocumentKind::index;
    if (member(doc, "config") != nullptr) return DocumentKind::manifest;
    return bad(where, "neither an image manifest nor an index");
  }
  if (type == kOciManifest || type == kDockerManifest) return DocumentKind::manifest;
  if (type == kOciIndex || type == kDockerManifestList) return DocumentKind::index;
  return make_error(Errc::unsupported, where + ": unsupported manifest media type \"" + type + "\"");
}

std::string docker_manifest(const Descriptor& config, const std::vector<Descriptor>& layers) {
  Json layer_list = Json::array();
  for (const auto& layer : layers) layer_list.push_back(descriptor_json(layer));
  const Json doc{{"schemaVersion", 2},
                 {"mediaType", kDockerManifest},
                 {"config", descriptor_json(config)},
                 {"layers", std::move(layer_list)}};
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool is_linux_amd64(const Platform& platform) {
  return platform.os == "linux" && platform.architecture == "amd64";
}

}  // namespace hyper::runtime::formats
