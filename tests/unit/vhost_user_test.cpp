// The vhost-user front-end and the virtio-fs device against a fake back-end on a
// socketpair (no /dev/kvm, no virtiofsd): the messages and their order, the memory table
// with fds the back-end can map, ring addresses, kick and call eventfds, and replies that
// are malformed, short, late or missing.
#include <doctest/doctest.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "virtio/fs.hpp"
#include "virtio/vhost_user.hpp"
#include "vmm/event_loop.hpp"

using namespace hyper;
using namespace hyper::virtio;
using namespace hyper::virtio::vhost_user;

namespace {

constexpr uint64_t kBackendFeatures = kFeatureVersion1 | kFeatureProtocolFeatures | kFeatureRingEventIdx |
                                      kFeatureRingIndirectDesc | (1ULL << 26) /* VHOST_F_LOG_ALL */;
constexpr uint64_t kBackendProtocol = 1ULL << 0 /* MQ */ | kProtocolFeatureReplyAck | 1ULL << 9 /* CONFIG */;

struct Message {
  Header header{};
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;

  [[nodiscard]] uint32_t request() const { return header.request; }
  template <class T>
  [[nodiscard]] T as() const {
    T value{};
    REQUIRE(payload.size() >= sizeof value);
    std::memcpy(&value, payload.data(), sizeof value);
    return value;
  }
};

std::pair<UniqueFd, UniqueFd> socket_pair() {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Reads one request as a back-end does: the header with its fds, then the payload.
bool read_message(int fd, Message& m) {
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
  iovec iov{&m.header, sizeof m.header};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(fd, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC) != sizeof m.header) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
      m.fds.emplace_back(received);
    }
  }
  m.payload.resize(m.header.size);
  return m.header.size == 0 ||
         ::recv(fd, m.payload.data(), m.payload.size(), MSG_WAITALL) == static_cast<ssize_t>(m.payload.size());
}

void write_all(int fd, const void* data, size_t size) {
  REQUIRE(::send(fd, data, size, MSG_NOSIGNAL) == static_cast<ssize_t>(size));
}

template <class T>
void reply(int fd, Request request, const T& payload, uint32_t flags = kVersion | kFlagReply) {
  const Header h{static_cast<uint32_t>(request), flags, sizeof payload};
  uint8_t bytes[sizeof h + sizeof payload];
  std::memcpy(bytes, &h, sizeof h);
  std::memcpy(bytes + sizeof h, &payload, sizeof payload);
  write_all(fd, bytes, sizeof bytes);
}

// A back-end that answers what libvhost-user answers: its features, the state of a
// stopped ring, and an acknowledgement (0) for whatever asks for one. It keeps every
// message, fds included, for the test to look at.
class FakeBackend {
 public:
  explicit FakeBackend(UniqueFd socket, uint64_t features = kBackendFeatures, uint64_t protocol = kBackendProtocol)
      : socket_(std::move(socket)), features_(features), protocol_(protocol), thread_([this] { serve(); }) {}
  ~FakeBackend() { hang_up(); }

  void hang_up() {
    if (socket_.valid()) ::shutdown(socket_.get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }
  std::vector<Message> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(received_, {});
  }
  std::atomic<uint32_t> vring_base_answer{7};

 private:
  void serve() {
    for (;;) {
      Message m;
      if (!read_message(socket_.get(), m)) return;
      const uint32_t request = m.request();
      const uint32_t flags = m.header.flags;
      VringState state{};
      if (request == static_cast<uint32_t>(Request::get_vring_base)) state = m.as<VringState>();
      {
        std::lock_guard lock(mutex_);
        received_.push_back(std::move(m));
      }
      const uint64_t ok = 0;
      if (request == static_cast<uint32_t>(Request::get_features)) {
        reply(socket_.get(), Request::get_features, features_);
      } else if (request == static_cast<uint32_t>(Request::get_protocol_features)) {
        reply(socket_.get(), Request::get_protocol_features, protocol_);
      } else if (request == static_cast<uint32_t>(Request::get_vring_base)) {
        reply(socket_.get(), Request::get_vring_base, VringState{state.index, vring_base_answer.load()});
      } else if (flags & kFlagNeedReply) {
        reply(socket_.get(), static_cast<Request>(request), ok);
      }
    }
  }

