#include "runtime/image_push.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/image_blobs.hpp"
#include "runtime/image_formats.hpp"
#include "runtime/parallel.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace {

std::string short_id(const std::string& digest) { return digest.substr(digest.find(':') + 1, 12); }

std::string with_query(const std::string& url, const std::string& query) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + query;
}

struct BlobToPush {
  std::string digest;
  uint64_t size = 0;
  bool is_layer = true;
};

struct Push {
  ImageStore& store;
  RegistryClient& client;
  ReferenceParts parts;
  const PushOptions& options;
  // Per blob: other repositories of this registry that have it, as far as the store knows
  // (from the tags and repository digests of the images that contain it).
  std::map<std::string, std::vector<std::string>> mount_sources;
  std::mutex report_mutex;
  std::atomic<bool> failed{false};

  [[nodiscard]] std::vector<std::string> scopes(const std::string& mount_from = {}) const {
    std::vector<std::string> out{"repository:" + parts.repository + ":pull,push"};
    if (!mount_from.empty()) out.push_back("repository:" + mount_from + ":pull");
    return out;
  }
  void report(const ProgressEvent& event) {
    if (!options.progress) return;
    const std::lock_guard lock(report_mutex);
    options.progress(event);
  }
  std::string what(const BlobToPush& blob) const { return "push " + parts.name() + ": blob " + blob.digest; }

  Result<bool> exists(const BlobToPush& blob);
  // The upload's location, or nullopt when the registry mounted the blob from `from`.
  Result<std::optional<std::string>> start_upload(const BlobToPush& blob, const std::string& from);
  Status upload(const BlobToPush& blob, std::string location);
  Status push_blob(const BlobToPush& blob);
  Status push_blobs(const std::vector<BlobToPush>& blobs);
};

Result<bool> Push::exists(const BlobToPush& blob) {
  http::Request request;
  request.method = "HEAD";
  request.url = "/v2/" + parts.repository + "/blobs/" + blob.digest;
  const auto response = HYPER_TRY(client.send(request, scopes()));
  if (response.status == 404) return false;
  HYPER_CHECK(RegistryClient::check(response, what(blob)));
  return true;
}

Result<std::optional<std::string>> Push::start_upload(const BlobToPush& blob, const std::string& from) {
  http::Request request;
  request.method = "POST";
  request.url = "/v2/" + parts.repository + "/blobs/uploads/";
  if (!from.empty()) request.url += "?mount=" + http::url_escape(blob.digest) + "&from=" + http::url_escape(from);
  const auto response = HYPER_TRY(client.send(request, scopes(from)));
  if (!from.empty() && response.status == 201) return std::optional<std::string>();
  HYPER_CHECK(RegistryClient::check(response, what(blob)));
  const std::string location = response.header("location");
  if (response.status != 202 || location.empty())
    return make_error(Errc::io, what(blob) + ": the registry started no upload (status " + std::to_string(response.status) + ")");
  return std::optional<std::string>(client.absolute(location));
}

