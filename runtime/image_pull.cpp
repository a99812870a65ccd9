#include "runtime/image_pull.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/image_blobs.hpp"
#include "runtime/parallel.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime {
namespace {

using formats::Json;

constexpr const char* kManifestAccept =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
constexpr auto kProgressInterval = std::chrono::milliseconds(100);

std::string short_id(const std::string& digest) { return digest.substr(digest.find(':') + 1, 12); }

struct FetchedManifest {
  std::string bytes, digest, media_type;
  Json doc;
};

// Parallel workers report through one lock, so the display sees one event at a time.
class Reporter {
 public:
  explicit Reporter(const ProgressFn& fn) : fn_(fn) {}
  void operator()(const ProgressEvent& event) {
    if (!fn_) return;
    const std::lock_guard lock(mutex_);
    fn_(event);
  }

 private:
  const ProgressFn& fn_;
  std::mutex mutex_;
};

struct Pull {
  ImageStore& store;
  RegistryClient& client;
  ReferenceParts parts;
  const PullOptions& options;
  Reporter report;
  std::vector<std::string> scopes;
  std::atomic<bool> failed{false};

  Result<FetchedManifest> fetch_manifest(const std::string& reference);
  Result<FetchedManifest> resolve_platform(FetchedManifest top);
  Result<std::string> fetch_small_blob(const formats::Descriptor& descriptor);
  Status download_layer(const formats::Descriptor& layer);
  Status download_layers(const std::vector<formats::Descriptor>& layers);
};

Result<FetchedManifest> Pull::fetch_manifest(const std::string& reference) {
  http::Request request;
  request.url = "/v2/" + parts.repository + "/manifests/" + reference;
  request.headers.push_back(kManifestAccept);
  const auto response = HYPER_TRY(client.send(request, scopes));
  HYPER_CHECK(RegistryClient::check(response, "pull " + parts.name() + ":" + reference));
  FetchedManifest manifest;
  manifest.bytes = response.body;
  manifest.digest = HYPER_TRY(blobs::sha256_of(manifest.bytes));
  // Content is trusted only through its digest: the one asked for, else the registry's.
  const std::string expected = blobs::is_sha256_digest(reference) ? reference : response.header("docker-content-digest");
  if (!expected.empty() && expected != manifest.digest)
    return make_error(Errc::bad_image, parts.name() + ": manifest digest mismatch: expected " + expected + ", got " +
                                           manifest.digest);
  manifest.media_type = response.header("content-type");
  if (const size_t semicolon = manifest.media_type.find(';'); semicolon != std::string::npos)
    manifest.media_type.resize(semicolon);
  if (manifest.media_type.find("vnd.docker.distribution.manifest.v1") != std::string::npos)
    return make_error(Errc::unsupported, parts.name() + ": Docker image manifest schema 1 is not supported (deprecated)");
  manifest.doc = HYPER_TRY(formats::parse_json(manifest.bytes, parts.name() + ": manifest"));
  return manifest;
}

Result<FetchedManifest> Pull::resolve_platform(FetchedManifest top) {
  const auto where = parts.name() + ": manifest " + top.digest;
  const auto kind = HYPER_TRY(formats::document_kind(top.media_type, top.doc, where));
  if (kind == formats::DocumentKind::manifest) return top;
  const auto index = HYPER_TRY(formats::parse_index(top.doc, where));
  const auto& want = options.platform;
  std::string available;
  for (const auto& entry : index.manifests) {
    if (!entry.platform) continue;
    const auto& have = *entry.platform;
    if (have.os == want.os && have.architecture == want.architecture &&
        (want.variant.empty() || have.variant == want.variant))
      return fetch_manifest(entry.digest);
    if (have.os != "unknown") available += (available.empty() ? "" : ", ") + platform_name(have);
  }
  return make_error(Errc::not_found, "no matching manifest for " + platform_name(want) + " in the manifest list of " +
                                         parts.name() + " (it has: " + (available.empty() ? "none" : available) + ")");
}

Result<std::string> Pull::fetch_small_blob(const formats::Descriptor& descriptor) {
  if (descriptor.size > blobs::kMaxJsonBytes)
    return make_error(Errc::bad_image, parts.name() + ": config " + descriptor.digest + " is too large");
  http::Request request;
  request.url = "/v2/" + parts.repository + "/blobs/" + descriptor.digest;
  request.follow_redirects = true;
  const auto response = HYPER_TRY(client.send(request, scopes));
  HYPER_CHECK(RegistryClient::check(response, "pull " + parts.name() + ": blob " + descriptor.digest));
  const auto digest = HYPER_TRY(blobs::sha256_of(response.body));
  if (digest != descriptor.digest)
    return make_error(Errc::bad_image, parts.name() + ": digest mismatch for " + descriptor.digest + ": got " + digest);
  return response.body;
}

// A partial download: the file under images/partial/, locked while this pull writes it,
// hashed from its start so the digest covers what an earlier pull left there.
struct PartialBlob {
  UniqueFd fd;
  uint64_t size = 0;
  blobs::Sha256 hasher;
};

Result<PartialBlob> open_partial(const std::filesystem::path& path, uint64_t expected_size) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno("open " + path.string());
  // Two pulls of one layer take turns; the second finds the blob stored.
  while (::flock(fd.get(), LOCK_EX) != 0)
    if (errno != EINTR) return Error::from_errno("lock " + path.string());
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("stat " + path.string());
  PartialBlob partial{std::move(fd), 0, HYPER_TRY(blobs::Sha256::create())};
  if (static_cast<uint64_t>(st.st_size) > expected_size) {
    if (::ftruncate(partial.fd.get(), 0) != 0) return Error::from_errno("truncate " + path.string());
    return partial;
  }
  std::vector<uint8_t> buffer(blobs::kCopyBuffer);
  for (;;) {
    const ssize_t got = ::read(partial.fd.get(), buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Error::from_errno("read " + path.string());
    if (got == 0) break;
    partial.hasher.update(buffer.data(), static_cast<size_t>(got));
    partial.size += static_cast<uint64_t>(got);
  }
  return partial;
}

Status Pull::download_layer(const formats::Descriptor& layer) {
  const std::string id = short_id(layer.digest);
  const auto path = store.partial_dir() / layer.digest.substr(layer.digest.find(':') + 1);
  auto partial = HYPER_TRY(open_partial(path, layer.size));
  if (store.has_blob(layer.digest)) {
    ::unlink(path.c_str());
    report({id, "Already exists", 0, 0});
    return {};
  }
  if (partial.size > 0) report({id, "Resuming from " + std::to_string(partial.size) + " bytes", partial.size, layer.size});
  auto last_report = std::chrono::steady_clock::now();
  const http::BodySink sink = [&](const char* data, size_t size) -> Status {
    if (failed.load()) return make_error(Errc::io, "cancelled");
    if (partial.size + size > layer.size)
      return make_error(Errc::bad_image, parts.name() + ": layer " + layer.digest + " is larger than the " +
                                             std::to_string(layer.size) + " bytes its manifest says");
    HYPER_CHECK(write_all(partial.fd.get(), data, size, path.string()));
    partial.hasher.update(data, size);
    partial.size += size;
    if (const auto now = std::chrono::steady_clock::now(); now - last_report >= kProgressInterval) {
      last_report = now;
      report({id, "Downloading", partial.size, layer.size});
    }
    return {};
  };
  for (int attempt = 0; partial.size < layer.size; ++attempt) {
    http::Request request;
    request.url = "/v2/" + parts.repository + "/blobs/" + layer.digest;
    request.follow_redirects = true;
    request.sink = &sink;
    if (partial.size > 0) request.headers.push_back("Range: bytes=" + std::to_string(partial.size) + "-");
    // A server that ignores the Range sends the whole blob again: start over.
    request.on_success_status = [&](long status) -> Status {
      if (status == 206 || partial.size == 0) return {};
      if (::ftruncate(partial.fd.get(), 0) != 0 || ::lseek(partial.fd.get(), 0, SEEK_SET) != 0)
        return Error::from_errno("truncate " + path.string());
      partial.size = 0;
      partial.hasher = HYPER_TRY(blobs::Sha256::create());
      return {};
    };
    const uint64_t before = partial.size;
    auto response = client.send(request, scopes);
    if (failed.load()) return make_error(Errc::io, "cancelled");
    const bool progressed = partial.size > before;
    if (response.ok()) {
      HYPER_CHECK(RegistryClient::check(*response, "pull " + parts.name() + ": layer " + layer.digest));
      if (partial.size == layer.size) break;
      if (!progressed && attempt + 1 >= options.registry.max_attempts)
        return make_error(Errc::io, parts.name() + ": layer " + layer.digest + " ended early at " +
                                        std::to_string(partial.size) + " of " + std::to_string(layer.size) + " bytes");
    } else if (response.error().code != Errc::io || (!progressed && attempt + 1 >= options.registry.max_attempts)) {
      return response.error();
    }
    if (progressed) attempt = -1;  // a connection that moved data earns fresh attempts
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  report({id, "Verifying Checksum", layer.size, layer.size});
  const auto digest = HYPER_TRY(partial.hasher.finish());
  if (digest != layer.digest) {
    ::unlink(path.c_str());
    return make_error(Errc::bad_image, parts.name() + ": layer digest mismatch: expected " + layer.digest + ", got " +
                                           digest + " (the download was discarded)");
  }
  report({id, "Download complete", layer.size, layer.size});
  HYPER_CHECK(store.adopt_blob(path, layer.digest));
  report({id, "Pull complete", layer.size, layer.size});
  return {};
}

Status Pull::download_layers(const std::vector<formats::Descriptor>& layers) {
  for (const auto& layer : layers)
    report({short_id(layer.digest), store.has_blob(layer.digest) ? "Already exists" : "Pulling fs layer", 0, 0});
  return run_in_parallel(layers.size(), options.max_concurrent_downloads, failed, [&](size_t i) -> Status {
    if (store.has_blob(layers[i].digest)) return {};
    return download_layer(layers[i]);
  });
}

}  // namespace

Result<formats::Platform> parse_platform(const std::string& text) {
  const auto parts = blobs::split(text, '/');
  for (const auto part : parts)
    if (part.empty()) return make_error(Errc::invalid_argument, "invalid platform \"" + text + "\": want os/arch[/variant]");
  if (parts.size() == 1) return formats::Platform{"linux", std::string(parts[0]), ""};
  if (parts.size() > 3) return make_error(Errc::invalid_argument, "invalid platform \"" + text + "\": want os/arch[/variant]");
  return formats::Platform{std::string(parts[0]), std::string(parts[1]), parts.size() == 3 ? std::string(parts[2]) : ""};
}

std::string platform_name(const formats::Platform& platform) {
  return platform.os + "/" + platform.architecture + (platform.variant.empty() ? "" : "/" + platform.variant);
}

Result<PullResult> pull_image(ImageStore& store, const std::string& reference, const PullOptions& options) {
  PullResult result;
  result.reference = HYPER_TRY(normalize_reference(reference));
  const auto parts = HYPER_TRY(parse_reference(result.reference));
  auto client = HYPER_TRY(RegistryClient::create(parts.domain, options.registry));
  Pull pull{store, *client, parts, options, Reporter(options.progress), {"repository:" + parts.repository + ":pull"}};

  const auto top = HYPER_TRY(pull.fetch_manifest(parts.manifest_reference()));
  result.digest = top.digest;
  const auto chosen = HYPER_TRY(pull.resolve_platform(top));
  const auto where = parts.name() + ": manifest " + chosen.digest;
  const auto manifest = HYPER_TRY(formats::parse_manifest(chosen.doc, where));
  for (const auto& layer : manifest.layers) {
    const auto compression = blobs::compression_of(layer.media_type);
    if (!compression.ok()) return make_error(compression.error().code, where + ": layer " + layer.digest + ": " + compression.error().message);
  }
  const std::vector<std::string> tags = parts.tag.empty() ? std::vector<std::string>{} : std::vector<std::string>{result.reference.substr(0, result.reference.find('@'))};
  const std::vector<std::string> repo_digests{parts.name() + "@" + top.digest};

  // Held until the image is indexed: prune must not take blobs this pull relies on.
  const auto writing = HYPER_TRY(store.writer_lock());
  if (const auto existing = store.find(manifest.config.digest);
      existing.ok() && existing->manifest_digest == chosen.digest) {
    result.up_to_date = std::all_of(manifest.layers.begin(), manifest.layers.end(),
                                    [&](const auto& layer) { return store.has_blob(layer.digest); });
  }
  if (!result.up_to_date) {
    if (!store.has_blob(manifest.config.digest)) {
      const auto config = HYPER_TRY(pull.fetch_small_blob(manifest.config));
      (void)HYPER_TRY(store.put_blob(config));
    }
    const auto config_text = HYPER_TRY(store.read_blob_text(manifest.config.digest));
    const auto config_doc = HYPER_TRY(formats::parse_json(config_text, where + ": config"));
    const auto config = HYPER_TRY(formats::parse_config(config_doc, where + ": config"));
    if (!config.os.empty() && (config.os != options.platform.os || config.architecture != options.platform.architecture))
      return make_error(Errc::not_found, result.reference + " is an image for " + config.os + "/" + config.architecture +
                                             ", not " + platform_name(options.platform) + " (see --platform)");
    if (config.diff_ids.size() != manifest.layers.size())
      return make_error(Errc::bad_image, where + ": " + std::to_string(manifest.layers.size()) + " layers but the config has " +
                                             std::to_string(config.diff_ids.size()) + " diff_ids");
    HYPER_CHECK(pull.download_layers(manifest.layers));
    (void)HYPER_TRY(store.put_blob(chosen.bytes));
  }
  result.image = HYPER_TRY(store.add_image(chosen.digest, tags, repo_digests));
  return result;
}

}  // namespace hyper::runtime
