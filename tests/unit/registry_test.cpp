// The registry client's parsing and bookkeeping, without a network: challenges, tokens,
// credentials, references and platforms; and the store's side of pulls, pushes, rmi
// and prune (blobs in, images indexed, tags moved, unreferenced blobs collected).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include "cli/human.hpp"
#include "cli/progress.hpp"
#include "runtime/image_pull.hpp"
#include "runtime/registry_auth.hpp"
#include "runtime/registry_client.hpp"
#include "tests/unit/image_test_support.hpp"

using namespace hyper;
using namespace hyper::runtime;
using namespace hyper::testing;

TEST_CASE("registry: a Bearer challenge gives realm, service and scope") {
  const auto parsed = auth::parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->size() == 1);
  const auto& challenge = parsed->front();
  CHECK(challenge.scheme == "bearer");
  CHECK(challenge.params.at("realm") == "https://auth.docker.io/token");
  CHECK(challenge.params.at("service") == "registry.docker.io");
  CHECK(challenge.params.at("scope") == "repository:library/busybox:pull");
}

TEST_CASE("registry: several challenges, unquoted values, escapes and odd spacing") {
  const auto parsed = auth::parse_www_authenticate(R"(Basic realm="a \"quoted\" realm" , BEARER realm=https://t/x, error = invalid_token)");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->size() == 2);
  CHECK((*parsed)[0].scheme == "basic");
  CHECK((*parsed)[0].params.at("realm") == "a \"quoted\" realm");
  CHECK((*parsed)[1].scheme == "bearer");
  CHECK((*parsed)[1].params.at("realm") == "https://t/x");
  CHECK((*parsed)[1].params.at("error") == "invalid_token");
}

TEST_CASE("registry: malformed challenges are errors, not guesses") {
  CHECK_FALSE(auth::parse_www_authenticate("").ok());
  CHECK_FALSE(auth::parse_www_authenticate("   ").ok());
  CHECK_FALSE(auth::parse_www_authenticate(R"(Bearer realm="never closed)").ok());
  CHECK_FALSE(auth::parse_www_authenticate("Bearer realm=\"x\" ;;").ok());
}

TEST_CASE("registry: token answers") {
  auto token = auth::parse_token_response(R"({"token":"t1","expires_in":300})");
  REQUIRE(token.ok());
  CHECK(token->value == "t1");
  CHECK(token->expires_in == 300);
  token = auth::parse_token_response(R"({"access_token":"t2"})");
  REQUIRE(token.ok());
  CHECK(token->value == "t2");
  CHECK(token->expires_in == 60);  // the spec's default
  token = auth::parse_token_response(R"({"token":"t3","expires_in":5})");
  REQUIRE(token.ok());
  CHECK(token->expires_in == 60);  // too short to be used: the minimum
  CHECK_FALSE(auth::parse_token_response(R"({"token":""})").ok());
  CHECK_FALSE(auth::parse_token_response(R"({"token":7})").ok());
  CHECK_FALSE(auth::parse_token_response("not json").ok());
  CHECK_FALSE(auth::parse_token_response("[]").ok());
}

TEST_CASE("registry: base64 both ways") {
  for (const std::string& text : std::vector<std::string>{"", "a", "ab", "abc", "alice:wonder:land", std::string("\0\xff", 2)}) {
    const auto decoded = auth::base64_decode(auth::base64_encode(text));
    REQUIRE(decoded.ok());
    CHECK(*decoded == text);
  }
  CHECK(auth::base64_encode("alice:wonderland") == "YWxpY2U6d29uZGVybGFuZA==");
  CHECK_FALSE(auth::base64_decode("abc").ok());
  CHECK_FALSE(auth::base64_decode("a!c=").ok());
  CHECK_FALSE(auth::base64_decode("====").ok());  // found by fuzz_registry
  CHECK_FALSE(auth::base64_decode("a===").ok());
}

TEST_CASE("registry: credentials live in config.json beside what docker keeps there") {
  ImageScratch scratch;
  ::setenv("DOCKER_CONFIG", scratch.path().c_str(), 1);
  const auto path = scratch.path() / "config.json";
  write_file(path, R"({"auths":{"other.example":{"auth":"eDp5"}},"credHelpers":{"gcr.io":"gcloud"}})");
  auto found = auth::load_credentials("127.0.0.1:5000");
  REQUIRE(found.ok());
  CHECK_FALSE(found->has_value());

  REQUIRE(auth::store_credentials("127.0.0.1:5000", {"alice", "wonderland"}).ok());
  REQUIRE(auth::store_credentials("docker.io", {"bob", "pa:ss"}).ok());
  found = auth::load_credentials("127.0.0.1:5000");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->username == "alice");
  CHECK((*found)->password == "wonderland");
  found = auth::load_credentials("docker.io");
  REQUIRE((found.ok() && found->has_value()));
  CHECK((*found)->password == "pa:ss");

  const auto doc = Json::parse(read_file(path));
  CHECK(doc["auths"].contains("https://index.docker.io/v1/"));
  CHECK(doc["auths"]["other.example"]["auth"] == "eDp5");  // others' entries are kept
  CHECK(doc["credHelpers"]["gcr.io"] == "gcloud");
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto erased = auth::erase_credentials("127.0.0.1:5000");
  REQUIRE(erased.ok());
  CHECK(*erased);
  erased = auth::erase_credentials("127.0.0.1:5000");
  REQUIRE(erased.ok());
  CHECK_FALSE(*erased);
  found = auth::load_credentials("127.0.0.1:5000");
  REQUIRE(found.ok());
  CHECK_FALSE(found->has_value());

  write_file(path, R"({"auths":{"bad.example":{"auth":"bm8tY29sb24="}}})");
  CHECK_FALSE(auth::load_credentials("bad.example").ok());
  write_file(path, "[1]");
  CHECK_FALSE(auth::load_credentials("bad.example").ok());
  ::unsetenv("DOCKER_CONFIG");
}

TEST_CASE("registry: references come apart into registry, repository, tag and digest") {
  auto parts = parse_reference("busybox");
  REQUIRE(parts.ok());
  CHECK(parts->domain == "docker.io");
  CHECK(parts->repository == "library/busybox");
  CHECK(parts->tag == "latest");
  CHECK(parts->manifest_reference() == "latest");
  const std::string digest = "sha256:" + std::string(64, 'a');
  parts = parse_reference("localhost:5000/team/app:v1@" + digest);
  REQUIRE(parts.ok());
  CHECK(parts->domain == "localhost:5000");
  CHECK(parts->repository == "team/app");
  CHECK(parts->tag == "v1");
  CHECK(parts->manifest_reference() == digest);
  CHECK(parts->name() == "localhost:5000/team/app");
  CHECK_FALSE(parse_reference("upper/CASE").ok());
  CHECK_FALSE(parse_reference("a@sha256:xyz").ok());
  CHECK_FALSE(parse_reference("").ok());
}

TEST_CASE("registry: platforms") {
  auto platform = parse_platform("linux/arm64/v8");
  REQUIRE(platform.ok());
  CHECK(platform->os == "linux");
  CHECK(platform->architecture == "arm64");
  CHECK(platform->variant == "v8");
  platform = parse_platform("arm64");
  REQUIRE(platform.ok());
  CHECK(platform_name(*platform) == "linux/arm64");
  CHECK_FALSE(parse_platform("linux//v8").ok());
  CHECK_FALSE(parse_platform("a/b/c/d").ok());
  CHECK_FALSE(parse_platform("").ok());
}

TEST_CASE("registry: chain IDs as the OCI spec defines them") {
  const std::string a = sha("a"), b = sha("b"), c = sha("c");
  CHECK(chain_id({}).value().empty());
  CHECK(chain_id({a}).value() == a);
  CHECK(chain_id({a, b}).value() == sha(a + " " + b));
  CHECK(chain_id({a, b, c}).value() == sha(sha(a + " " + b) + " " + c));
  CHECK_FALSE(chain_id({"sha256:short"}).ok());
}

namespace {

// An image made the way a pull makes one: blobs first, then the index entry.
Image put_image(ImageStore& store, const std::string& layer_text, const std::vector<std::string>& tags) {
  const std::string layer = small_layer("dir", layer_text);
  const std::string config = image_config({layer});
  const auto layer_digest = store.put_blob(layer);
  const auto config_digest = store.put_blob(config);
  REQUIRE((layer_digest.ok() && config_digest.ok()));
  const std::string manifest = formats::docker_manifest(
      {formats::kDockerConfig, *config_digest, config.size(), {}, {}},
      {{formats::kDockerLayer, *layer_digest, layer.size(), {}, {}}});
  const auto manifest_digest = store.put_blob(manifest);
  REQUIRE(manifest_digest.ok());
  auto image = store.add_image(*manifest_digest, tags, {"127.0.0.1:5000/app@" + *manifest_digest});
  REQUIRE(image.ok());
  return *image;
}

size_t blob_count(const ImageScratch& scratch) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(scratch.path() / "images/blobs/sha256")) ++count;
  return count;
}

}  // namespace

