#include "runtime/image_save.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include "runtime/image_commit.hpp"
#include "runtime/image_formats.hpp"
#include "tests/unit/image_test_support.hpp"
#include "vmm/unique_fd.hpp"

using namespace hyper;
using namespace hyper::runtime;
using namespace hyper::testing;

namespace {

std::string gzip(const std::string& data) { return compress(data, ARCHIVE_FILTER_GZIP); }

struct Fixture {
  ImageScratch scratch;
  ImageStore store = scratch.store();

  std::vector<Image> load(const std::string& name, const std::string& archive_bytes, ImageStore* into = nullptr) {
    write_file(scratch.path() / name, archive_bytes);
    auto loaded = (into ? into : &store)->load(scratch.path() / name);
    INFO((loaded.ok() ? std::string() : loaded.error().message));
    REQUIRE(loaded.ok());
    return std::move(loaded).value();
  }
  // A two-layer image, the second layer gzip-compressed as a registry would have it.
  Image load_image(const std::vector<std::string>& tags, const std::string& marker = "one") {
    const std::string plain1 = small_layer(marker, "1\n"), plain2 = small_layer(marker + "-2", "2\n");
    return load("in-" + marker + ".tar", docker_archive({plain1, gzip(plain2)}, image_config({plain1, plain2}), tags)).front();
  }
  std::vector<SaveItem> resolve(const std::vector<std::string>& names) {
    auto items = resolve_save_names(store, names);
    INFO((items.ok() ? std::string() : items.error().message));
    REQUIRE(items.ok());
    return std::move(items).value();
  }
  std::string save(const std::vector<std::string>& names) {
    const auto out = scratch.path() / "saved.tar";
    const Status saved = save_to_file(store, resolve(names), out);
    INFO((saved.ok() ? std::string() : saved.error().message));
    REQUIRE(saved.ok());
    CHECK_FALSE(fs::exists(out.string() + ".tmp"));
    return read_file(out);
  }
};

}  // namespace

