#include <doctest/doctest.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/fake_driver.hpp"
#include "virtio/vsock.hpp"
#include "vmm/clock.hpp"

using namespace hyper;
using namespace hyper::virtio;
using hyper::virtio::testing::FakeDriver;
using vsock::Op;
using vsock::PacketHeader;

namespace {

constexpr size_t kRx = 0, kTx = 1;
constexpr uint64_t kCid = 42;
constexpr uint32_t kRxBuffer = 4096;
constexpr uint32_t kGuestBufAlloc = 256 * 1024;

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return s;
}

struct TempDir {
  TempDir() {
    char name[] = "/tmp/hyper-vsock-test-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    ::nftw(path.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); }, 8,
           FTW_DEPTH | FTW_PHYS);
  }
  std::string path;
};

UniqueFd unix_socket() { return UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

sockaddr_un address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof addr.sun_path);
  path.copy(addr.sun_path, path.size());
  return addr;
}

UniqueFd connect_to(const std::string& path) {
  UniqueFd fd = unix_socket();
  const sockaddr_un addr = address(path);
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

UniqueFd listen_at(const std::string& path) {
  UniqueFd fd = unix_socket();
  const sockaddr_un addr = address(path);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd.get(), 8) == 0);
  return fd;
}

void host_write(int fd, const std::string& bytes) {
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

// Everything the host end can read now; `eof` tells whether the device closed its end.
std::string host_read(int fd, bool* eof = nullptr) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (eof) *eof = n == 0 || (n < 0 && errno == ECONNRESET);
    return out;
  }
}

bool host_closed(int fd) {
  bool eof = false;
  (void)host_read(fd, &eof);
  return eof;
}

struct Packet {
  PacketHeader h;
  std::string payload;
  [[nodiscard]] Op op() const { return static_cast<Op>(h.op); }
};

// A guest packet from `guest_port` to the host's `host_port`.
PacketHeader guest_header(uint32_t guest_port, uint32_t host_port, Op op, uint32_t buf_alloc = kGuestBufAlloc,
                          uint32_t fwd_cnt = 0) {
  PacketHeader h;
  h.src_cid = kCid;
  h.dst_cid = vsock::kHostCid;
  h.src_port = guest_port;
  h.dst_port = host_port;
  h.op = static_cast<uint16_t>(op);
  h.buf_alloc = buf_alloc;
  h.fwd_cnt = fwd_cnt;
  return h;
}