  UniqueFd socket_;
  uint64_t features_, protocol_;
  std::mutex mutex_;
  std::vector<Message> received_;
  std::thread thread_;
};

std::vector<uint32_t> requests_of(const std::vector<Message>& messages) {
  std::vector<uint32_t> ids;
  for (const auto& m : messages) ids.push_back(m.request());
  return ids;
}

constexpr uint32_t id(Request r) { return static_cast<uint32_t>(r); }

// Guest RAM as the machine makes it when a vhost-user device exists, and two queues'
// rings in it, as a driver would lay them out.
constexpr uint64_t kRamBytes = 4 << 20;
constexpr uint16_t kRingSize = 64;
QueueLayout ring_layout(uint32_t q) {
  const uint64_t base = 0x10000 * (q + 1);
  return {kRingSize, base, base + 16 * kRingSize, base + 0x1000 + 16 * kRingSize, true};
}

GuestMemory shared_memory() {
  const RegionSpec spec[] = {{0, kRamBytes}};
  auto memory = GuestMemory::create(spec, false, MemoryBacking::shared_memfd);
  REQUIRE(memory.ok());
  return std::move(memory).value();
}

struct Interrupts {
  std::atomic<int> used{0};
  std::atomic<int> needs_reset{0};
};

Activation activation_for(const GuestMemory& memory, Interrupts& irq, uint64_t features) {
  Activation a{&memory, features, {}, [&irq] { ++irq.used; }, [&irq] { ++irq.needs_reset; }};
  for (uint32_t q = 0; q < Fs::kQueues; ++q) {
    auto queue = Queue::create(memory, ring_layout(q));
    REQUIRE(queue.ok());
    a.queues.push_back(std::move(queue).value());
  }
  return a;
}

// A virtio-fs device connected to a fake back-end.
struct FsRig {
  explicit FsRig(uint32_t timeout_ms = 2000) {
    auto [ours, theirs] = socket_pair();
    backend = std::make_unique<FakeBackend>(std::move(theirs));
    FsOptions options;
    options.socket_fd = ours.get();  // dup'ed by connect
    options.tag = "hostshare";
    options.reply_timeout_ms = timeout_ms;
    options.log = [this](const std::string& line) {
      std::lock_guard lock(log_mutex);
      log += line + "\n";
    };
    auto device = Fs::connect(options);
    REQUIRE_MESSAGE(device.ok(), (device.ok() ? "" : device.error().message));
    fs = *device;
  }
  GuestMemory memory = shared_memory();
  Interrupts irq;
  std::unique_ptr<FakeBackend> backend;
  std::shared_ptr<Fs> fs;
  std::mutex log_mutex;
  std::string log;
};

uint64_t read_eventfd(int fd) {
  uint64_t value = 0;
  return ::read(fd, &value, sizeof value) == sizeof value ? value : 0;
}

void signal_eventfd(int fd) {
  const uint64_t one = 1;
  REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
}

size_t open_fds() {
  size_t count = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++count;
    ::closedir(d);
  }
  return count;
}

// Runs `loop` until `done()` or about 2 s have passed.
template <class Done>
void run_loop_until(EventLoop& loop, Done done) {
  for (int i = 0; i < 200 && !done(); ++i) REQUIRE(loop.run_until(done, 10).ok());
}

}  // namespace

TEST_CASE("vhost-user: the opening reads features, negotiates only REPLY_ACK and takes ownership") {
  auto [ours, theirs] = socket_pair();
  FakeBackend backend(std::move(theirs));
  auto frontend = Frontend::adopt(std::move(ours));
  REQUIRE(frontend.ok());
  auto features = frontend->open_session();
  REQUIRE(features.ok());
  CHECK(*features == kBackendFeatures);
  CHECK(frontend->reply_ack());
  backend.hang_up();
  const auto messages = backend.take();
  REQUIRE(requests_of(messages) == std::vector<uint32_t>{id(Request::get_features), id(Request::get_protocol_features),
                                                         id(Request::set_protocol_features), id(Request::set_owner)});
  for (const auto& m : messages) CHECK((m.header.flags & kVersionMask) == kVersion);
  CHECK(messages[0].header.size == 0);
  CHECK(messages[2].as<uint64_t>() == kProtocolFeatureReplyAck);
  CHECK_FALSE((messages[2].header.flags & kFlagNeedReply));  // it switches acks on itself
  CHECK((messages[3].header.flags & kFlagNeedReply));        // acknowledged from then on
  CHECK(messages[3].header.size == 0);
}

