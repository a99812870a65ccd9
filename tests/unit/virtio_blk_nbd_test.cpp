// virtio-blk on an NBD export, against a real server: Debian's nbdkit on a Unix socket
// in a temporary directory (no network), serving a raw image the test then reads back.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/blk_disk.hpp"
#include "virtio/blk.hpp"
#include "vmm/clock.hpp"

extern char** environ;

using namespace hyper;
using namespace hyper::virtio;
using hyper::virtio::testing::Disk;
using hyper::virtio::testing::Guest;
using hyper::virtio::testing::kData;
using hyper::virtio::testing::kHeader;
using hyper::virtio::testing::kStatus;

namespace {

constexpr uint8_t kOk = 0, kIoErr = 1;

// nbdkit serving `image` (file plugin) on a Unix socket until the object dies; its log
// filter writes a line per NBD command to log_path().
class NbdServer {
 public:
  explicit NbdServer(const std::string& image, bool read_only = false) {
    char dir[] = "/tmp/hyper-nbd-test-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    dir_ = dir;
    socket_ = dir_ + "/nbd.sock";
    const std::string pidfile = dir_ + "/nbdkit.pid";
    std::vector<std::string> args = {"nbdkit", "-f", "-U", socket_, "-P", pidfile};
    if (read_only) args.push_back("-r");
    args.insert(args.end(), {"--filter=log", "file", image, "logfile=" + log_path()});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, "nbdkit", nullptr, nullptr, argv.data(), environ);
    REQUIRE_MESSAGE(rc == 0, "nbdkit is needed for these tests (Debian package nbdkit)");
    // nbdkit writes its pid file once the socket listens.
    for (int i = 0; i < 500 && !std::filesystem::exists(pidfile); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE_MESSAGE(std::filesystem::exists(pidfile), "nbdkit did not start listening within 5 s");
  }
  ~NbdServer() {
    stop(SIGKILL);
    std::filesystem::remove_all(dir_);
  }
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  [[nodiscard]] std::string uri() const { return "nbd+unix:///?socket=" + socket_; }
  [[nodiscard]] std::string log_path() const { return dir_ + "/commands.log"; }
  // The log's lines that name `command` (Read, Write, Flush).
  [[nodiscard]] std::vector<std::string> commands(const std::string& command) const {
    std::vector<std::string> lines;
    std::ifstream log(log_path());
    for (std::string line; std::getline(log, line);)
      if (line.find(" " + command + " id=") != std::string::npos) lines.push_back(line);
    return lines;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  // SIGSTOP lands when each thread next runs: under load, later than kill() returns.
  void pause_until_stopped() const {
    signal(SIGSTOP);
    for (int i = 0; i < 500 && !all_threads_stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE_MESSAGE(all_threads_stopped(), "nbdkit did not stop within 5 s of SIGSTOP");
  }
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string dir_, socket_;
  pid_t pid_ = -1;

  [[nodiscard]] bool all_threads_stopped() const {
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid_) + "/task";
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const auto end_of_name = line.rfind(')');
      if (end_of_name == std::string::npos || end_of_name + 2 >= line.size() || line[end_of_name + 2] != 'T') return false;
    }
    return !ec;
  }
};

const DescriptorChain kRead{0, {{kHeader, 16}}, {{kData, 512}, {kData + 0x1000, 512}, {kStatus, 1}}};
const DescriptorChain kWrite{0, {{kHeader, 16}, {kData, 512}, {kData + 0x1000, 1024}}, {{kStatus, 1}}};
const DescriptorChain kFlush{0, {{kHeader, 16}}, {{kStatus, 1}}};

BlkOptions nbd_disk(const NbdServer& server, std::vector<std::string>* log = nullptr, uint32_t timeout_ms = 30000) {
  BlkOptions options{.path = server.uri(), .read_only = false, .serial = "nbd", .io_thread = false};
  options.network_timeout_ms = timeout_ms;
  if (log) options.log = [log](const std::string& line) { log->push_back(line); };
  return options;
}

}  // namespace