std::string bytes_of(const PacketHeader& h) {
  const auto b = h.encode();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The device on a real socket in a temp dir, a fake driver, and the event loop the test
// drives by hand.
struct Rig {
  explicit Rig(uint32_t timeout_ms = 5000) {
    vsock = Vsock::create({kCid, path, timeout_ms}).value();
    REQUIRE(vsock->attach(*loop).ok());
    REQUIRE(vsock->activate(driver.activation(kFeatureVersion1 | kFeatureRingEventIdx)).ok());
    spin();
  }

  // Runs the loop until it has been idle for 5 ms (bounded, so a spinning device fails).
  void spin(int rounds = 200) {
    int n = 0;
    REQUIRE(loop->run_until([&] { return n++ >= rounds; }, 5).ok());
    CHECK(n < rounds);  // otherwise something keeps firing
  }
  void spin_for_ms(uint64_t ms) {
    const uint64_t end = monotonic_ns() + ms * 1'000'000;
    while (monotonic_ns() < end) REQUIRE(loop->run_until([] { return false; }, 5).ok());
  }

  void give_rx(int count, uint32_t size = kRxBuffer) {
    for (int i = 0; i < count; ++i) driver.post(kRx, {}, {size});
    rx_sizes_given += static_cast<size_t>(count);
    last_rx_size = size;
    vsock->queue_notify(kRx);
  }
  // A guest packet; `payload` may be split across several buffers.
  void send(PacketHeader h, const std::string& payload = "", std::optional<uint32_t> len = std::nullopt) {
    h.len = len ? *len : static_cast<uint32_t>(payload.size());
    std::vector<std::string> readable{bytes_of(h)};
    for (size_t at = 0; at < payload.size(); at += 20000) readable.push_back(payload.substr(at, 20000));
    driver.post(kTx, readable);
    vsock->queue_notify(kTx);
    for (const auto& used : driver.take_used(kTx)) CHECK(used.len == 0);
  }
  // Packets the device put in rx buffers since the last call.
  std::vector<Packet> received() {
    std::vector<Packet> out;
    for (const auto& used : driver.take_used(kRx)) {
      CHECK(used.len <= last_rx_size);
      REQUIRE(used.len >= PacketHeader::kSize);
      Packet p;
      p.h = PacketHeader::decode(std::span<const uint8_t, PacketHeader::kSize>(
          reinterpret_cast<const uint8_t*>(used.data.data()), PacketHeader::kSize));
      p.payload = used.data.substr(PacketHeader::kSize);
      CHECK(p.h.len == p.payload.size());
      CHECK(p.h.src_cid == vsock::kHostCid);
      CHECK(p.h.dst_cid == kCid);
      CHECK(p.h.type == vsock::kTypeStream);
      CHECK(p.h.buf_alloc == Vsock::kBufAlloc);
      out.push_back(std::move(p));
    }
    return out;
  }
  std::vector<Packet> settle() {
    spin();
    return received();
  }

  // A host program connects and asks for `guest_port`; the guest accepts.
  struct HostConnection {
    UniqueFd fd;
    uint32_t local_port;
  };
  HostConnection connect_from_host(uint32_t guest_port, const std::string& after_line = "",
                                   uint32_t buf_alloc = kGuestBufAlloc) {
    UniqueFd fd = connect_to(path);
    host_write(fd.get(), "CONNECT " + std::to_string(guest_port) + "\n" + after_line);
    auto packets = settle();
    REQUIRE(packets.size() == 1);
    CHECK(packets[0].op() == Op::request);
    CHECK(packets[0].h.dst_port == guest_port);
    CHECK(packets[0].h.src_port >= Vsock::kFirstLocalPort);
    const uint32_t local = packets[0].h.src_port;
    send(guest_header(guest_port, local, Op::response, buf_alloc));
    spin();
    const std::string ok = "OK " + std::to_string(local) + "\n";
    CHECK(host_read(fd.get()) == ok);
    return {std::move(fd), local};
  }

  TempDir dir;
  std::string path = dir.path + "/v.sock";
  std::optional<EventLoop> loop{EventLoop::create().value()};
  FakeDriver driver{3, 256};
  std::shared_ptr<Vsock> vsock;  // destroyed before the loop, as in the machine
  size_t rx_sizes_given = 0;
  uint32_t last_rx_size = kRxBuffer;
};

std::string payload_of(const std::vector<Packet>& packets, uint32_t port) {
  std::string out;
  for (const auto& p : packets) {
    if (p.op() == Op::rw && p.h.dst_port == port) out += p.payload;
  }
  return out;
}

size_t count_op(const std::vector<Packet>& packets, Op op) {
  size_t n = 0;
  for (const auto& p : packets) n += p.op() == op ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("virtio-vsock: config space holds the guest CID; three queues; the header layout") {
  Rig r;
  uint8_t config[12];
  std::memset(config, 0xff, sizeof config);
  r.vsock->read_config(0, config);
  uint64_t cid = 0;
  std::memcpy(&cid, config, 8);
  CHECK(cid == kCid);
  CHECK(config[8] == 0);  // beyond the field
  uint8_t high[4] = {1, 1, 1, 1};
  r.vsock->read_config(4, high);
  CHECK(high[0] == 0);
  r.vsock->write_config(0, config);  // ignored
  r.vsock->read_config(0, config);
  CHECK(config[0] == kCid);
  CHECK(r.vsock->device_type() == 19);
  CHECK(r.vsock->queue_max_sizes().size() == 3);
  CHECK((r.vsock->device_features() & kFeatureVersion1));

  PacketHeader h = guest_header(7, 9, Op::credit_update, 0x01020304, 0x0a0b0c0d);
  h.len = 0x11223344;
  h.flags = 3;
  const auto b = h.encode();
  CHECK(b[0] == kCid);
  CHECK(b[8] == 2);
  CHECK(b[16] == 7);
  CHECK(b[20] == 9);
  CHECK(b[24] == 0x44);
  CHECK(b[28] == 1);   // type
  CHECK(b[30] == 6);   // op
  CHECK(b[32] == 3);   // flags
  CHECK(b[36] == 4);   // buf_alloc
  CHECK(b[40] == 0x0d);  // fwd_cnt
}

TEST_CASE("virtio-vsock: a host CONNECT becomes a REQUEST; the guest's RESPONSE answers OK <port>") {
  Rig r;
  r.give_rx(4);
  auto first = r.connect_from_host(5000);
  auto second = r.connect_from_host(5000);
  CHECK(first.local_port != second.local_port);
  CHECK(r.vsock->stats().connections == 2);
}

TEST_CASE("virtio-vsock: data flows both ways byte-exact, larger than an rx buffer; bytes after CONNECT are kept") {
  Rig r;
  r.give_rx(64);
  auto c = r.connect_from_host(5000, "early bytes|");
  const std::string to_guest = pattern(40000, 1);
  host_write(c.fd.get(), to_guest);
  std::string got;
  for (int i = 0; i < 20 && got.size() < to_guest.size() + 12; ++i) {
    got += payload_of(r.settle(), 5000);
    r.give_rx(8);
  }
  CHECK(got == "early bytes|" + to_guest);

  const std::string to_host = pattern(150000, 2);  // within the credit the device gave
  for (size_t at = 0; at < to_host.size(); at += Vsock::kMaxPayload) {
    const std::string piece = to_host.substr(at, Vsock::kMaxPayload);
    r.send(guest_header(5000, c.local_port, Op::rw, kGuestBufAlloc, static_cast<uint32_t>(got.size())), piece);
  }
  std::string host_got;
  for (int i = 0; i < 50 && host_got.size() < to_host.size(); ++i) {
    r.spin();
    host_got += host_read(c.fd.get());
  }
  CHECK(host_got == to_host);
  CHECK(r.vsock->stats().credit_violations == 0);
  CHECK(r.vsock->stats().dropped_packets == 0);
}

TEST_CASE("virtio-vsock: a guest connects to <path>_<port>; a port nobody listens on gets an RST") {
  Rig r;
  r.give_rx(16);
  UniqueFd listener = listen_at(r.path + "_6000");
  r.send(guest_header(1234, 6000, Op::request));
  auto packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::response);
  CHECK(packets[0].h.src_port == 6000);
  CHECK(packets[0].h.dst_port == 1234);
  UniqueFd host(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(host.valid());

  r.send(guest_header(1234, 6000, Op::rw), "ping from the guest");
  r.spin();
  CHECK(host_read(host.get()) == "ping from the guest");
  host_write(host.get(), "pong from the host");
  CHECK(payload_of(r.settle(), 1234) == "pong from the host");

  r.send(guest_header(1235, 6001, Op::request));
  packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::rst);
  CHECK(packets[0].h.src_port == 6001);
  CHECK(packets[0].h.dst_port == 1235);
  CHECK(r.vsock->stats().connections == 1);
}

TEST_CASE("virtio-vsock: the device never sends more than the guest's credit and resumes on CREDIT_UPDATE") {
  Rig r;
  r.give_rx(32);
  auto c = r.connect_from_host(5000, "", 100);
  const std::string data = pattern(1000, 3);
  host_write(c.fd.get(), data);
  std::string got = payload_of(r.settle(), 5000);
  CHECK(got == data.substr(0, 100));
  r.spin_for_ms(20);
  CHECK(r.settle().empty());  // no credit, no packets (and no busy loop: spin() checks)

  r.send(guest_header(5000, c.local_port, Op::credit_update, 100, 100));
  got += payload_of(r.settle(), 5000);
  CHECK(got == data.substr(0, 200));

  r.send(guest_header(5000, c.local_port, Op::credit_update, 1000, 200));
  got += payload_of(r.settle(), 5000);
  CHECK(got == data);

  // A CREDIT_REQUEST is answered with our counters.
  r.send(guest_header(5000, c.local_port, Op::credit_request, 1000, 1000));
  auto packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::credit_update);
  CHECK(packets[0].h.fwd_cnt == 0);
}