TEST_CASE("vhost-user: without protocol features there is no negotiation and no acknowledgement") {
  auto [ours, theirs] = socket_pair();
  FakeBackend backend(std::move(theirs), kFeatureVersion1, 0);
  auto frontend = Frontend::adopt(std::move(ours));
  REQUIRE(frontend.ok());
  REQUIRE(frontend->open_session().ok());
  CHECK_FALSE(frontend->reply_ack());
  REQUIRE(frontend->set_vring_num(1, 128).ok());
  backend.hang_up();
  const auto messages = backend.take();
  REQUIRE(requests_of(messages) ==
          std::vector<uint32_t>{id(Request::get_features), id(Request::set_owner), id(Request::set_vring_num)});
  CHECK_FALSE((messages[2].header.flags & kFlagNeedReply));
  const auto state = messages[2].as<VringState>();
  CHECK(state.index == 1);
  CHECK(state.num == 128);
}

TEST_CASE("vhost-user: virtio-fs hands the back-end guest memory it can map, the rings, and working kick and call fds") {
  FsRig rig;
  CHECK(rig.fs->device_type() == 26);
  CHECK(rig.fs->device_features() == (kFeatureVersion1 | kFeatureRingEventIdx | kFeatureRingIndirectDesc));
  CHECK(rig.fs->queue_max_sizes() == std::vector<uint16_t>{Fs::kQueueSize, Fs::kQueueSize});
  (void)rig.backend->take();  // the opening, checked above

  const char pattern[] = "guest bytes at 0x300000";
  REQUIRE(rig.memory.write(0x300000, {reinterpret_cast<const uint8_t*>(pattern), sizeof pattern}).ok());
  const uint64_t driver_features = kFeatureVersion1 | kFeatureRingEventIdx;
  REQUIRE(rig.fs->activate(activation_for(rig.memory, rig.irq, driver_features)).ok());
  auto messages = rig.backend->take();

  std::vector<uint32_t> expected{id(Request::set_features), id(Request::set_mem_table)};
  for (int q = 0; q < 2; ++q) {
    for (Request r : {Request::set_vring_num, Request::set_vring_base, Request::set_vring_addr, Request::set_vring_call,
                      Request::set_vring_kick})
      expected.push_back(id(r));
  }
  expected.push_back(id(Request::set_vring_enable));
  expected.push_back(id(Request::set_vring_enable));
  REQUIRE(requests_of(messages) == expected);
  for (const auto& m : messages) CHECK((m.header.flags & kFlagNeedReply));

  CHECK(messages[0].as<uint64_t>() == (driver_features | kFeatureProtocolFeatures));

  SUBCASE("the memory table: our mapping's address, and a memfd that maps to the guest's bytes") {
    const Message& table = messages[1];
    REQUIRE(table.header.size == 8 + sizeof(MemoryRegionEntry));
    CHECK(table.as<uint32_t>() == 1);
    MemoryRegionEntry entry{};
    std::memcpy(&entry, table.payload.data() + 8, sizeof entry);
    CHECK(entry.guest_phys_addr == 0);
    CHECK(entry.memory_size == kRamBytes);
    CHECK(entry.userspace_addr == reinterpret_cast<uint64_t>(rig.memory.regions()[0].mapping.data()));
    CHECK(entry.mmap_offset == 0);
    REQUIRE(table.fds.size() == 1);
    // As a back-end does it: map size + offset from the start of the fd.
    void* p = ::mmap(nullptr, entry.memory_size + entry.mmap_offset, PROT_READ | PROT_WRITE, MAP_SHARED,
                     table.fds[0].get(), 0);
    REQUIRE(p != MAP_FAILED);
    auto* backend_view = static_cast<uint8_t*>(p) + entry.mmap_offset;
    CHECK(std::memcmp(backend_view + 0x300000, pattern, sizeof pattern) == 0);
    backend_view[0x300100] = 0x5a;  // what the back-end writes, the guest reads
    CHECK(rig.memory.read_obj<uint8_t>(0x300100).value() == 0x5a);
    ::munmap(p, entry.memory_size + entry.mmap_offset);
  }

  SUBCASE("each ring: its size, base 0, and its addresses in our address space") {
    for (uint32_t q = 0; q < 2; ++q) {
      CAPTURE(q);
      const size_t first = 2 + q * 5;
      const auto num = messages[first].as<VringState>();
      CHECK(num.index == q);
      CHECK(num.num == kRingSize);
      const auto base = messages[first + 1].as<VringState>();
      CHECK(base.index == q);
      CHECK(base.num == 0);
      const auto address = messages[first + 2].as<VringAddress>();
      const QueueLayout layout = ring_layout(q);
      CHECK(address.index == q);
      CHECK(address.flags == 0);
      CHECK(address.desc == reinterpret_cast<uint64_t>(rig.memory.slice(layout.desc_table, 1).value().data()));
      CHECK(address.avail == reinterpret_cast<uint64_t>(rig.memory.slice(layout.avail_ring, 1).value().data()));
      CHECK(address.used == reinterpret_cast<uint64_t>(rig.memory.slice(layout.used_ring, 1).value().data()));
      CHECK(address.log == 0);
      CHECK(messages[first + 3].as<uint64_t>() == q);  // call: the ring, with an fd
      CHECK(messages[first + 3].fds.size() == 1);
      CHECK(messages[first + 4].as<uint64_t>() == q);  // kick
      CHECK(messages[first + 4].fds.size() == 1);
    }
    CHECK(messages[12].as<VringState>().num == 1);  // enabled
    CHECK(messages[13].as<VringState>().index == 1);
  }

  SUBCASE("a guest kick reaches the back-end's kick fd; its call becomes the used-buffer interrupt") {
    const int backend_kick = messages[2 + 5 + 4].fds[0].get();  // queue 1, the request queue
    const int backend_call = messages[2 + 5 + 3].fds[0].get();
    signal_eventfd(rig.fs->kick_fds()[1]);  // what KVM's ioeventfd does on a QueueNotify write of 1
    CHECK(read_eventfd(backend_kick) == 1);
    rig.fs->queue_notify(1);  // a kick that came as an MMIO exit instead
    CHECK(read_eventfd(backend_kick) == 1);

    auto loop = EventLoop::create();
    REQUIRE(loop.ok());
    REQUIRE(rig.fs->attach(*loop).ok());
    signal_eventfd(backend_call);
    run_loop_until(*loop, [&] { return rig.irq.used.load() > 0; });
    CHECK(rig.irq.used == 1);
    CHECK(rig.irq.needs_reset == 0);
  }

  SUBCASE("a reset disables and stops every ring; the next activation starts them afresh") {
    rig.fs->reset();
    const auto stop = rig.backend->take();
    REQUIRE(requests_of(stop) == std::vector<uint32_t>{id(Request::set_vring_enable), id(Request::get_vring_base),
                                                       id(Request::set_vring_enable), id(Request::get_vring_base)});
    CHECK(stop[0].as<VringState>().num == 0);
    CHECK(stop[1].as<VringState>().index == 0);
    CHECK(stop[3].as<VringState>().index == 1);
    rig.fs->reset();  // nothing started: nothing to stop
    CHECK(rig.backend->take().empty());
    REQUIRE(rig.fs->activate(activation_for(rig.memory, rig.irq, kFeatureVersion1)).ok());
    const auto again = rig.backend->take();
    REQUIRE(again.size() == expected.size());
    CHECK(again[0].as<uint64_t>() == (kFeatureVersion1 | kFeatureProtocolFeatures));
    CHECK(again[3].as<VringState>().num == 0);  // SET_VRING_BASE: a reset driver starts at 0
  }
}

