#include "runtime/image_commit.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "guest-init/protocol.hpp"
#include "runtime/image_blobs.hpp"
#include "tests/unit/image_test_support.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

using namespace hyper;
using namespace hyper::runtime;
using namespace hyper::testing;

namespace {

// A root filesystem tar as `hyper import` would get it.
std::string rootfs_tar() {
  TarWriter writer;
  writer.dir("bin/").file("bin/hello", "#!/bin/sh\necho hi\n", 0755).dir("etc/").file("etc/motd", "imported\n");
  return writer.finish();
}

Json stored_json(const ImageStore& store, const std::string& digest) {
  auto text = store.read_blob_text(digest);
  REQUIRE(text.ok());
  return Json::parse(*text);
}

size_t entries_in(const fs::path& dir) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir)) ++count;
  return count;
}

Result<Image> import_file(ImageStore& store, const fs::path& file, const NewImage& options) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return import_image(store, fd.get(), options);
}

Image load_base(ImageScratch& scratch, ImageStore& store, const std::string& layer) {
  write_file(scratch.path() / "base.tar", docker_archive({layer}, image_config({layer}), {"base:1"}));
  auto loaded = store.load(scratch.path() / "base.tar");
  INFO((loaded.ok() ? std::string() : loaded.error().message));
  REQUIRE(loaded.ok());
  return loaded->front();
}

// The agent's end of an `export`: answers hello and export, then streams `tar` as stdout
// frames and ends with `status` (and `error` on stderr).
class FakeAgent {
 public:
  FakeAgent(const fs::path& dir, std::string tar, int status, std::string error = {})
      : tar_(std::move(tar)), status_(status), error_(std::move(error)) {
    listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener_.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = (dir / "vsock.sock").string();
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_.get(), 1) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeAgent() { thread_.join(); }
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