Status Push::upload(const BlobToPush& blob, std::string location) {
  UniqueFd fd(::open(store.blob_path(blob.digest).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno("open " + store.blob_path(blob.digest).string());
  const std::string id = short_id(blob.digest);
  const auto send_absolute = [&](http::Request request) -> Result<http::Response> {
    // The upload's URL is absolute already: RegistryClient::send prefixes only paths.
    request.url = request.url.substr(client.url("").size());
    return client.send(std::move(request), scopes());
  };
  uint64_t offset = 0;
  if (blob.size > options.chunk_size) {
    while (offset < blob.size) {
      const uint64_t size = std::min(options.chunk_size, blob.size - offset);
      http::Request request;
      request.method = "PATCH";
      request.url = location;
      request.headers = {"Content-Type: application/octet-stream",
                         "Content-Range: " + std::to_string(offset) + "-" + std::to_string(offset + size - 1)};
      request.upload_fd = fd.get();
      request.upload_offset = offset;
      request.upload_size = size;
      const auto response = HYPER_TRY(send_absolute(request));
      HYPER_CHECK(RegistryClient::check(response, what(blob) + ": chunk at " + std::to_string(offset)));
      if (const auto next = response.header("location"); !next.empty()) location = client.absolute(next);
      offset += size;
      report({id, "Pushing", offset, blob.size});
      if (failed.load()) return make_error(Errc::io, "cancelled");
    }
  }
  http::Request request;
  request.method = "PUT";
  request.url = with_query(location, "digest=" + http::url_escape(blob.digest));
  request.headers = {"Content-Type: application/octet-stream"};
  request.upload_fd = fd.get();
  request.upload_offset = offset;
  request.upload_size = blob.size - offset;
  const auto response = HYPER_TRY(send_absolute(request));
  HYPER_CHECK(RegistryClient::check(response, what(blob)));
  return {};
}

Status Push::push_blob(const BlobToPush& blob) {
  const std::string id = short_id(blob.digest);
  if (HYPER_TRY(exists(blob))) {
    if (blob.is_layer) report({id, "Layer already exists", 0, 0});
    return {};
  }
  std::optional<std::string> location;
  // One try: a registry that cannot mount starts an ordinary upload instead.
  if (const auto it = mount_sources.find(blob.digest); it != mount_sources.end() && !it->second.empty()) {
    const std::string& from = it->second.front();
    location = HYPER_TRY(start_upload(blob, from));
    if (!location) {
      if (blob.is_layer) report({id, "Mounted from " + from, 0, 0});
      return {};
    }
  }
  if (!location) location = HYPER_TRY(start_upload(blob, ""));
  if (blob.is_layer) report({id, "Pushing", 0, blob.size});
  HYPER_CHECK(upload(blob, *location));
  if (blob.is_layer) report({id, "Pushed", blob.size, blob.size});
  return {};
}

Status Push::push_blobs(const std::vector<BlobToPush>& blobs) {
  for (const auto& blob : blobs)
    if (blob.is_layer) report({short_id(blob.digest), "Preparing", 0, 0});
  return run_in_parallel(blobs.size(), options.max_concurrent_uploads, failed,
                         [&](size_t i) { return push_blob(blobs[i]); });
}

// For each blob of `image`, the repositories of `domain` other than `skip` that some
// stored image containing it is tagged in or was pulled from or pushed to; the image's own
// come first.
std::map<std::string, std::vector<std::string>> mount_sources(const std::vector<Image>& stored, const Image& image,
                                                              const std::string& domain, const std::string& skip) {
  std::vector<const Image*> order{&image};
  for (const auto& other : stored)
    if (other.id != image.id) order.push_back(&other);
  std::map<std::string, std::vector<std::string>> out;
  for (const Image* candidate : order) {
    std::vector<std::string> repositories;
    std::vector<std::string> names = candidate->tags;
    names.insert(names.end(), candidate->repo_digests.begin(), candidate->repo_digests.end());
    for (const auto& name : names) {
      const auto parts = parse_reference(name);
      if (parts.ok() && parts->domain == domain && parts->repository != skip) repositories.push_back(parts->repository);
    }
    for (const auto& layer : candidate->layers) {
      if (std::none_of(image.layers.begin(), image.layers.end(), [&](const LayerRef& l) { return l.digest == layer.digest; }))
        continue;
      auto& sources = out[layer.digest];
      for (const auto& repository : repositories)
        if (std::find(sources.begin(), sources.end(), repository) == sources.end()) sources.push_back(repository);
    }
  }
  return out;
}

Result<std::string> manifest_media_type(const std::string& bytes) {
  const auto doc = HYPER_TRY(formats::parse_json(bytes, "manifest"));
  if (const auto it = doc.find("mediaType"); it != doc.end() && it->is_string()) return it->get<std::string>();
  // OCI manifests may leave it out; Docker's always carry it.
  return std::string(formats::kOciManifest);
}

}  // namespace

Result<PushResult> push_image(ImageStore& store, const std::string& reference, const PushOptions& options) {
  const auto parts = HYPER_TRY(parse_reference(reference));
  if (!parts.digest.empty())
    return make_error(Errc::invalid_argument, "cannot push a digest reference (" + reference + "): push a tag");
  auto found = store.find(reference);
  if (!found.ok() && found.error().code == Errc::not_found)
    return make_error(Errc::not_found, "An image does not exist locally with the tag: " + familiar_name(reference));
  if (!found.ok()) return found.error();
  const Image image = std::move(*found);
  auto client = HYPER_TRY(RegistryClient::create(parts.domain, options.registry));
  const auto stored = HYPER_TRY(store.list());
  Push push{store, *client, parts, options, mount_sources(stored, image, parts.domain, parts.repository), {}, {}};

  std::vector<BlobToPush> blobs;
  for (const auto& layer : image.layers) blobs.push_back({layer.digest, layer.size, true});
  HYPER_CHECK(push.push_blobs(blobs));
  const auto config = HYPER_TRY(store.read_blob_text(image.id));
  HYPER_CHECK(push.push_blob({image.id, config.size(), false}));

  const auto manifest = HYPER_TRY(store.read_blob_text(image.manifest_digest));
  http::Request request;
  request.method = "PUT";
  request.url = "/v2/" + parts.repository + "/manifests/" + parts.tag;
  request.headers = {"Content-Type: " + HYPER_TRY(manifest_media_type(manifest))};
  request.body = manifest;
  const auto response = HYPER_TRY(client->send(request, push.scopes()));
  HYPER_CHECK(RegistryClient::check(response, "push " + parts.name() + ":" + parts.tag + ": manifest"));
  if (const auto digest = response.header("docker-content-digest"); !digest.empty() && digest != image.manifest_digest)
    return make_error(Errc::io, "push " + parts.name() + ": the registry stored the manifest as " + digest +
                                    ", not " + image.manifest_digest);
  (void)HYPER_TRY(store.add_image(image.manifest_digest, {}, {parts.name() + "@" + image.manifest_digest}));
  return PushResult{parts.tag, image.manifest_digest, manifest.size()};
}

}  // namespace hyper::runtime