TEST_CASE("virtio-vsock: a host reader that does not read stalls only its own connection") {
  Rig r;
  r.give_rx(64);
  auto slow = r.connect_from_host(5000);
  auto fast = r.connect_from_host(5001);

  // The guest writes to the slow reader within the credit the device gives it.
  uint32_t sent = 0, host_fwd = 0;
  bool stalled = false;
  for (int i = 0; i < 40 && !stalled; ++i) {
    for (const auto& p : r.settle()) {
      if (p.h.dst_port == 5000) host_fwd = std::max(host_fwd, p.h.fwd_cnt);
    }
    r.give_rx(static_cast<int>(std::min<size_t>(8, r.driver.free_descriptors(kRx))));
    const uint32_t credit = Vsock::kBufAlloc - (sent - host_fwd);
    if (credit < Vsock::kMaxPayload) {
      stalled = true;
      break;
    }
    r.send(guest_header(5000, slow.local_port, Op::rw), pattern(Vsock::kMaxPayload, 4 + static_cast<unsigned>(i)));
    sent += Vsock::kMaxPayload;
  }
  CHECK(stalled);
  CHECK(sent > Vsock::kBufAlloc);  // the socket took some, the device buffers the rest

  // The other connection still moves both ways.
  r.send(guest_header(5001, fast.local_port, Op::rw), "to the fast reader");
  r.spin();
  CHECK(host_read(fast.fd.get()) == "to the fast reader");
  host_write(fast.fd.get(), "from the fast writer");
  CHECK(payload_of(r.settle(), 5001) == "from the fast writer");

  // The slow reader catches up: it gets every byte, and the guest hears of the room.
  std::string expected;
  for (uint32_t i = 0; i * Vsock::kMaxPayload < sent; ++i) expected += pattern(Vsock::kMaxPayload, 4 + i);
  std::string got;
  bool credit_update = false;
  for (int i = 0; i < 100 && got.size() < expected.size(); ++i) {
    got += host_read(slow.fd.get());
    for (const auto& p : r.settle()) credit_update |= p.op() == Op::credit_update && p.h.dst_port == 5000;
    r.give_rx(static_cast<int>(std::min<size_t>(4, r.driver.free_descriptors(kRx))));
  }
  CHECK(got == expected);
  CHECK(credit_update);
  CHECK(r.vsock->stats().credit_violations == 0);
}