 private:
  void serve() {
    UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) return;
    const timeval timeout{10, 0};
    ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string line;
    char c = 0;
    while (line.find('\n') == std::string::npos && ::read(conn.get(), &c, 1) == 1) line += c;
    if (line != "CONNECT 1024\n") return;
    send(conn.get(), "OK 1\n");
    agent::FrameDecoder decoder;
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(conn.get(), buffer, sizeof buffer);
      if (n <= 0) return;
      decoder.feed(buffer, static_cast<size_t>(n));
      while (auto item = decoder.next()) {
        if (!item->frame) return;
        const auto op = Json::parse(item->frame->payload).value("op", "");
        if (op == "hello") send(conn.get(), agent::encode_frame(agent::Kind::response, R"({"ok":true,"version":1})"));
        if (op == "export") {
          send(conn.get(), agent::encode_frame(agent::Kind::response, R"({"ok":true,"pid":7})"));
          stream(conn.get());
          return;
        }
      }
    }
  }
  void stream(int fd) {
    for (size_t at = 0; at < tar_.size(); at += agent::kMaxDataChunk)
      send(fd, agent::encode_frame(agent::Kind::stdout_data, std::string_view(tar_).substr(at, agent::kMaxDataChunk)));
    if (!error_.empty()) send(fd, agent::encode_frame(agent::Kind::stderr_data, error_));
    send(fd, agent::encode_frame(agent::Kind::exit, Json{{"status", status_}}.dump()));
  }
  static void send(int fd, const std::string& bytes) { (void)write_all(fd, bytes.data(), bytes.size(), "test"); }

  std::string tar_;
  int status_;
  std::string error_;
  UniqueFd listener_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("image commit: a layer is gzip-compressed as it streams in, hashed both ways") {
  ImageScratch scratch;
  // Bigger than one copy buffer, so the writer sees many chunks.
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 5);
  TarWriter tar;
  tar.file("big", big).file("small", "x");
  const std::string plain = tar.finish();

  auto writer = LayerBlobWriter::create(scratch.path());
  REQUIRE(writer.ok());
  for (size_t at = 0; at < plain.size(); at += 100000)
    REQUIRE(writer->write(plain.data() + at, std::min<size_t>(100000, plain.size() - at)).ok());
  CHECK(writer->plain_size() == plain.size());
  auto blob = writer->finish();
  REQUIRE(blob.ok());
  CHECK_FALSE(writer->finish().ok());
  const std::string gz = read_file(blob->path);
  CHECK(blob->digest == sha(gz));
  CHECK(blob->size == gz.size());
  CHECK(blob->diff_id == sha(plain));
  REQUIRE(gz.size() > 10);
  CHECK(static_cast<unsigned char>(gz[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(gz[1]) == 0x8b);
  CHECK(gz.substr(4, 4) == std::string(4, '\0'));  // no timestamp
  std::string unpacked;
  REQUIRE(blobs::for_each_plain_chunk(blob->path, blobs::Compression::gzip, [&](const uint8_t* data, size_t size) {
            unpacked.append(reinterpret_cast<const char*>(data), size);
            return Status{};
          }).ok());
  CHECK(unpacked == plain);

  // The same layer always gives the same blob.
  auto again = LayerBlobWriter::create(scratch.path());
  REQUIRE(again.ok());
  REQUIRE(again->write(plain.data(), plain.size()).ok());
  auto second = again->finish();
  REQUIRE(second.ok());
  CHECK(second->digest == blob->digest);
  CHECK(second->path != blob->path);
}

TEST_CASE("image import: a plain, gzip or zstd rootfs tar becomes a one-layer image") {
  ImageScratch scratch;
  auto store = scratch.store();
  const std::string tar = rootfs_tar();
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"plain", tar}, {"gzip", compress(tar, ARCHIVE_FILTER_GZIP)}, {"zstd", compress(tar, ARCHIVE_FILTER_ZSTD)}};
  std::string layer_digest;
  for (const auto& input : inputs) {
    const std::string& name = input.first;  // structured bindings cannot be captured (clang)
    const std::string& bytes = input.second;
    CAPTURE(name);
    write_file(scratch.path() / name, bytes);
    NewImage options;
    options.comment = "Imported from -";
    options.changes = {R"(CMD ["/bin/hello"])", "ENV A=1"};
    options.tags = {"docker.io/library/imported:" + name};
    auto image = import_file(store, scratch.path() / name, options);
    INFO((image.ok() ? std::string() : image.error().message));
    REQUIRE(image.ok());
    CHECK(image->tags == options.tags);
    REQUIRE(image->layers.size() == 1);
    CHECK(image->layers[0].media_type == formats::kDockerLayerGzip);
    CHECK(image->diff_ids == std::vector<std::string>{sha(tar)});
    CHECK(plain_blob(store, image->layers[0]) == tar);
    if (layer_digest.empty()) layer_digest = image->layers[0].digest;
    CHECK(image->layers[0].digest == layer_digest);  // one blob, however it came
    CHECK(image->config.cmd == std::vector<std::string>{"/bin/hello"});
    CHECK(image->config.env == std::vector<std::string>{"A=1"});

    const auto config = stored_json(store, image->id);
    CHECK(config["architecture"] == "amd64");
    CHECK(config["os"] == "linux");
    CHECK(config["comment"] == "Imported from -");
    CHECK_FALSE(config.contains("container"));
    CHECK(config["created"].get<std::string>().back() == 'Z');
    REQUIRE(config["history"].size() == 1);
    CHECK(config["history"][0]["comment"] == "Imported from -");
    CHECK(config["history"][0]["created"] == config["created"]);
    const auto manifest = stored_json(store, image->manifest_digest);
    CHECK(manifest["mediaType"] == formats::kDockerManifest);
    CHECK(manifest["config"]["mediaType"] == formats::kDockerConfig);

    auto found = store.find("imported:" + name);
    REQUIRE(found.ok());
    CHECK(found->id == image->id);
  }
  CHECK(entries_in(store.tmp_dir()) == 0);
}