TEST_CASE("vhost-user: virtio-fs config space is the tag, NUL-padded, and one request queue") {
  FsRig rig;
  uint8_t config[44];
  std::memset(config, 0xff, sizeof config);
  rig.fs->read_config(0, config);
  CHECK(std::string(reinterpret_cast<const char*>(config)) == "hostshare");
  for (size_t i = 9; i < 36; ++i) CHECK(config[i] == 0);
  uint32_t queues;
  std::memcpy(&queues, config + 36, 4);
  CHECK(queues == 1);
  CHECK(config[40] == 0);  // past the end reads as zero
  uint8_t narrow[2];
  rig.fs->read_config(36, narrow);
  CHECK(narrow[0] == 1);
}

TEST_CASE("vhost-user: virtio-fs tags are 1 to 36 bytes") {
  CHECK(check_fs_tag("a").ok());
  CHECK(check_fs_tag(std::string(36, 't')).ok());
  CHECK_FALSE(check_fs_tag("").ok());
  CHECK_FALSE(check_fs_tag(std::string(37, 't')).ok());
  CHECK_FALSE(check_fs_tag(std::string("a\0b", 3)).ok());
  FsOptions long_tag;
  long_tag.socket_path = "/nonexistent";
  long_tag.tag = std::string(37, 't');
  auto fs = Fs::connect(long_tag);
  REQUIRE_FALSE(fs.ok());
  CHECK(fs.error().message.find("must be 1 to 36 bytes") != std::string::npos);
}