TEST_CASE("virtio-vsock: a guest that ignores its credit is reset") {
  Rig r;
  r.give_rx(16);
  auto c = r.connect_from_host(5000);
  for (int i = 0; i < 10; ++i) r.send(guest_header(5000, c.local_port, Op::rw), pattern(Vsock::kMaxPayload, 9));
  auto packets = r.settle();
  CHECK(count_op(packets, Op::rst) >= 1);  // packets after the reset are answered with RSTs too
  for (const auto& p : packets) CHECK((p.op() == Op::rst || p.op() == Op::credit_update));
  CHECK(r.vsock->stats().credit_violations == 1);
  CHECK(r.vsock->stats().connections == 0);
  std::string drained;
  bool eof = false;
  for (int i = 0; i < 20 && !eof; ++i) drained += host_read(c.fd.get(), &eof);
  CHECK(eof);
}

TEST_CASE("virtio-vsock: malformed and misaddressed tx packets are dropped; a split header works") {
  Rig r;
  r.give_rx(16);
  UniqueFd listener = listen_at(r.path + "_7000");

  r.driver.post(kTx, {std::string(10, 'h')});  // shorter than a header
  PacketHeader h = guest_header(1, 7000, Op::request);
  h.len = 5;  // but no payload follows
  r.driver.post(kTx, {bytes_of(h)});
  h.len = Vsock::kMaxPayload + 1;
  r.driver.post(kTx, {bytes_of(h), std::string(Vsock::kMaxPayload + 1, 'x')});
  r.driver.post(kTx, {}, {64});  // nothing readable at all
  r.vsock->queue_notify(kTx);
  CHECK(r.driver.take_used(kTx).size() == 4);
  CHECK(r.vsock->stats().dropped_packets == 4);

  PacketHeader wrong = guest_header(1, 7000, Op::request);
  wrong.src_cid = kCid + 1;
  r.send(wrong);
  wrong = guest_header(1, 7000, Op::request);
  wrong.dst_cid = 3;
  r.send(wrong);
  wrong = guest_header(1, 7000, Op::request);
  wrong.type = 2;
  r.send(wrong);
  CHECK(r.vsock->stats().misaddressed_packets == 3);
  CHECK(r.settle().empty());  // dropped without an answer

  // Unknown connections get an RST, except an RST.
  r.send(guest_header(2, 7001, Op::rw), "lost");
  r.send(guest_header(2, 7001, Op::rst));
  auto packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::rst);

  const std::string header = bytes_of(guest_header(3, 7000, Op::request));
  r.driver.post(kTx, {header.substr(0, 10), header.substr(10, 21), header.substr(31)});
  r.vsock->queue_notify(kTx);
  packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::response);
  CHECK_FALSE(r.driver.needs_reset);
}