TEST_CASE("registry: a blob that does not match its digest is never stored") {
  ImageScratch scratch;
  auto store = scratch.store();
  const auto file = store.tmp_dir() / "download";
  write_file(file, "corrupted bytes");
  const auto put = store.put_blob_file(file, sha("the real bytes"));
  REQUIRE_FALSE(put.ok());
  CHECK(put.error().message.find("digest mismatch") != std::string::npos);
  CHECK_FALSE(fs::exists(file));
  CHECK(blob_count(scratch) == 0);
  write_file(file, "the real bytes");
  REQUIRE(store.put_blob_file(file, sha("the real bytes")).ok());
  CHECK(store.has_blob(sha("the real bytes")));
}

TEST_CASE("registry: add_image indexes only complete images, tags move, digests find them") {
  ImageScratch scratch;
  auto store = scratch.store();
  const Image first = put_image(store, "one", {"127.0.0.1:5000/app:1"});
  CHECK(first.tags == std::vector<std::string>{"127.0.0.1:5000/app:1"});
  REQUIRE(first.repo_digests.size() == 1);
  CHECK(store.find(first.repo_digests[0]).value().id == first.id);
  CHECK(store.find("127.0.0.1:5000/app:1@" + first.manifest_digest).value().id == first.id);

  // A manifest whose layer is missing is refused.
  const std::string lonely = formats::docker_manifest({formats::kDockerConfig, first.id, 10, {}, {}},
                                                      {{formats::kDockerLayer, sha("missing"), 7, {}, {}}});
  const auto lonely_digest = store.put_blob(lonely);
  REQUIRE(lonely_digest.ok());
  CHECK_FALSE(store.add_image(*lonely_digest, {"127.0.0.1:5000/app:broken"}).ok());

  const Image second = put_image(store, "two", {"127.0.0.1:5000/app:1"});
  CHECK(store.find("127.0.0.1:5000/app:1").value().id == second.id);
  CHECK(store.find(first.id).value().tags.empty());
  REQUIRE(store.tag(second, "127.0.0.1:5000/app:2").ok());
  CHECK(store.find("127.0.0.1:5000/app:2").value().id == second.id);
  CHECK_FALSE(store.tag(second, "127.0.0.1:5000/app@" + second.manifest_digest).ok());
}

