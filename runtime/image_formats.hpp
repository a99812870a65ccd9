// The JSON documents of images (OCI image spec and Docker's equivalents), parsed from
// untrusted bytes into plain structs: every type is checked, nothing throws.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/image_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime::formats {

using Json = nlohmann::json;

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr const char* kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr const char* kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr const char* kDockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd";

struct Platform {
  std::string os, architecture, variant;
};

struct Descriptor {
  std::string media_type;  // may be empty
  std::string digest;      // always "sha256:<hex>"
  uint64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
};

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct ImageIndex {
  std::vector<Descriptor> manifests;
};

struct ParsedConfig {
  ImageConfig config;
  std::vector<std::string> diff_ids;
  std::string created, os, architecture;
};

enum class DocumentKind { manifest, index };

// One entry of a docker-archive's manifest.json; the names are paths inside the archive.
struct DockerArchiveEntry {
  std::string config;
  std::vector<std::string> layers, repo_tags;
};

// `where` names the document in errors ("archive.tar: blobs/sha256/ab.."): every error
// is Errc::bad_image (or unsupported) with a message that starts with it.
Result<Json> parse_json(std::string_view text, const std::string& where);
Result<Manifest> parse_manifest(const Json& doc, const std::string& where);
Result<ImageIndex> parse_index(const Json& doc, const std::string& where);
Result<ParsedConfig> parse_config(const Json& doc, const std::string& where);
Result<std::vector<DockerArchiveEntry>> parse_docker_archive_manifest(const Json& doc, const std::string& where);
// From the descriptor's media type, else the document's own, else its shape.
Result<DocumentKind> document_kind(const std::string& descriptor_type, const Json& doc, const std::string& where);

// A Docker schema 2 manifest for layers taken from a docker-archive, serialised the same
// way every time so that loading the same archive twice gives the same digest.
std::string docker_manifest(const Descriptor& config, const std::vector<Descriptor>& layers);

bool is_linux_amd64(const Platform& platform);

}  // namespace hyper::runtime::formats
