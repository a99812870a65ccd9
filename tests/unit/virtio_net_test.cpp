#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/unit/fake_driver.hpp"
#include "virtio/net.hpp"
#include "virtio/net_features.hpp"

using namespace hyper;
using namespace hyper::virtio;
using hyper::virtio::testing::FakeDriver;

namespace {

constexpr uint64_t kMergeable = kFeatureVersion1 | kFeatureRingEventIdx | net::kMrgRxbuf | net::kMac;
constexpr size_t kRx = 0, kTx = 1;

// The device over one end of a SOCK_SEQPACKET pair, standing in for a tap: the test
// holds the other end (the "host network").
struct Nic {
  explicit Nic(uint64_t features = kMergeable) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    host.reset(fds[1]);
    net = Net::over_fd(UniqueFd(fds[0]), {0x02, 0x11, 0x22, 0x33, 0x44, 0x55}, false);
    REQUIRE(net->activate(driver.activation(features)).ok());
  }
  void host_send(const std::string& frame) {
    REQUIRE(::send(host.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size()));
  }
  std::string host_receive() {
    std::string buf(70000, '\0');
    const ssize_t n = ::recv(host.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    return n < 0 ? "" : buf.substr(0, static_cast<size_t>(n));
  }
  static std::string frame(size_t payload, char fill = 'x') { return std::string(12, '\0') + std::string(payload, fill); }
  static uint16_t num_buffers(const std::string& first_chain) {
    return static_cast<uint16_t>(static_cast<uint8_t>(first_chain[10]) | (static_cast<uint8_t>(first_chain[11]) << 8));
  }

  FakeDriver driver{2};
  UniqueFd host;
  std::shared_ptr<Net> net;
};

}  // namespace

TEST_CASE("virtio-net: config space holds the MAC and link-up; offloads and mergeable buffers are offered") {
  Nic nic;
  uint8_t config[8] = {};
  nic.net->read_config(0, config);
  CHECK(config[0] == 0x02);
  CHECK(config[5] == 0x55);
  CHECK(config[6] == net::kStatusLinkUp);
  const uint64_t f = nic.net->device_features();
  CHECK((f & net::kMrgRxbuf));
  CHECK((f & net::kGuestTso4));
  CHECK((f & net::kHostTso4));
  CHECK((f & net::kCsum));
  CHECK(nic.net->device_type() == 1);
}

TEST_CASE("virtio-net: a transmitted frame reaches the host whole, from split guest buffers") {
  Nic nic;
  const std::string frame = Nic::frame(1500, 'a');
  nic.driver.post(kTx, {frame.substr(0, 12), frame.substr(12, 100), frame.substr(112)});
  nic.net->queue_notify(kTx);
  CHECK(nic.host_receive() == frame);
  auto used = nic.driver.take_used(kTx);
  REQUIRE(used.size() == 1);
  CHECK(used[0].len == 0);
  CHECK(nic.driver.interrupts == 1);
  CHECK(nic.net->stats().tx_frames == 1);
}

TEST_CASE("virtio-net: malformed transmit chains are dropped, the queue keeps working") {
  Nic nic;
  nic.driver.post(kTx, {std::string(5, 'h')});                      // shorter than the header
  nic.driver.post(kTx, {std::string(12 + Net::kMaxFrame + 1, 'b')});  // longer than any frame
  nic.driver.post(kTx, {}, {64});                                    // nothing to send
  nic.driver.post(kTx, {Nic::frame(60)});
  nic.net->queue_notify(kTx);
  CHECK(nic.driver.take_used(kTx).size() == 4);
  CHECK(nic.host_receive() == Nic::frame(60));
  CHECK(nic.host_receive().empty());
  CHECK(nic.net->stats().tx_dropped == 3);
  CHECK_FALSE(nic.driver.needs_reset);
}

TEST_CASE("virtio-net: a received frame spans mergeable buffers and says how many") {
  Nic nic;
  for (int i = 0; i < 3; ++i) nic.driver.post(kRx, {}, {1526});
  std::string frame = Nic::frame(3000);
  frame[12] = 'A';
  frame.back() = 'Z';
  nic.host_send(frame);
  nic.net->queue_notify(kRx);
  auto used = nic.driver.take_used(kRx);
  REQUIRE(used.size() == 2);
  CHECK(used[0].len == 1526);
  CHECK(used[1].len == frame.size() - 1526);
  CHECK(Nic::num_buffers(used[0].data) == 2);
  CHECK(used[0].data.substr(12) + used[1].data == frame.substr(12));
  CHECK(nic.net->stats().rx_frames == 1);
}

TEST_CASE("virtio-net: without receive buffers a frame waits, then goes when the driver adds some") {
  Nic nic;
  nic.host_send(Nic::frame(100, 'w'));
  nic.net->queue_notify(kRx);
  CHECK(nic.driver.take_used(kRx).empty());
  nic.driver.post(kRx, {}, {60});  // holds part of it: held until the rest has room
  nic.net->queue_notify(kRx);
  CHECK(nic.driver.take_used(kRx).empty());
  nic.driver.post(kRx, {}, {2048});
  nic.net->queue_notify(kRx);
  auto used = nic.driver.take_used(kRx);
  REQUIRE(used.size() == 2);
  CHECK(used[0].len + used[1].len == 112);
  CHECK(Nic::num_buffers(used[0].data) == 2);
}

TEST_CASE("virtio-net: without mergeable buffers a frame too big for a chain is dropped, the next fits") {
  Nic nic(kFeatureVersion1);
  nic.driver.post(kRx, {}, {512});
  nic.driver.post(kRx, {}, {2048});
  nic.host_send(Nic::frame(1000));
  nic.host_send(Nic::frame(1000, 'y'));
  nic.net->queue_notify(kRx);
  auto used = nic.driver.take_used(kRx);
  REQUIRE(used.size() == 2);
  CHECK(used[0].len == 0);
  CHECK(used[1].len == 1012);
  CHECK(Nic::num_buffers(used[1].data) == 1);
  CHECK(used[1].data.substr(12) == std::string(1000, 'y'));
  CHECK(nic.net->stats().rx_dropped == 1);
}

TEST_CASE("virtio-net: the event loop delivers frames once the device is attached and active") {
  Nic nic;
  auto loop = EventLoop::create().value();
  REQUIRE(nic.net->attach(loop).ok());
  nic.driver.post(kRx, {}, {4096});
  nic.host_send(Nic::frame(200));
  int rounds = 0;
  REQUIRE(loop.run_until([&] { return rounds++ > 0 && !nic.driver.take_used(kRx).empty() ? true : rounds > 20; }, 50).ok());
  CHECK(nic.net->stats().rx_frames == 1);
}

TEST_CASE("virtio-net: MAC addresses parse strictly") {
  CHECK(parse_mac("02:11:22:aa:BB:cc") == MacAddress{0x02, 0x11, 0x22, 0xaa, 0xbb, 0xcc});
  CHECK_FALSE(parse_mac("02:11:22:aa:bb"));
  CHECK_FALSE(parse_mac("02:11:22:aa:bb:cc:dd"));
  CHECK_FALSE(parse_mac("0g:11:22:aa:bb:cc"));
  CHECK_FALSE(parse_mac("01:00:5e:00:00:01"));  // multicast
  const MacAddress m = random_mac();
  CHECK((m[0] & 3) == 2);
  CHECK(format_mac({0x02, 0, 0xab, 1, 2, 3}) == "02:00:ab:01:02:03");
}