TEST_CASE("registry: rmi untags, removes the last tag's image and its blobs, keeps what is in use") {
  ImageScratch scratch;
  auto store = scratch.store();
  const auto nobody = [](const std::string&) { return false; };
  const Image image = put_image(store, "one", {"127.0.0.1:5000/app:1", "127.0.0.1:5000/app:2"});
  CHECK(blob_count(scratch) == 3);

  // By id with two tags: must be forced.
  auto removed = store.remove(image.id.substr(7, 12), false, nobody);
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().message.find("must be forced") != std::string::npos);

  removed = store.remove("127.0.0.1:5000/app:1", false, nobody);
  REQUIRE(removed.ok());
  CHECK(removed->untagged == std::vector<std::string>{"127.0.0.1:5000/app:1"});
  CHECK(removed->deleted.empty());

  // The last tag of an image a container uses: refused, then only untagged with -f.
  const auto used = [&](const std::string& id) { return id == image.id; };
  removed = store.remove("127.0.0.1:5000/app:2", false, used);
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().message.find("a container is using it") != std::string::npos);
  removed = store.remove("127.0.0.1:5000/app:2", true, used);
  REQUIRE(removed.ok());
  CHECK(store.find(image.id).ok());
  CHECK(blob_count(scratch) == 3);

  // Untagged and no longer used: prune takes it and every blob.
  auto pruned = store.prune(false, nobody);
  REQUIRE(pruned.ok());
  CHECK(pruned->deleted.front() == image.id);
  CHECK(pruned->reclaimed_bytes > 0);
  CHECK(blob_count(scratch) == 0);
  CHECK_FALSE(store.find(image.id).ok());
}