TEST_CASE("image save: an OCI layout and a docker-archive in one tar, as Docker 25 writes") {
  Fixture f;
  const Image image = f.load_image({"busybox:latest"});
  const auto files = tar_files(f.save({"busybox"}));

  CHECK(files.at("oci-layout") == R"({"imageLayoutVersion":"1.0.0"})");
  CHECK(files.at("blobs/") == "<not a file>");
  CHECK(files.at("blobs/sha256/") == "<not a file>");
  size_t blob_count = 0;
  for (const auto& [name, bytes] : files) {
    if (name.rfind("blobs/sha256/", 0) != 0 || bytes == "<not a file>") continue;
    CHECK(sha(bytes) == "sha256:" + name.substr(13));
    ++blob_count;
  }
  CHECK(blob_count == 4);  // manifest, config, two layers
  for (const auto& digest : {image.id, image.layers[0].digest, image.layers[1].digest})
    CHECK(files.count("blobs/sha256/" + hex_of(digest)) == 1);

  const auto index = Json::parse(files.at("index.json"));
  CHECK(index["schemaVersion"] == 2);
  CHECK(index["mediaType"] == formats::kOciIndex);
  REQUIRE(index["manifests"].size() == 1);
  const auto& entry = index["manifests"][0];
  CHECK(entry["annotations"] == Json{{"io.containerd.image.name", "docker.io/library/busybox:latest"},
                                     {"org.opencontainers.image.ref.name", "latest"}});
  // The stored manifest is a Docker one (from a docker-archive): the index names an OCI
  // manifest of the same config and layers.
  CHECK(entry["mediaType"] == formats::kOciManifest);
  const std::string oci_bytes = files.at("blobs/sha256/" + hex_of(entry["digest"].get<std::string>()));
  CHECK(entry["size"] == oci_bytes.size());
  const auto oci = Json::parse(oci_bytes);
  CHECK(oci["mediaType"] == formats::kOciManifest);
  CHECK(oci["config"] == Json{{"mediaType", "application/vnd.oci.image.config.v1+json"},
                              {"digest", image.id},
                              {"size", files.at("blobs/sha256/" + hex_of(image.id)).size()}});
  REQUIRE(oci["layers"].size() == 2);
  CHECK(oci["layers"][0] == Json{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                                 {"digest", image.layers[0].digest},
                                 {"size", image.layers[0].size}});
  CHECK(oci["layers"][1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip");

  const auto manifest = Json::parse(files.at("manifest.json"));
  REQUIRE(manifest.size() == 1);
  CHECK(manifest[0]["Config"] == "blobs/sha256/" + hex_of(image.id));
  CHECK(manifest[0]["RepoTags"] == Json::array({"busybox:latest"}));
  CHECK(manifest[0]["Layers"] == Json::array({"blobs/sha256/" + hex_of(image.layers[0].digest),
                                              "blobs/sha256/" + hex_of(image.layers[1].digest)}));
  CHECK(Json::parse(files.at("repositories")) == Json{{"busybox", {{"latest", hex_of(image.layers[1].digest)}}}});
}

// An OCI layout tar of one image whose manifest is an OCI one.
std::string oci_layout(const std::string& tag) {
  const std::string plain = small_layer("oci", "oci\n"), layer = gzip(plain), config = image_config({plain});
  const auto descriptor = [](const char* type, const std::string& bytes) {
    return Json{{"mediaType", type}, {"digest", sha(bytes)}, {"size", bytes.size()}};
  };
  const std::string manifest =
      Json{{"schemaVersion", 2},
           {"mediaType", formats::kOciManifest},
           {"config", descriptor("application/vnd.oci.image.config.v1+json", config)},
           {"layers", Json::array({descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)})}}
          .dump();
  Json entry = descriptor(formats::kOciManifest, manifest);
  entry["annotations"] = {{"io.containerd.image.name", tag}};
  TarWriter writer;
  writer.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  for (const auto& blob : {layer, config, manifest}) writer.file("blobs/sha256/" + hex_of(sha(blob)), blob);
  writer.file("index.json", Json{{"schemaVersion", 2}, {"manifests", Json::array({entry})}}.dump());
  return writer.finish();
}

TEST_CASE("image save: hyper load reads it back as the same images, through either half") {
  Fixture f;
  const Image loaded = f.load_image({"busybox:latest", "busybox:1"});
  const Image from_oci = f.load("oci.tar", oci_layout("docker.io/library/oci:1")).front();
  // An image made here (whose manifest was never in an archive) goes through too.
  write_file(f.scratch.path() / "rootfs.tar", small_layer("imported", "i\n"));
  UniqueFd rootfs(::open((f.scratch.path() / "rootfs.tar").c_str(), O_RDONLY | O_CLOEXEC));
  NewImage options;
  options.tags = {"docker.io/library/imported:2"};
  auto imported = import_image(f.store, rootfs.get(), options);
  REQUIRE(imported.ok());

  const std::string saved = f.save({"busybox:latest", "busybox:1", "imported:2", "oci:1"});
  std::map<std::string, std::string> index_digests;  // tag -> the manifest index.json names
  const auto saved_index = Json::parse(tar_files(saved).at("index.json"));
  for (const auto& entry : saved_index["manifests"])
    index_digests[entry["annotations"]["io.containerd.image.name"].get<std::string>()] = entry["digest"].get<std::string>();
  CHECK(index_digests.at("docker.io/library/oci:1") == from_oci.manifest_digest);

  const auto reload = [&](const std::string& archive_bytes) {
    ImageScratch other;
    auto store = other.store();
    auto images = f.load("round-trip.tar", archive_bytes, &store);
    REQUIRE(images.size() == 3);
    CHECK(images[0].id == loaded.id);
    CHECK(images[0].tags == std::vector<std::string>{"docker.io/library/busybox:latest", "docker.io/library/busybox:1"});
    CHECK(images[1].id == imported->id);
    CHECK(images[1].tags == options.tags);
    CHECK(images[2].id == from_oci.id);
    CHECK(images[2].tags == std::vector<std::string>{"docker.io/library/oci:1"});
    return images;
  };
  SUBCASE("as a docker-archive: Docker manifests come back byte for byte") {
    const auto images = reload(saved);
    CHECK(images[0].manifest_digest == loaded.manifest_digest);
    CHECK(images[1].manifest_digest == imported->manifest_digest);
  }
  SUBCASE("as an OCI layout: OCI manifests come back byte for byte") {
    TarWriter oci_only;
    for (const auto& [name, bytes] : tar_files(saved))
      if (name != "manifest.json" && bytes != "<not a file>") oci_only.file(name, bytes);
    const auto images = reload(oci_only.finish());
    CHECK(images[0].manifest_digest == index_digests.at("docker.io/library/busybox:latest"));
    CHECK(images[1].manifest_digest == index_digests.at("docker.io/library/imported:2"));
    CHECK(images[2].manifest_digest == from_oci.manifest_digest);
  }
}

TEST_CASE("image save: names: by id without a tag, a repository with all its tags, one entry per image") {
  Fixture f;
  const Image one = f.load_image({"busybox:latest", "busybox:1"}, "one");
  const Image two = f.load_image({"busybox:2", "other:1"}, "two");

  auto items = f.resolve({"busybox"});
  REQUIRE(items.size() == 2);
  CHECK(items[0].tags.size() + items[1].tags.size() == 3);
  for (const auto& item : items)
    for (const auto& tag : item.tags) CHECK(tag.rfind("docker.io/library/busybox:", 0) == 0);

  items = f.resolve({"busybox:1", one.id.substr(7, 12), "busybox:latest"});
  REQUIRE(items.size() == 1);
  CHECK(items[0].tags == std::vector<std::string>{"docker.io/library/busybox:1", "docker.io/library/busybox:latest"});

  const auto files = tar_files(f.save({two.id}));
  const auto manifest = Json::parse(files.at("manifest.json"));
  CHECK(manifest[0]["RepoTags"].is_null());
  CHECK_FALSE(Json::parse(files.at("index.json"))["manifests"][0].contains("annotations"));
  CHECK(files.count("repositories") == 0);

  auto missing = resolve_save_names(f.store, {"busybox:latest", "nosuch:1"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
}

TEST_CASE("image save: a corrupt blob fails the save and leaves no file") {
  Fixture f;
  const Image image = f.load_image({"busybox:latest"});
  const auto blob = f.store.blob_path(image.layers[0].digest);
  std::string bytes = read_file(blob);
  bytes[bytes.size() / 2] ^= 1;
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  write_file(blob, bytes);
  const auto out = f.scratch.path() / "saved.tar";
  const Status saved = save_to_file(f.store, f.resolve({"busybox"}), out);
  REQUIRE_FALSE(saved.ok());
  CHECK(saved.error().message.find("corrupt") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(out.string() + ".tmp"));
}
