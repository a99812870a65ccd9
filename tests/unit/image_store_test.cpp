#include "runtime/image_store.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/image_blobs.hpp"
#include "tests/unit/image_test_support.hpp"
#include "tests/unit/tar_builder.hpp"

using namespace hyper;
using namespace hyper::runtime;
using hyper::testing::TarWriter;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kCreated = "2024-01-01T00:00:00Z";

using ScratchDir = hyper::testing::ImageScratch;
using hyper::testing::compress;
using hyper::testing::hex_of;
using hyper::testing::read_file;
using hyper::testing::sha;
using hyper::testing::write_file;

// A small layer: one file whose content makes the layer unique.
std::string layer_tar(const std::string& content) {
  TarWriter writer;
  writer.dir("etc/");
  writer.file("etc/" + content, content + "\n");
  return writer.finish();
}

std::string config_json(const std::vector<std::string>& plain_layers, const std::string& created = kCreated,
                        const std::string& architecture = "amd64") {
  Json diff_ids = Json::array();
  for (const auto& layer : plain_layers) diff_ids.push_back(sha(layer));
  return Json{{"architecture", architecture},
              {"os", "linux"},
              {"created", created},
              {"config",
               {{"Env", {"PATH=/bin"}},
                {"Cmd", {"sh"}},
                {"Entrypoint", nullptr},
                {"WorkingDir", "/work"},
                {"User", "1000"},
                {"StopSignal", "SIGQUIT"}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
      .dump();
}

struct DockerImageSpec {
  std::vector<std::string> layers;  // as stored in the archive (maybe compressed)
  std::string config;
  std::vector<std::string> tags;
};

// A docker-archive as `docker save` writes it: "<hex>/layer.tar" and "<hex>.json", or the
// newer layout with everything under blobs/sha256.
std::string docker_archive(const std::vector<DockerImageSpec>& images, bool blob_layout = false) {
  TarWriter writer;
  std::set<std::string> written;
  const auto add = [&](const std::string& name, const std::string& bytes) {
    if (written.insert(name).second) writer.file(name, bytes);
  };
  Json manifest = Json::array();
  for (const auto& image : images) {
    Json layers = Json::array();
    for (const auto& layer : image.layers) {
      const std::string name = blob_layout ? "blobs/sha256/" + hex_of(sha(layer)) : hex_of(sha(layer)) + "/layer.tar";
      add(name, layer);
      layers.push_back(name);
    }
    const std::string config = blob_layout ? "blobs/sha256/" + hex_of(sha(image.config)) : hex_of(sha(image.config)) + ".json";
    add(config, image.config);
    manifest.push_back({{"Config", config}, {"RepoTags", image.tags}, {"Layers", layers}});
  }
  writer.file("manifest.json", manifest.dump());
  return writer.finish();
}

// OCI image layout contents: blobs by digest plus index.json.
struct OciLayout {
  std::map<std::string, std::string> blobs;
  Json manifests = Json::array();

  std::string blob(const std::string& bytes) {
    blobs["blobs/sha256/" + hex_of(sha(bytes))] = bytes;
    return sha(bytes);
  }
  static Json descriptor(const std::string& media_type, const std::string& bytes) {
    return {{"mediaType", media_type}, {"digest", sha(bytes)}, {"size", bytes.size()}};
  }
  // An image manifest (not yet in the index); layers are {media type, stored bytes}.
  std::string image(const std::vector<std::pair<std::string, std::string>>& layers, const std::string& config) {
    Json layer_list = Json::array();
    for (const auto& [type, bytes] : layers) {
      blob(bytes);
      layer_list.push_back(descriptor(type, bytes));
    }
    blob(config);
    const std::string manifest = Json{{"schemaVersion", 2},
                                      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                      {"config", descriptor("application/vnd.oci.image.config.v1+json", config)},
                                      {"layers", layer_list}}
                                     .dump();
    blob(manifest);
    return manifest;
  }
  void add_to_index(const std::string& media_type, const std::string& bytes, const Json& annotations = nullptr) {
    Json entry = descriptor(media_type, bytes);
    if (!annotations.is_null()) entry["annotations"] = annotations;
    manifests.push_back(entry);
  }
  [[nodiscard]] std::string index() const {
    return Json{{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", manifests}}
        .dump();
  }
  [[nodiscard]] std::string tar() const {
    TarWriter writer;
    writer.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    for (const auto& [name, bytes] : blobs) writer.file(name, bytes);
    writer.file("index.json", index());
    return writer.finish();
  }
  void write_dir(const fs::path& dir) const {
    write_file(dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    for (const auto& [name, bytes] : blobs) write_file(dir / name, bytes);
    write_file(dir / "index.json", index());
  }
};

constexpr const char* kOciTar = "application/vnd.oci.image.layer.v1.tar";
constexpr const char* kOciGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr const char* kOciZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

struct Fixture {
  ScratchDir scratch;
  ImageStore store = open_store();

  ImageStore open_store() {
    auto opened = ImageStore::open(scratch.path() / "images");
    REQUIRE(opened.ok());
    return std::move(opened).value();
  }
  fs::path archive(const std::string& name, const std::string& bytes) {
    write_file(scratch.path() / name, bytes);
    return scratch.path() / name;
  }
  Result<std::vector<Image>> load(const std::string& bytes) { return store.load(archive("archive.tar", bytes)); }
  std::vector<Image> load_ok(const std::string& bytes) {
    auto loaded = load(bytes);
    INFO((loaded.ok() ? std::string() : loaded.error().message));
    REQUIRE(loaded.ok());
    return std::move(loaded).value();
  }
  size_t blob_count() const {
    size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(scratch.path() / "images/blobs/sha256")) ++count;
    return count;
  }
  size_t leftover_temp_files() const {
    const auto tmp = scratch.path() / "images/tmp";
    if (!fs::exists(tmp)) return 0;
    size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::recursive_directory_iterator(tmp)) ++count;
    return count;
  }
};

std::string error_of(const Result<std::vector<Image>>& result) { return result.ok() ? "" : result.error().message; }

}  // namespace

TEST_CASE("image references: Docker's normalisation") {
  const std::string digest = "sha256:" + std::string(64, 'a');
  const std::vector<std::pair<std::string, std::string>> cases{
      {"busybox", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io/library/busybox:1.36"},
      {"user/app", "docker.io/user/app:latest"},
      {"docker.io/busybox", "docker.io/library/busybox:latest"},
      {"index.docker.io/user/app:v1", "docker.io/user/app:v1"},
      {"docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
      {"localhost/app", "localhost/app:latest"},
      {"localhost:5000/a/b:tag", "localhost:5000/a/b:tag"},
      {"registry.example.com/team/app", "registry.example.com/team/app:latest"},
      {"Registry.Example.com:443/x", "Registry.Example.com:443/x:latest"},
      {"a__b/c-d.e_f---g", "docker.io/a__b/c-d.e_f---g:latest"},
      {"app:V1_x.y-z", "docker.io/library/app:V1_x.y-z"},
      {"busybox@" + digest, "docker.io/library/busybox@" + digest},
      {"busybox:1@" + digest, "docker.io/library/busybox:1@" + digest},
  };
  for (const auto& test : cases) {
    CAPTURE(test.first);
    const auto normalized = normalize_reference(test.first);
    INFO((normalized.ok() ? std::string() : normalized.error().message));
    REQUIRE(normalized.ok());
    CHECK(normalized.value() == test.second);
  }
}

TEST_CASE("image references: what Docker refuses") {
  CHECK(normalize_reference("Busybox").error().message == "invalid reference format: repository name must be lowercase");
  CHECK(normalize_reference("user/App").error().message == "invalid reference format: repository name must be lowercase");
  for (const std::string& bad : std::vector<std::string>{
           "", "a//b", "a:", ":tag", "/a", "a/", "-a", "a_", "a___b", "a..b", "a@sha256:123", "a@md5:abc", "a:.tag",
           "a:-tag", "a b", "localhost:port/x", "exa_mple.com/x", "a:" + std::string(129, 't'), std::string(256, 'a')}) {
    CAPTURE(bad);
    const auto normalized = normalize_reference(bad);
    REQUIRE_FALSE(normalized.ok());
    CHECK(normalized.error().code == Errc::invalid_argument);
    CHECK(normalized.error().message.find("invalid reference format") == 0);
  }
  const auto id = normalize_reference(std::string(64, 'f'));
  REQUIRE_FALSE(id.ok());
  CHECK(id.error().message.find("cannot specify 64-byte hexadecimal strings") != std::string::npos);
}

TEST_CASE("image references: familiar names") {
  CHECK(familiar_name("docker.io/library/busybox:latest") == "busybox:latest");
  CHECK(familiar_name("docker.io/user/app:v1") == "user/app:v1");
  CHECK(familiar_name("docker.io/library/a/b:1") == "library/a/b:1");
  CHECK(familiar_name("localhost:5000/a/b:tag") == "localhost:5000/a/b:tag");
  CHECK(familiar_name("quay.io/library/x:1") == "quay.io/library/x:1");
}

TEST_CASE("image store: loads a docker-archive, verified and indexed") {
  Fixture f;
  const auto base = layer_tar("base");
  const auto top = layer_tar("top");
  const auto config = config_json({base, top});
  const auto loaded = f.load_ok(docker_archive({{{base, top}, config, {"busybox:latest", "example.com/app:1"}}}));
  REQUIRE(loaded.size() == 1);
  const Image& image = loaded[0];
  CHECK(image.id == sha(config));
  CHECK(image.tags == std::vector<std::string>{"docker.io/library/busybox:latest", "example.com/app:1"});
  REQUIRE(image.layers.size() == 2);
  CHECK(image.layers[0].digest == sha(base));
  CHECK(image.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar");
  CHECK(image.layers[1].size == top.size());
  CHECK(image.diff_ids == std::vector<std::string>{sha(base), sha(top)});
  CHECK(image.size == base.size() + top.size());
  CHECK(image.created == kCreated);
  CHECK(image.config.cmd == std::vector<std::string>{"sh"});
  CHECK(image.config.entrypoint.empty());
  CHECK(image.config.env == std::vector<std::string>{"PATH=/bin"});
  CHECK(image.config.working_dir == "/work");
  CHECK(image.config.user == "1000");
  CHECK(image.config.stop_signal == "SIGQUIT");
  const auto chain = chain_id(image.diff_ids);
  REQUIRE(chain.ok());
  CHECK(f.store.derived_dir(image).value() == f.scratch.path() / "images/by-chain" / hex_of(*chain));

  // The generated manifest is a stored blob too, and names what was loaded.
  const auto manifest = Json::parse(read_file(f.store.blob_path(image.manifest_digest)));
  CHECK(sha(read_file(f.store.blob_path(image.manifest_digest))) == image.manifest_digest);
  CHECK(manifest["config"]["digest"] == image.id);
  CHECK(read_file(f.store.blob_path(image.layers[1].digest)) == top);
  CHECK(f.blob_count() == 4);
  CHECK(f.leftover_temp_files() == 0);

  const auto index = Json::parse(read_file(f.scratch.path() / "images/index.json"));
  CHECK(index["images"][image.id]["manifest"] == image.manifest_digest);

  // Loading it again changes nothing, manifest digest included.
  const auto again = f.load_ok(docker_archive({{{base, top}, config, {"busybox:latest"}}}));
  CHECK(again[0].manifest_digest == image.manifest_digest);
  CHECK(f.blob_count() == 4);
}

TEST_CASE("image store: docker-archive layouts: blobs/sha256, linked duplicate layers, gzip layers") {
  Fixture f;
  const auto base = layer_tar("base");
  const auto top = layer_tar("top");
  SUBCASE("blobs/sha256 layout") {
    const auto loaded = f.load_ok(docker_archive({{{base, top}, config_json({base, top}), {"new:layout"}}}, true));
    CHECK(loaded[0].layers.size() == 2);
  }
  SUBCASE("a repeated layer linked to its first copy, as older docker save writes it") {
    TarWriter writer;
    writer.file("aaaa/layer.tar", base);
    writer.symlink("bbbb/layer.tar", "../aaaa/layer.tar");
    const auto config = config_json({base, base});
    writer.file("config.json", config);
    writer.file("manifest.json", R"([{"Config":"config.json","RepoTags":null,"Layers":["aaaa/layer.tar","./bbbb//layer.tar"]}])");
    const auto loaded = f.load_ok(writer.finish());
    CHECK(loaded[0].tags.empty());
    CHECK(loaded[0].layers.size() == 2);
    CHECK(loaded[0].layers[1].digest == sha(base));
  }
  SUBCASE("a gzip layer keeps its compression and is verified uncompressed") {
    const auto gz = compress(top, ARCHIVE_FILTER_GZIP);
    const auto loaded = f.load_ok(docker_archive({{{base, gz}, config_json({base, top}), {"gz:1"}}}));
    CHECK(loaded[0].layers[1].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip");
    CHECK(loaded[0].layers[1].digest == sha(gz));
  }
  SUBCASE("a gzip archive around it all") {
    const auto loaded = f.load_ok(compress(docker_archive({{{base}, config_json({base}), {"x"}}}), ARCHIVE_FILTER_GZIP));
    CHECK(loaded[0].tags == std::vector<std::string>{"docker.io/library/x:latest"});
  }
}

TEST_CASE("image store: a layer that does not match its diff_id stores nothing") {
  Fixture f;
  const auto base = layer_tar("base");
  const auto top = layer_tar("top");
  const auto tampered = layer_tar("t0p");
  SUBCASE("plain layer") {
    const auto result = f.load(docker_archive({{{base, tampered}, config_json({base, top}), {"busybox"}}}));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == Errc::bad_image);
    CHECK(error_of(result).find("layer " + hex_of(sha(tampered)) + "/layer.tar does not match the image config") !=
          std::string::npos);
  }
  SUBCASE("gzip layer, checked uncompressed") {
    const auto result = f.load(docker_archive({{{base, compress(tampered, ARCHIVE_FILTER_GZIP)}, config_json({base, top}), {"b"}}}));
    CHECK(error_of(result).find("does not match the image config") != std::string::npos);
  }
  SUBCASE("second image of the archive is bad: the first is not stored either") {
    const auto result = f.load(docker_archive({{{base}, config_json({base}), {"good"}},
                                               {{base, tampered}, config_json({base, top}), {"bad"}}}));
    CHECK(error_of(result).find("does not match") != std::string::npos);
  }
  CHECK(f.blob_count() == 0);
  CHECK_FALSE(fs::exists(f.scratch.path() / "images/index.json"));
  CHECK(f.leftover_temp_files() == 0);
  CHECK(f.store.list()->empty());
}

TEST_CASE("image store: broken, hostile and missing archives") {
  Fixture f;
  const auto base = layer_tar("base");
  const auto good = docker_archive({{{base}, config_json({base}), {"busybox"}}});
  const auto archive = f.archive("archive.tar", good.substr(0, good.size() / 2));
  auto result = f.store.load(archive);
  CHECK(error_of(result).find(archive.string() + ": truncated or not a tar archive: ") == 0);

  result = f.store.load(f.archive("text.tar", std::string(3000, 'x')));
  CHECK(error_of(result).find("text.tar: truncated or not a tar archive: ") != std::string::npos);

  result = f.store.load(f.archive("empty.tar", ""));
  CHECK_FALSE(result.ok());

  result = f.store.load("/x/nothing.tar");
  CHECK(error_of(result) == "open /x/nothing.tar: No such file or directory");
  CHECK(result.error().code == Errc::not_found);

  {
    TarWriter writer;
    writer.file("../escape", "x");
    writer.file("manifest.json", "[]");
    CHECK(error_of(f.load(writer.finish())).find("refusing entry \"../escape\"") != std::string::npos);
  }
  {
    TarWriter writer;
    writer.file("manifest.json", "[{\"Config\": 7");
    result = f.load(writer.finish());
    CHECK(result.error().code == Errc::bad_image);
    CHECK(error_of(result).find("manifest.json: not valid JSON") != std::string::npos);
  }
  {
    TarWriter writer;
    writer.file("manifest.json", R"([{"Config":"../../etc/passwd","Layers":[]}])");
    CHECK(error_of(f.load(writer.finish())).find("refusing config path") != std::string::npos);
  }
  {
    TarWriter writer;
    writer.file("manifest.json", R"([{"Config":"c.json","Layers":["missing/layer.tar"]}])");
    writer.file("c.json", config_json({base}));
    CHECK(error_of(f.load(writer.finish())).find("missing/layer.tar is missing") != std::string::npos);
  }
  {
    TarWriter writer;
    writer.file("manifest.json", R"([{"Config":"c.json","Layers":[],"RepoTags":["Bad:tag"]}])");
    writer.file("c.json", R"({"rootfs":{"type":"layers","diff_ids":[]},"config":{"Cmd":"not a list"}})");
    CHECK(error_of(f.load(writer.finish())).find("\"Cmd\" is not a list") != std::string::npos);
  }
  {
    TarWriter writer;
    writer.file("hello.txt", "hi");
    CHECK(error_of(f.load(writer.finish())).find("not an image archive") != std::string::npos);
  }
  CHECK(f.blob_count() == 0);
  CHECK(f.leftover_temp_files() == 0);
}

TEST_CASE("image store: OCI layouts with gzip and zstd layers, names from annotations") {
  Fixture f;
  const auto base = layer_tar("base");
  const auto mid = layer_tar("mid");
  const auto top = layer_tar("top");
  OciLayout oci;
  const auto config = config_json({base, mid, top});
  const auto manifest = oci.image(
      {{kOciTar, base}, {kOciGzip, compress(mid, ARCHIVE_FILTER_GZIP)}, {kOciZstd, compress(top, ARCHIVE_FILTER_ZSTD)}},
      config);

  SUBCASE("containerd's full name wins") {
    oci.add_to_index("application/vnd.oci.image.manifest.v1+json", manifest,
                     {{"org.opencontainers.image.ref.name", "1"}, {"io.containerd.image.name", "oci-box:1"}});
    const auto loaded = f.load_ok(oci.tar());
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].tags == std::vector<std::string>{"docker.io/library/oci-box:1"});
    CHECK(loaded[0].id == sha(config));
    CHECK(loaded[0].manifest_digest == sha(manifest));
    CHECK(loaded[0].layers[1].media_type == kOciGzip);
    CHECK(loaded[0].layers[2].media_type == kOciZstd);
    CHECK(f.store.find("oci-box:1")->id == sha(config));
  }
  SUBCASE("a tag alone names nothing; a full ref.name does") {
    oci.add_to_index("application/vnd.oci.image.manifest.v1+json", manifest, {{"org.opencontainers.image.ref.name", "1"}});
    CHECK(f.load_ok(oci.tar())[0].tags.empty());
    oci.manifests.clear();
    oci.add_to_index("application/vnd.oci.image.manifest.v1+json", manifest,
                     {{"org.opencontainers.image.ref.name", "quay.io/x/y:2"}});
    CHECK(f.load_ok(oci.tar())[0].tags == std::vector<std::string>{"quay.io/x/y:2"});
  }
  SUBCASE("an OCI layout directory") {
    oci.add_to_index("application/vnd.oci.image.manifest.v1+json", manifest, {{"io.containerd.image.name", "dir:1"}});
    oci.write_dir(f.scratch.path() / "layout");
    const auto loaded = f.store.load(f.scratch.path() / "layout");
    INFO(error_of(loaded));
    REQUIRE(loaded.ok());
    CHECK(loaded->at(0).tags == std::vector<std::string>{"docker.io/library/dir:1"});
  }
  SUBCASE("a blob whose content does not match its name") {
    oci.add_to_index("application/vnd.oci.image.manifest.v1+json", manifest);
    oci.blobs["blobs/sha256/" + hex_of(sha(base))] = layer_tar("evil");
    CHECK(error_of(f.load(oci.tar())).find("does not match its digest") != std::string::npos);
    CHECK(f.blob_count() == 0);
  }
  SUBCASE("a descriptor size that does not match") {
    Json entry = OciLayout::descriptor("application/vnd.oci.image.manifest.v1+json", manifest);
    entry["size"] = manifest.size() + 1;
    oci.manifests.push_back(entry);
    CHECK(error_of(f.load(oci.tar())).find("its descriptor says") != std::string::npos);
  }
}

TEST_CASE("image store: OCI indexes: linux/amd64 is chosen, nothing else is loaded") {
  Fixture f;
  const auto layer = layer_tar("base");
  OciLayout oci;
  const auto amd64 = oci.image({{kOciTar, layer}}, config_json({layer}));
  const auto arm64 = oci.image({{kOciTar, layer}}, config_json({layer}, kCreated, "arm64"));
  const auto platform_entry = [](const std::string& bytes, const std::string& arch) {
    Json entry = OciLayout::descriptor("application/vnd.oci.image.manifest.v1+json", bytes);
    entry["platform"] = {{"os", "linux"}, {"architecture", arch}};
    return entry;
  };

  SUBCASE("a nested index (manifest list)") {
    const auto list = Json{{"schemaVersion", 2},
                           {"mediaType", "application/vnd.docker.distribution.manifest.list.v2+json"},
                           {"manifests", {platform_entry(arm64, "arm64"), platform_entry(amd64, "amd64")}}}
                          .dump();
    oci.blob(list);
    oci.add_to_index("application/vnd.oci.image.index.v1+json", list, {{"io.containerd.image.name", "multi:1"}});
    const auto loaded = f.load_ok(oci.tar());
    REQUIRE(loaded.size() == 1);
    CHECK(loaded[0].id == sha(config_json({layer})));
    CHECK(loaded[0].manifest_digest == sha(amd64));
    CHECK(loaded[0].tags == std::vector<std::string>{"docker.io/library/multi:1"});
  }
  SUBCASE("only another platform") {
    oci.add_to_index("application/vnd.oci.image.manifest.v1+json", arm64);
    const auto result = f.load(oci.tar());
    CHECK(error_of(result) == "no linux/amd64 image in " + (f.scratch.path() / "archive.tar").string());
    CHECK(f.blob_count() == 0);
  }
}

TEST_CASE("image store: find by tag, id and prefix; tags move to the newest image") {
  Fixture f;
  const auto layer = layer_tar("base");
  // Two configs whose ids share their first four hex digits, for the ambiguity check.
  std::map<std::string, std::string> by_prefix;
  std::string first, second;
  for (int i = 0; second.empty(); ++i) {
    const auto config = config_json({layer}, "2024-01-01T00:00:" + std::to_string(10 + i % 50) + "." + std::to_string(i) + "Z");
    const auto prefix = hex_of(sha(config)).substr(0, 4);
    if (by_prefix.count(prefix) != 0) {
      first = by_prefix[prefix];
      second = config;
    }
    by_prefix[prefix] = config;
  }
  f.load_ok(docker_archive({{{layer}, first, {"app:1"}}, {{layer}, second, {"app:2"}}}));

  const auto id1 = sha(first);
  const auto id2 = sha(second);
  CHECK(f.store.find("app:1")->id == id1);
  CHECK(f.store.find("docker.io/library/app:2")->id == id2);
  CHECK(f.store.find(id1)->id == id1);
  CHECK(f.store.find(hex_of(id2))->id == id2);
  CHECK(f.store.find(hex_of(id2).substr(0, 12))->id == id2);
  CHECK(f.store.find("sha256:" + hex_of(id1).substr(0, 10))->id == id1);
  const auto ambiguous = f.store.find(hex_of(id1).substr(0, 4));
  REQUIRE_FALSE(ambiguous.ok());
  CHECK(ambiguous.error().message.find("ambiguous") != std::string::npos);
  const auto short_prefix = f.store.find(hex_of(id1).substr(0, 3));
  CHECK(short_prefix.error().message == "No such image: " + hex_of(id1).substr(0, 3));
  const auto missing = f.store.find("nothing:here");
  CHECK(missing.error().code == Errc::not_found);
  CHECK(missing.error().message == "No such image: nothing:here");
  CHECK(f.store.find("Not A Reference").error().message == "No such image: Not A Reference");

  // Loading another image tagged app:1 takes the tag; the old image stays, untagged.
  const auto other = layer_tar("other");
  const auto third = config_json({other}, "2030-01-01T00:00:00+02:00");
  f.load_ok(docker_archive({{{other}, third, {"app:1"}}}));
  CHECK(f.store.find("app:1")->id == sha(third));
  CHECK(f.store.find(id1)->tags.empty());
  CHECK(f.store.find(id2)->tags == std::vector<std::string>{"docker.io/library/app:2"});

  const auto images = f.store.list();
  REQUIRE(images.ok());
  REQUIRE(images->size() == 3);
  CHECK(images->at(0).id == sha(third));  // newest first
}

TEST_CASE("image store: list sorts by creation time, then id") {
  Fixture f;
  const auto layer = layer_tar("base");
  const auto old_config = config_json({layer}, "2020-05-01T10:00:00Z");
  const auto new_config = config_json({layer}, "2020-05-01T10:00:00.5Z");
  const auto zoned = config_json({layer}, "2020-05-01T11:30:00+01:00");  // 10:30Z: the newest
  f.load_ok(docker_archive({{{layer}, old_config, {"a"}}, {{layer}, new_config, {"b"}}, {{layer}, zoned, {"c"}}}));
  const auto images = f.store.list();
  REQUIRE(images.ok());
  REQUIRE(images->size() == 3);
  CHECK(images->at(0).id == sha(zoned));
  CHECK(images->at(1).id == sha(new_config));
  CHECK(images->at(2).id == sha(old_config));
}

TEST_CASE("image store: write_layer_stream decompresses each layer to a 4 KiB boundary") {
  Fixture f;
  const auto base = layer_tar("base");
  std::string big;  // several MiB, so the copy loops more than once
  for (uint64_t i = 0; big.size() < (5u << 20); ++i) big += std::to_string(i * 7919) + ",";
  TarWriter writer;
  writer.file("big", big);
  const auto large = writer.finish();
  const auto small = layer_tar("small");
  OciLayout oci;
  const auto manifest = oci.image({{kOciTar, base}, {kOciGzip, compress(large, ARCHIVE_FILTER_GZIP)},
                                   {kOciZstd, compress(small, ARCHIVE_FILTER_ZSTD)}},
                                  config_json({base, large, small}));
  oci.add_to_index("application/vnd.oci.image.manifest.v1+json", manifest, {{"io.containerd.image.name", "s:1"}});
  const auto image = f.load_ok(oci.tar())[0];

  const auto path = f.scratch.path() / "stream";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "prefix", 6) == 6);  // offsets count from where the stream starts
  const auto spans = f.store.write_layer_stream(image, fd);
  ::close(fd);
  INFO((spans.ok() ? std::string() : spans.error().message));
  REQUIRE(spans.ok());
  const std::vector<std::string> plain{base, large, small};
  REQUIRE(spans->size() == 3);
  const auto stream = read_file(path).substr(6);
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    CAPTURE(i);
    const auto& span = spans->at(i);
    CHECK(span.offset == expected_offset);
    CHECK(span.offset % 4096 == 0);
    CHECK(span.size == plain[i].size());
    CHECK(stream.substr(span.offset, span.size) == plain[i]);
    const uint64_t end = (span.offset + span.size + 4095) / 4096 * 4096;
    CHECK(stream.substr(span.offset + span.size, end - span.offset - span.size) ==
          std::string(end - span.offset - span.size, '\0'));
    expected_offset = end;
  }
  CHECK(stream.size() == expected_offset);
}

TEST_CASE("image store: images written by tests/images/make-test-image load") {
  REQUIRE_MESSAGE(::access("/bin/busybox", X_OK) == 0, "/bin/busybox is missing: scripts/setup installs busybox-static");
  Fixture f;
  const fs::path script = fs::path(HYPER_SOURCE_DIR) / "tests/images/make-test-image";
  for (const std::string format : {"docker", "oci"}) {
    CAPTURE(format);
    const auto out = f.scratch.path() / (format + ".tar");
    const auto id_file = f.scratch.path() / "id";
    const std::string command = script.string() + " --format " + format + " --tag " + format +
                                "-box:1 --pad-mb 1 " + out.string() + " > " + id_file.string();
    REQUIRE(std::system(command.c_str()) == 0);
    const auto loaded = f.store.load(out);
    INFO(error_of(loaded));
    REQUIRE(loaded.ok());
    REQUIRE(loaded->size() == 1);
    CHECK(loaded->at(0).id + "\n" == read_file(id_file));
    CHECK(loaded->at(0).tags == std::vector<std::string>{"docker.io/library/" + format + "-box:1"});
    CHECK(loaded->at(0).layers.size() == 2);
    CHECK(loaded->at(0).config.cmd == std::vector<std::string>{"sh"});
  }
}