TEST_CASE("image import: what is not a tar, and bad changes, store nothing") {
  ImageScratch scratch;
  auto store = scratch.store();
  NewImage options;
  write_file(scratch.path() / "junk", std::string(2048, 'j'));
  auto junk = import_file(store, scratch.path() / "junk", options);
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.error().message.find("not a tar archive") != std::string::npos);
  write_file(scratch.path() / "junk.gz", compress(std::string(2048, 'j'), ARCHIVE_FILTER_GZIP));
  CHECK_FALSE(import_file(store, scratch.path() / "junk.gz", options).ok());
  write_file(scratch.path() / "empty", "");
  auto empty = import_file(store, scratch.path() / "empty", options);
  REQUIRE_FALSE(empty.ok());
  INFO(empty.error().message);
  CHECK(empty.error().message.find("empty") != std::string::npos);
  write_file(scratch.path() / "cut.gz", compress(rootfs_tar(), ARCHIVE_FILTER_GZIP).substr(0, 40));
  CHECK_FALSE(import_file(store, scratch.path() / "cut.gz", options).ok());

  write_file(scratch.path() / "good", rootfs_tar());
  options.changes = {"RUN make"};
  auto refused = import_file(store, scratch.path() / "good", options);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == Errc::invalid_argument);
  CHECK(refused.error().message == "dockerfile instruction not supported with --change: RUN");

  auto images = store.list();
  REQUIRE(images.ok());
  CHECK(images->empty());
  CHECK(entries_in(store.tmp_dir()) == 0);
  CHECK(entries_in(scratch.path() / "images/blobs/sha256") == 0);
}