TEST_CASE("virtio-blk on NBD: reads, multi-buffer writes (one command each) and flushes reach the export") {
  Disk image;  // sector n holds the byte n
  NbdServer server(image.path);
  auto blk = Blk::open(nbd_disk(server)).value();
  CHECK(blk->capacity_sectors() == 64);
  CHECK(blk->wants_io_thread());  // never on the event loop, whatever was asked
  CHECK((blk->device_features() & (1ULL << 9)) != 0);  // the file plugin flushes: VIRTIO_BLK_F_FLUSH
  CHECK(blk->sockets().size() == 1);
  Guest g;

  g.header(0, 7);
  CHECK(blk->serve(g.memory, kRead) == 1025);
  CHECK(g.status() == kOk);
  CHECK(g.memory.read_obj<uint8_t>(kData).value() == 7);
  CHECK(g.memory.read_obj<uint8_t>(kData + 0x1000).value() == 8);

  g.header(1, 20);  // three sectors from two buffers
  REQUIRE(g.memory.fill(kData, 512, 0xa1).ok());
  REQUIRE(g.memory.fill(kData + 0x1000, 1024, 0xb2).ok());
  CHECK(blk->serve(g.memory, kWrite) == 1);
  CHECK(g.status() == kOk);
  g.header(4, 0);
  blk->serve(g.memory, kFlush);
  CHECK(g.status() == kOk);
  const int fd = ::open(image.path.c_str(), O_RDONLY);
  uint8_t bytes[3] = {};
  REQUIRE(::pread(fd, &bytes[0], 1, 20 * 512) == 1);
  REQUIRE(::pread(fd, &bytes[1], 1, 21 * 512 + 511) == 1);
  REQUIRE(::pread(fd, &bytes[2], 1, 22 * 512 + 5) == 1);
  ::close(fd);
  CHECK(bytes[0] == 0xa1);
  CHECK(bytes[1] == 0xb2);
  CHECK(bytes[2] == 0xb2);
  // Two guest buffers, one NBD command each way: the read of 2 sectors, the write of 3.
  const auto writes = server.commands("Write");
  REQUIRE(writes.size() == 1);
  CHECK(writes[0].find("offset=0x2800 count=0x600") != std::string::npos);
  const auto reads = server.commands("Read");
  REQUIRE(reads.size() >= 1);  // libnbd may read the first sector when it connects
  CHECK(reads.back().find("offset=0xe00 count=0x400") != std::string::npos);
  CHECK(server.commands("Flush").size() == 1);

  g.header(0, 63);  // past the end: refused by the device before the server sees it
  blk->serve(g.memory, kRead);
  CHECK(g.status() == kIoErr);
  CHECK(blk->describe().find(": connected") != std::string::npos);
}

TEST_CASE("virtio-blk on NBD: a server that goes away gives I/O errors at once and is given up for good") {
  Disk image;
  NbdServer server(image.path);
  std::vector<std::string> log;
  auto blk = Blk::open(nbd_disk(server, &log)).value();
  Guest g;
  g.header(0, 1);
  blk->serve(g.memory, kRead);
  REQUIRE(g.status() == kOk);

  server.stop(SIGKILL);
  const uint64_t start = monotonic_ns();
  g.header(0, 1);
  blk->serve(g.memory, kRead);
  CHECK(g.status() == kIoErr);
  g.header(1, 2);
  blk->serve(g.memory, kWrite);
  CHECK(g.status() == kIoErr);
  g.header(4, 0);
  blk->serve(g.memory, kFlush);
  CHECK(g.status() == kIoErr);
  CHECK(monotonic_ns() - start < 5'000'000'000ull);  // no waiting for the timeout
  REQUIRE(log.size() == 1);  // said once, not per request
  CHECK(log[0].find("given up") != std::string::npos);
  CHECK(blk->describe().find("server given up") != std::string::npos);
}

TEST_CASE("virtio-blk on NBD: a server that stops answering fails the request after the timeout") {
  Disk image;
  NbdServer server(image.path);
  std::vector<std::string> log;
  auto blk = Blk::open(nbd_disk(server, &log, 400)).value();
  Guest g;
  server.pause_until_stopped();
  const uint64_t start = monotonic_ns();
  g.header(0, 3);
  blk->serve(g.memory, kRead);
  const uint64_t waited_ms = (monotonic_ns() - start) / 1'000'000;
  CHECK(g.status() == kIoErr);
  CHECK(waited_ms >= 400);
  CHECK(waited_ms < 5000);
  REQUIRE(log.size() == 1);
  CHECK(log[0].find("did not answer within 400 ms") != std::string::npos);
  // Given up: the next request fails without waiting, even once the server wakes.
  server.signal(SIGCONT);
  const uint64_t again = monotonic_ns();
  g.header(0, 3);
  blk->serve(g.memory, kRead);
  CHECK(g.status() == kIoErr);
  CHECK(monotonic_ns() - again < 100'000'000ull);
}

TEST_CASE("virtio-blk on NBD: bad URIs, absent servers and read-only exports are refused when opened") {
  Disk image;
  {
    NbdServer read_only(image.path, true);
    auto rw = Blk::open(nbd_disk(read_only));
    REQUIRE_FALSE(rw.ok());
    CHECK(rw.error().message.find("read-only (open it with ro)") != std::string::npos);
    auto options = nbd_disk(read_only);
    options.read_only = true;
    auto ro = Blk::open(options);
    REQUIRE(ro.ok());
    CHECK(((*ro)->device_features() & (1ULL << 5)) != 0);
  }
  auto absent = Blk::open({.path = "nbd+unix:///?socket=/nonexistent/nbd.sock", .read_only = false, .serial = {}});
  REQUIRE_FALSE(absent.ok());
  CHECK(absent.error().message.find("connect to nbd+unix:///?socket=/nonexistent/nbd.sock") != std::string::npos);
  CHECK_FALSE(is_nbd_uri("nbds://127.0.0.1/x"));  // TLS is not offered
  CHECK_FALSE(is_nbd_uri("/var/lib/disk.img"));
  CHECK(is_nbd_uri("nbd://127.0.0.1:10809/export"));
}