TEST_CASE("virtio-vsock: a broken tx ring asks for a reset") {
  Rig r;
  r.driver.write_descriptor(kTx, 10, FakeDriver::kDataStart, 44, 1, 11);  // 10 -> 11 -> 10 ...
  r.driver.write_descriptor(kTx, 11, FakeDriver::kDataStart, 44, 1, 10);
  r.driver.publish_raw(kTx, 10);
  r.vsock->queue_notify(kTx);
  CHECK(r.driver.needs_reset);
  CHECK(r.vsock->stats().broken_rings == 1);
}

TEST_CASE("virtio-vsock: bad, over-long and slow CONNECT lines close the host socket") {
  Rig r(100);
  r.give_rx(16);
  std::vector<UniqueFd> hosts;
  for (const char* line : {"HELLO 5\n", "CONNECT\n", "CONNECT x1\n", "CONNECT 99999999999\n", "CONNECT -1\n"}) {
    hosts.push_back(connect_to(r.path));
    host_write(hosts.back().get(), line);
  }
  hosts.push_back(connect_to(r.path));
  host_write(hosts.back().get(), std::string(40, 'C'));  // no newline within the bound
  r.spin();
  for (const auto& fd : hosts) CHECK(host_closed(fd.get()));

  UniqueFd slow = connect_to(r.path);
  host_write(slow.get(), "CONN");
  r.spin();
  CHECK_FALSE(host_closed(slow.get()));
  r.spin_for_ms(300);
  CHECK(host_closed(slow.get()));
  CHECK(r.settle().empty());  // the guest never heard of any of them
  CHECK(r.vsock->stats().connections == 0);
}

TEST_CASE("virtio-vsock: a guest RST or silence ends a host-initiated connection") {
  Rig r(100);
  r.give_rx(16);
  UniqueFd refused = connect_to(r.path);
  host_write(refused.get(), "CONNECT 80\n");
  auto packets = r.settle();
  REQUIRE(packets.size() == 1);
  r.send(guest_header(80, packets[0].h.src_port, Op::rst));
  r.spin();
  CHECK(host_closed(refused.get()));

  UniqueFd ignored = connect_to(r.path);
  host_write(ignored.get(), "CONNECT 81\n");
  packets = r.settle();
  REQUIRE(packets.size() == 1);
  r.spin_for_ms(300);
  CHECK(host_closed(ignored.get()));
  packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::rst);  // the guest drops its half-open connection
  CHECK(r.vsock->stats().connections == 0);
}

TEST_CASE("virtio-vsock: control packets wait for rx buffers and go before data") {
  Rig r;
  UniqueFd listener = listen_at(r.path + "_6000");
  r.send(guest_header(1000, 6000, Op::request));
  r.send(guest_header(1001, 6001, Op::request));  // nobody listens: RST
  UniqueFd a = connect_to(r.path);
  host_write(a.get(), "CONNECT 9\n");
  r.spin();
  CHECK(r.received().empty());
  r.give_rx(8);
  auto packets = r.settle();
  CHECK(packets.size() == 3);
  CHECK(count_op(packets, Op::response) == 1);
  CHECK(count_op(packets, Op::rst) == 1);
  CHECK(count_op(packets, Op::request) == 1);
}