TEST_CASE("vhost-user: rings are checked against guest memory before their addresses leave") {
  FsRig rig;
  const auto memory = shared_memory();
  CHECK(vring_address(memory, 0, ring_layout(0)).ok());
  QueueLayout outside = ring_layout(0);
  outside.used_ring = kRamBytes - 8;  // the used ring would run past the end of RAM
  CHECK(vring_address(memory, 0, outside).error().code == Errc::out_of_bounds);
  QueueLayout wrapping = ring_layout(0);
  wrapping.desc_table = ~uint64_t{0} - 15;
  CHECK_FALSE(vring_address(memory, 0, wrapping).ok());

  const RegionSpec spec[] = {{0, kRamBytes}};
  auto anonymous = GuestMemory::create(spec);
  REQUIRE(anonymous.ok());
  CHECK_FALSE(memory_table(*anonymous).ok());  // no memfd to hand over
  Interrupts irq;
  auto refused = rig.fs->activate(activation_for(*anonymous, irq, kFeatureVersion1));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("not shareable") != std::string::npos);
}

namespace {

// A front-end whose back-end end the test writes by hand.
struct RawPeer {
  explicit RawPeer(uint32_t timeout_ms = 300) {
    auto [ours, theirs] = socket_pair();
    peer = std::move(theirs);
    auto adopted = Frontend::adopt(std::move(ours), timeout_ms);
    REQUIRE(adopted.ok());
    frontend.emplace(std::move(adopted).value());
  }
  void send_header(uint32_t request, uint32_t flags, uint32_t size) {
    const Header h{request, flags, size};
    write_all(peer.get(), &h, sizeof h);
  }
  UniqueFd peer;
  std::optional<Frontend> frontend;
};

void reply_to(RawPeer& raw, uint32_t request, uint32_t flags, uint64_t value) {
  raw.send_header(request, flags, sizeof value);
  write_all(raw.peer.get(), &value, sizeof value);
}

void expect_given_up(Frontend& frontend, const std::string& why) {
  CAPTURE(why);
  CHECK(frontend.broken().find(why) != std::string::npos);
  const auto after = frontend.get_features();  // fails at once: the stream is out of step
  REQUIRE_FALSE(after.ok());
  CHECK(after.error().message.find("given up") != std::string::npos);
}

}  // namespace

TEST_CASE("vhost-user: malformed, short, late and missing replies are errors that end the connection") {
  const uint32_t features_id = id(Request::get_features);
  const uint32_t reply = kVersion | kFlagReply;
  const uint64_t value = 42;
  RawPeer raw;

  SUBCASE("an answer to another request") {
    reply_to(raw, id(Request::get_protocol_features), reply, value);
  }
  SUBCASE("no reply flag") { reply_to(raw, features_id, kVersion, value); }
  SUBCASE("another protocol version") { reply_to(raw, features_id, 2 | kFlagReply, value); }
  SUBCASE("a payload of another size") {
    raw.send_header(features_id, reply, 4);
    write_all(raw.peer.get(), "abcd", 4);
  }
  SUBCASE("a huge announced size") { raw.send_header(features_id, reply, 0xffffffff); }
  SUBCASE("a header, then hang-up") {
    raw.send_header(features_id, reply, 8);
    ::shutdown(raw.peer.get(), SHUT_WR);
  }
  SUBCASE("half a header, then hang-up") {
    write_all(raw.peer.get(), "\1\0\0\0\5", 5);
    ::shutdown(raw.peer.get(), SHUT_WR);
  }
  SUBCASE("a closed socket") { raw.peer.reset(); }

  const auto started = std::chrono::steady_clock::now();
  auto features = raw.frontend->get_features();
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  REQUIRE_FALSE(features.ok());
  CHECK(features.error().code == Errc::io);
  CHECK_FALSE(raw.frontend->broken().empty());
  expect_given_up(*raw.frontend, "GET_FEATURES");
}