TEST_CASE("image commit: a layer on top of the base image, its config kept and changed") {
  ImageScratch scratch;
  auto store = scratch.store();
  const std::string base_layer = small_layer("base", "base\n");
  const Image base = load_base(scratch, store, base_layer);
  const std::string new_layer = small_layer("new", "new\n");

  const auto lock = store.writer_lock();
  REQUIRE(lock.ok());
  auto writer = LayerBlobWriter::create(store.tmp_dir());
  REQUIRE(writer.ok());
  REQUIRE(writer->write(new_layer.data(), new_layer.size()).ok());
  auto blob = writer->finish();
  REQUIRE(blob.ok());

  ContainerConfig container;
  container.cmd = {"sleep", "1000"};
  container.env = {"PATH=/usr/bin:/bin", "KEEP=1", "RUN=1"};
  container.working_dir = "/w";
  container.user = "1000";
  NewImage options;
  options.author = "Jane <jane@example.com>";
  options.comment = "msg";
  options.created_by = "sleep 1000";
  options.container = std::string(64, 'c');
  options.run_config = run_config_of(container);
  options.changes = {R"(CMD ["cat", "/new"])", "LABEL new=1"};
  options.tags = {"docker.io/library/committed:1"};
  auto image = build_image(store, base, *blob, options);
  INFO((image.ok() ? std::string() : image.error().message));
  REQUIRE(image.ok());
  CHECK_FALSE(fs::exists(blob->path));  // moved into the store

  REQUIRE(image->layers.size() == 2);
  CHECK(image->layers[0].digest == base.layers[0].digest);
  CHECK(image->layers[0].media_type == formats::kDockerLayer);
  CHECK(image->layers[1].digest == blob->digest);
  CHECK(image->layers[1].media_type == formats::kDockerLayerGzip);
  CHECK(image->diff_ids == std::vector<std::string>{sha(base_layer), sha(new_layer)});
  CHECK(image->config.cmd == std::vector<std::string>{"cat", "/new"});
  CHECK(image->config.env == container.env);
  CHECK(image->config.working_dir == "/w");
  CHECK(image->config.user == "1000");
  CHECK(image->tags == options.tags);

  const auto config = stored_json(store, image->id);
  CHECK(config["variant"] == "custom-field-kept");
  CHECK(config["author"] == options.author);
  CHECK(config["container"] == options.container);
  CHECK_FALSE(config.contains("comment"));
  CHECK(config["config"]["Labels"] == Json{{"base", "yes"}, {"new", "1"}});
  CHECK(config["config"]["Healthcheck"] == Json{{"Test", {"NONE"}}});
  CHECK(config["config"]["Entrypoint"].is_null());
  REQUIRE(config["history"].size() == 2);
  CHECK(config["history"][0]["created_by"] == "base layer");
  const auto& entry = config["history"][1];
  CHECK(entry["created_by"] == "sleep 1000");
  CHECK(entry["author"] == options.author);
  CHECK(entry["comment"] == "msg");
  CHECK(entry["created"] == config["created"]);

  // The layers stream back as the builder VM will read them, diff_ids checked.
  const auto stream_path = scratch.path() / "stream";
  UniqueFd stream(::open(stream_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(stream.valid());
  auto spans = store.write_layer_stream(*image, stream.get());
  REQUIRE(spans.ok());
  CHECK(read_file(stream_path).substr((*spans)[1].offset, (*spans)[1].size) == new_layer);

  // The base is untouched and keeps its tag.
  auto still = store.find("base:1");
  REQUIRE(still.ok());
  CHECK(still->id == base.id);
}

TEST_CASE("image commit: a running container's export, through its agent") {
  ImageScratch scratch;
  auto store = scratch.store();
  const Image base = load_base(scratch, store, small_layer("base", "base\n"));
  Container container;
  container.id = std::string(64, 'a');
  container.dir = scratch.path() / "c";
  fs::create_directories(container.dir);
  NewImage options;
  options.tags = {"docker.io/library/from-agent:latest"};

  SUBCASE("a whole layer") {
    // Several frames' worth, so the tar arrives in pieces.
    TarWriter writer;
    writer.file("root/data", std::string(200000, 'd')).file("etc/.wh.motd", "");
    const std::string layer = writer.finish();
    std::optional<FakeAgent> agent;
    agent.emplace(container.dir, layer, 0);
    auto image = commit_container(store, container, base, options);
    agent.reset();
    INFO((image.ok() ? std::string() : image.error().message));
    REQUIRE(image.ok());
    REQUIRE(image->layers.size() == 2);
    CHECK(plain_blob(store, image->layers[1]) == layer);
    CHECK(image->diff_ids.back() == sha(layer));
  }
  SUBCASE("an export that fails stores nothing") {
    std::optional<FakeAgent> agent;
    agent.emplace(container.dir, small_layer("partial", "x"), 1, "export: open /upper: No such file or directory\n");
    auto image = commit_container(store, container, base, options);
    agent.reset();
    REQUIRE_FALSE(image.ok());
    CHECK(image.error().message ==
          "exporting the container's writable layer failed: export: open /upper: No such file or directory");
    auto images = store.list();
    REQUIRE(images.ok());
    CHECK(images->size() == 1);
  }
  SUBCASE("a bad change is refused before the agent is asked") {
    options.changes = {"COPY a b"};
    auto image = commit_container(store, container, base, options);
    REQUIRE_FALSE(image.ok());
    CHECK(image.error().code == Errc::invalid_argument);
  }
  SUBCASE("no agent") {
    auto image = commit_container(store, container, base, options);
    REQUIRE_FALSE(image.ok());
    CHECK(image.error().message.find("vsock.sock") != std::string::npos);
  }
  CHECK(entries_in(store.tmp_dir()) == 0);
}

TEST_CASE("image commit: a stopped container that never got a scratch disk commits an empty layer") {
  ImageScratch scratch;
  auto store = scratch.store();
  const Image base = load_base(scratch, store, small_layer("base", "base\n"));
  Container container;
  container.id = std::string(64, 'b');
  container.dir = scratch.path() / "c";
  container.state.status = ContainerStatus::exited;
  fs::create_directories(container.dir);
  auto claim = FileLock::acquire(container.dir / "vm.lock");
  REQUIRE(claim.ok());
  NewImage options;
  options.tags = {"docker.io/library/never-ran:latest"};
  // Nothing to read, so no VM is booted: the layer is an empty tar.
  auto image = commit_stopped_container(store, container, *claim, base, options);
  INFO((image.ok() ? std::string() : image.error().message));
  REQUIRE(image.ok());
  REQUIRE(image->layers.size() == 2);
  const std::string empty_tar(1024, '\0');
  CHECK(plain_blob(store, image->layers[1]) == empty_tar);
  CHECK(image->diff_ids.back() == sha(empty_tar));
  CHECK(entries_in(store.tmp_dir()) == 0);
}