TEST_CASE("registry: prune -a spares images in use, and collects orphans, partial downloads and staging") {
  ImageScratch scratch;
  auto store = scratch.store();
  const Image kept = put_image(store, "kept", {"127.0.0.1:5000/app:kept"});
  const Image gone = put_image(store, "gone", {"127.0.0.1:5000/app:gone"});
  REQUIRE(store.put_blob("an orphan nobody names").ok());
  write_file(store.partial_dir() / std::string(64, 'c'), "half a layer");
  // What a commit or load killed before its image was indexed leaves in tmp/.
  fs::create_directories(store.tmp_dir() / "0123456789abcdef");
  write_file(store.tmp_dir() / "0123456789abcdef" / "layer.tar.gz", "half a commit");
  write_file(store.tmp_dir() / "blob-fedcba9876543210", "half a blob");
  const auto pruned = store.prune(true, [&](const std::string& id) { return id == kept.id; });
  REQUIRE(pruned.ok());
  CHECK(store.find(kept.id).ok());
  CHECK_FALSE(store.find(gone.id).ok());
  CHECK_FALSE(store.has_blob(sha("an orphan nobody names")));
  CHECK(fs::is_empty(store.partial_dir()));
  CHECK(fs::is_empty(store.tmp_dir()));
  CHECK(blob_count(scratch) == 3);
}

TEST_CASE("registry: sizes read as Docker prints them") {
  CHECK(cli::human_size(0) == "0B");
  CHECK(cli::human_size(999) == "999B");
  CHECK(cli::human_size(1000) == "1kB");
  CHECK(cli::human_size(4'520'000) == "4.52MB");
  CHECK(cli::human_size(uint64_t{7} << 30) == "7.52GB");
}

TEST_CASE("registry: progress without a terminal is one line per change of status") {
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  cli::ProgressDisplay display(out, false);
  display.show({"aaaaaaaaaaaa", "Pulling fs layer", 0, 0});
  display.show({"aaaaaaaaaaaa", "Downloading", 10, 100});
  display.show({"aaaaaaaaaaaa", "Downloading", 50, 100});
  display.show({"aaaaaaaaaaaa", "Pull complete", 100, 100});
  display.line("Digest: sha256:x");
  std::rewind(out);
  char buffer[512] = {};
  const size_t n = std::fread(buffer, 1, sizeof buffer - 1, out);
  std::fclose(out);
  CHECK(std::string(buffer, n) == "aaaaaaaaaaaa: Pulling fs layer\naaaaaaaaaaaa: Pull complete\nDigest: sha256:x\n");
}

TEST_CASE("registry: progress on a terminal redraws its lines with a bar") {
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  cli::ProgressDisplay display(out, true);
  display.show({"aaaaaaaaaaaa", "Downloading", 50, 100});
  display.show({"aaaaaaaaaaaa", "Downloading", 100, 100});
  std::rewind(out);
  char buffer[1024] = {};
  const size_t n = std::fread(buffer, 1, sizeof buffer - 1, out);
  std::fclose(out);
  const std::string text(buffer, n);
  CHECK(text.find("\x1b[1A") != std::string::npos);  // the second draw went back up
  CHECK(text.find("[=========================>                        ]  50B/100B") != std::string::npos);
  CHECK(text.find("100B/100B") != std::string::npos);
}