TEST_CASE("vhost-user: a back-end that does not answer in time is given up within the timeout") {
  RawPeer raw(200);
  const auto started = std::chrono::steady_clock::now();
  auto features = raw.frontend->get_features();
  const auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(features.ok());
  CHECK(features.error().message.find("within the timeout") != std::string::npos);
  CHECK(waited >= std::chrono::milliseconds(200));
  CHECK(waited < std::chrono::milliseconds(1000));
  expect_given_up(*raw.frontend, "GET_FEATURES");
  // The back-end hears the hang-up.
  char byte;
  Message request;
  REQUIRE(read_message(raw.peer.get(), request));  // the GET_FEATURES it never answered
  CHECK(::recv(raw.peer.get(), &byte, 1, 0) == 0);
}

TEST_CASE("vhost-user: file descriptors a back-end attaches to a reply are closed, and the reply refused") {
  RawPeer raw;
  const size_t before = open_fds();
  {
    UniqueFd extra(::eventfd(0, EFD_CLOEXEC));
    const Header h{id(Request::get_features), kVersion | kFlagReply, 8};
    uint8_t bytes[sizeof h + 8] = {};
    std::memcpy(bytes, &h, sizeof h);
    iovec iov{bytes, sizeof bytes};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int fd = extra.get();
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    REQUIRE(::sendmsg(raw.peer.get(), &msg, 0) == sizeof bytes);
  }
  auto features = raw.frontend->get_features();
  REQUIRE_FALSE(features.ok());
  CHECK(features.error().message.find("file descriptors") != std::string::npos);
  CHECK(open_fds() == before);  // the passed eventfd did not stay open here
}

TEST_CASE("vhost-user: a refused step is an error, and the connection stays in step") {
  RawPeer raw;
  // Negotiate REPLY_ACK by hand: features, protocol features, then the acknowledged SET_OWNER.
  reply_to(raw, id(Request::get_features), kVersion | kFlagReply, kFeatureProtocolFeatures | kFeatureVersion1);
  reply_to(raw, id(Request::get_protocol_features), kVersion | kFlagReply, kProtocolFeatureReplyAck);
  reply_to(raw, id(Request::set_owner), kVersion | kFlagReply, 0);
  REQUIRE(raw.frontend->open_session().ok());
  REQUIRE(raw.frontend->reply_ack());
  reply_to(raw, id(Request::set_vring_num), kVersion | kFlagReply, 1);  // "no"
  auto refused = raw.frontend->set_vring_num(0, 4096);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("refused SET_VRING_NUM (status 1)") != std::string::npos);
  CHECK(raw.frontend->broken().empty());
  reply_to(raw, id(Request::set_vring_num), kVersion | kFlagReply, 0);
  CHECK(raw.frontend->set_vring_num(0, 256).ok());
  // The state of the wrong ring is not in step.
  const VringState other{3, 9};
  raw.send_header(id(Request::get_vring_base), kVersion | kFlagReply, sizeof other);
  write_all(raw.peer.get(), &other, sizeof other);
  auto base = raw.frontend->get_vring_base(0);
  REQUIRE_FALSE(base.ok());
  expect_given_up(*raw.frontend, "the state of ring 3, not 0");
}

TEST_CASE("vhost-user: a back-end that hangs up puts an active virtio-fs device into NEEDS_RESET, and the VMM goes on") {
  FsRig rig;
  REQUIRE(rig.fs->activate(activation_for(rig.memory, rig.irq, kFeatureVersion1)).ok());
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  REQUIRE(rig.fs->attach(*loop).ok());
  rig.backend->hang_up();
  run_loop_until(*loop, [&] { return rig.irq.needs_reset.load() > 0; });
  CHECK(rig.irq.needs_reset == 1);
  CHECK(rig.fs->backend_gone());
  CHECK(rig.fs->describe().find("gone") != std::string::npos);
  {
    std::lock_guard lock(rig.log_mutex);
    CHECK(rig.log.find("virtio-fs hostshare: the vhost-user back-end hung up") != std::string::npos);
  }
  // The driver resets and tries again: the reset returns, the activation fails (NEEDS_RESET
  // once more), nothing waits on the dead socket.
  const auto started = std::chrono::steady_clock::now();
  rig.fs->reset();
  auto again = rig.fs->activate(activation_for(rig.memory, rig.irq, kFeatureVersion1));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("the back-end is gone") != std::string::npos);
  rig.fs->queue_notify(1);  // harmless
  REQUIRE(loop->run_until([] { return false; }, 10).ok());  // the hang-up no longer fires
}