TEST_CASE("virtio-vsock: shutdowns in both directions end with an RST and close") {
  Rig r;
  r.give_rx(16);
  auto c = r.connect_from_host(5000);
  host_write(c.fd.get(), "last words");
  REQUIRE(::shutdown(c.fd.get(), SHUT_WR) == 0);
  auto packets = r.settle();
  CHECK(payload_of(packets, 5000) == "last words");
  REQUIRE(!packets.empty());
  CHECK(packets.back().op() == Op::shutdown);
  CHECK(packets.back().h.flags == vsock::kShutdownSend);

  // The guest may still write after the host's EOF.
  r.send(guest_header(5000, c.local_port, Op::rw), "reply");
  r.spin();
  CHECK(host_read(c.fd.get()) == "reply");

  PacketHeader bye = guest_header(5000, c.local_port, Op::shutdown);
  bye.flags = vsock::kShutdownSend | vsock::kShutdownReceive;
  r.send(bye);
  packets = r.settle();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op() == Op::rst);
  CHECK(host_closed(c.fd.get()));
  CHECK(r.vsock->stats().connections == 0);
}

TEST_CASE("virtio-vsock: a host program that writes and hangs up still delivers its bytes") {
  Rig r;
  r.give_rx(16);
  auto c = r.connect_from_host(5000);
  host_write(c.fd.get(), pattern(10000, 5));
  c.fd.reset();
  std::string got;
  std::vector<Packet> all;
  for (int i = 0; i < 10; ++i) {
    auto packets = r.settle();
    all.insert(all.end(), packets.begin(), packets.end());
    r.give_rx(4);
  }
  CHECK(payload_of(all, 5000) == pattern(10000, 5));
  CHECK(count_op(all, Op::rst) == 1);
  CHECK(r.vsock->stats().connections == 0);
}

TEST_CASE("virtio-vsock: a reset closes every host socket; the listener stays") {
  Rig r;
  r.give_rx(16);
  auto c = r.connect_from_host(5000);
  UniqueFd pending = connect_to(r.path);
  r.spin();
  CHECK(r.vsock->stats().connections == 2);
  r.vsock->reset();
  CHECK(host_closed(c.fd.get()));
  CHECK(host_closed(pending.get()));
  CHECK(r.vsock->stats().connections == 0);
  UniqueFd again = connect_to(r.path);
  host_write(again.get(), "CONNECT 5\n");
  r.spin();
  CHECK(r.vsock->stats().connections == 1);  // waits for the driver to come back
  CHECK_FALSE(host_closed(again.get()));
}

TEST_CASE("virtio-vsock: create() refuses reserved CIDs and paths in use, and replaces a stale socket") {
  TempDir dir;
  const std::string path = dir.path + "/v.sock";
  for (uint64_t cid : {0ULL, 1ULL, 2ULL, 0xffffffffULL, 1ULL << 40}) CHECK_FALSE(Vsock::create({cid, path}).ok());
  CHECK_FALSE(Vsock::create({3, dir.path + "/" + std::string(100, 'p')}).ok());
  {
    auto live = Vsock::create({3, path});
    REQUIRE(live.ok());
    auto second = Vsock::create({4, path});
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().message.find("in use") != std::string::npos);
  }
  struct stat st {};
  CHECK(::stat(path.c_str(), &st) != 0);  // the destructor unlinked it

  {
    UniqueFd stale = listen_at(path);  // closed without unlinking, like a VMM that died
  }
  CHECK(Vsock::create({3, path}).ok());

  const std::string file = dir.path + "/regular";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  auto over_file = Vsock::create({3, file});
  REQUIRE_FALSE(over_file.ok());
  CHECK(over_file.error().message.find("not a socket") != std::string::npos);
  CHECK(::stat(file.c_str(), &st) == 0);
}

TEST_CASE("virtio-vsock: rx chains may split the header; chains too small for one are returned empty") {
  Rig r;
  UniqueFd listener = listen_at(r.path + "_6000");
  r.driver.post(kRx, {}, {20});
  r.driver.post(kRx, {}, {20, 30, 4000});
  r.vsock->queue_notify(kRx);
  r.send(guest_header(1, 6000, Op::request));
  r.spin();
  auto used = r.driver.take_used(kRx);
  REQUIRE(used.size() == 2);
  CHECK(used[0].len == 0);
  CHECK(used[1].len == PacketHeader::kSize);
  const auto h = PacketHeader::decode(
      std::span<const uint8_t, PacketHeader::kSize>(reinterpret_cast<const uint8_t*>(used[1].data.data()), PacketHeader::kSize));
  CHECK(h.op == static_cast<uint16_t>(Op::response));
  CHECK(h.dst_port == 1);
  CHECK(r.vsock->stats().small_rx_buffers == 1);
}