TEST_CASE("vhost-user: a back-end that dies during the ring set-up fails the activation") {
  // A back-end without protocol features that answers the opening, then dies.
  auto [device_end, backend_end] = socket_pair();
  reply(backend_end.get(), Request::get_features, kFeatureVersion1);
  FsOptions options;
  options.tag = "t";
  options.socket_fd = device_end.get();
  auto fs = Fs::connect(options);
  REQUIRE(fs.ok());
  backend_end.reset();  // dies
  const auto memory = shared_memory();
  Interrupts irq;
  auto activated = (*fs)->activate(activation_for(memory, irq, kFeatureVersion1));
  REQUIRE_FALSE(activated.ok());
  CHECK(activated.error().message.find("virtio-fs t (fd): vhost-user: SET_FEATURES") != std::string::npos);
}

TEST_CASE("vhost-user: connecting needs a listening socket") {
  char dir_template[] = "/tmp/hyper-vhost-user-XXXXXX";
  REQUIRE(::mkdtemp(dir_template));
  const std::string dir = dir_template;
  auto missing = Frontend::connect(dir + "/none.sock");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(missing.error().message.find("No such file or directory") != std::string::npos);
  auto not_socket = Frontend::connect(dir);
  REQUIRE_FALSE(not_socket.ok());
  CHECK(not_socket.error().message.find("is not a socket") != std::string::npos);
  CHECK_FALSE(Frontend::connect(std::string(200, 'x')).ok());
  CHECK_FALSE(Frontend::connect("").ok());
  ::rmdir(dir.c_str());
}

TEST_CASE("vhost-user: reply headers are checked field by field") {
  const auto check = [](Header h, uint32_t size = 8) { return check_reply_header(h, Request::get_features, size).ok(); };
  CHECK(check({1, kVersion | kFlagReply, 8}));
  CHECK(check({1, kVersion | kFlagReply | kFlagNeedReply, 8}));  // an echoed need_reply is fine
  CHECK_FALSE(check({2, kVersion | kFlagReply, 8}));
  CHECK_FALSE(check({1, kFlagReply, 8}));
  CHECK_FALSE(check({1, 3 | kFlagReply, 8}));
  CHECK_FALSE(check({1, kVersion, 8}));
  CHECK_FALSE(check({1, kVersion | kFlagReply, 0}));
  CHECK_FALSE(check({1, kVersion | kFlagReply, 0xffffffff}));
}

TEST_CASE("vhost-user: a back-end that stops answering during the set-up is given up, and the hang-up says why") {
  auto [device_end, backend_end] = socket_pair();
  // The opening with REPLY_ACK, answered ahead; nothing after it.
  reply(backend_end.get(), Request::get_features, kFeatureVersion1 | kFeatureProtocolFeatures);
  reply(backend_end.get(), Request::get_protocol_features, kProtocolFeatureReplyAck);
  reply(backend_end.get(), Request::set_owner, uint64_t{0});
  std::string log;
  FsOptions options;
  options.tag = "slow";
  options.socket_fd = device_end.get();
  options.reply_timeout_ms = 200;
  options.log = [&log](const std::string& line) { log += line; };
  auto fs = Fs::connect(options);
  REQUIRE(fs.ok());
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  REQUIRE((*fs)->attach(*loop).ok());
  const auto memory = shared_memory();
  Interrupts irq;
  const auto started = std::chrono::steady_clock::now();
  auto activated = (*fs)->activate(activation_for(memory, irq, kFeatureVersion1));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  REQUIRE_FALSE(activated.ok());
  CHECK(activated.error().message.find("SET_FEATURES: no reply header within the timeout") != std::string::npos);
  run_loop_until(*loop, [&] { return (*fs)->backend_gone(); });
  CHECK((*fs)->backend_gone());
  CHECK(log.find("the VMM gave the connection up: SET_FEATURES") != std::string::npos);
  CHECK(irq.needs_reset == 0);  // the failed activation itself is what the transport reports
}
