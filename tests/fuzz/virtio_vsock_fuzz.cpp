// The guest controls every byte of the packets it sends and the number and sizes of the
// rx buffers it gives; host programs connect, write, read, half-close and hang up at
// fuzzer-chosen moments. Whatever happens, the device must not crash, must return every
// tx chain with nothing written, and must never claim more bytes than an rx chain holds.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/fake_driver.hpp"
#include "virtio/vsock.hpp"

namespace {

using hyper::UniqueFd;
using hyper::virtio::Vsock;
using hyper::virtio::testing::FakeDriver;
using hyper::virtio::vsock::PacketHeader;

constexpr uint64_t kCid = 3;
constexpr size_t kRx = 0, kTx = 1;
constexpr uint32_t kListenPorts[] = {1, 2, 3};  // "<path>_<port>" listeners
constexpr size_t kMaxHosts = 16;

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(byte() | (byte() << 8)); }
  uint32_t u32() { return static_cast<uint32_t>(u16()) | (static_cast<uint32_t>(u16()) << 16); }
  std::string bytes(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

UniqueFd unix_socket() { return UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)); }

sockaddr_un address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, std::min(path.size(), sizeof addr.sun_path - 1));
  return addr;
}

struct World {
  World() {
    char name[] = "/tmp/hyper-vsock-fuzz-XXXXXX";
    if (!::mkdtemp(name)) std::abort();
    dir = name;
    path = dir + "/v";
    loop.emplace(hyper::EventLoop::create().value());
    vsock = Vsock::create({kCid, path}).value();
    if (!vsock->attach(*loop).ok()) std::abort();
    for (const uint32_t port : kListenPorts) {
      UniqueFd fd = unix_socket();
      const sockaddr_un addr = address(path + "_" + std::to_string(port));
      if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0 || ::listen(fd.get(), 64) < 0)
        std::abort();
      listeners.push_back(std::move(fd));
    }
  }
  ~World() {
    vsock.reset();
    for (const uint32_t port : kListenPorts) ::unlink((path + "_" + std::to_string(port)).c_str());
    ::rmdir(dir.c_str());
  }

  void spin(int rounds) {
    int n = 0;
    (void)loop->run_until([&] { return n++ >= rounds; }, 0);
  }

  std::string dir, path;
  std::optional<hyper::EventLoop> loop;
  std::shared_ptr<Vsock> vsock;
  std::vector<UniqueFd> listeners;
  std::vector<UniqueFd> hosts;  // host programs' ends, for one input
};

// One input's guest: posts chains and checks what comes back.
struct Guest {
  explicit Guest(World& w) : world(w) {
    if (!world.vsock->activate(driver.activation(hyper::virtio::kFeatureVersion1 | hyper::virtio::kFeatureRingEventIdx))
             .ok())
      std::abort();
  }

  void post(size_t q, const std::vector<std::string>& readable, const std::vector<uint32_t>& writable) {
    if (readable.size() + writable.size() > driver.free_descriptors(q)) return;
    const uint16_t head = driver.post(q, readable, writable);
    uint64_t total = 0;
    for (const uint32_t n : writable) total += n;
    capacity[q][head] = total;
  }

  void check_used() {
    for (const size_t q : {kRx, kTx}) {
      for (const auto& used : driver.take_used(q)) {
        const auto it = capacity[q].find(used.head);
        if (it == capacity[q].end() || used.len > it->second) std::abort();
        if (q == kRx && used.len != 0 && used.len < PacketHeader::kSize) std::abort();
        capacity[q].erase(it);
      }
    }
  }

  World& world;
  FakeDriver driver{3, 64};
  std::map<uint16_t, uint64_t> capacity[2];  // per queue: head -> writable bytes
};

uint32_t pick_port(Input& in) {
  const uint8_t choice = in.byte() % 8;
  if (choice < 3) return kListenPorts[choice];
  if (choice < 7) return Vsock::kFirstLocalPort + (choice - 3);
  return in.u32();
}

void send_packet(Guest& g, Input& in) {
  const uint8_t shape = in.byte();
  PacketHeader h;
  h.src_cid = (shape & 1) ? in.u32() : kCid;
  h.dst_cid = (shape & 2) ? in.u32() : hyper::virtio::vsock::kHostCid;
  h.type = (shape & 4) ? in.byte() : hyper::virtio::vsock::kTypeStream;
  h.src_port = (shape & 8) ? in.u32() : 100 + in.byte() % 4;
  h.dst_port = pick_port(in);
  h.op = in.byte() % 9;
  h.flags = in.byte() % 4;
  h.buf_alloc = (shape & 16) ? in.u32() : 64 * 1024;
  h.fwd_cnt = in.u32();
  const uint8_t size_class = in.byte();
  const uint32_t payload_len = (size_class & 1) ? Vsock::kMaxPayload  // the common case of a busy stream
                               : std::min<uint32_t>(in.u16() | ((size_class & 2U) << 15), Vsock::kMaxPayload + 64);
  h.len = (shape & 32) ? in.u32() : payload_len;
  const auto header = h.encode();
  std::string packet(reinterpret_cast<const char*>(header.data()), header.size());
  packet += std::string(payload_len, static_cast<char>('a' + shape % 26));
  // Cut the packet anywhere: a header split across buffers is legal.
  std::vector<std::string> pieces;
  const size_t cuts = (shape & 64) ? in.byte() % 4 : 0;
  size_t at = 0;
  for (size_t i = 0; i < cuts && at < packet.size(); ++i) {
    const size_t n = 1 + in.u16() % (packet.size() - at);
    pieces.push_back(packet.substr(at, n));
    at += n;
  }
  if (at < packet.size()) pieces.push_back(packet.substr(at));
  // Bursts fill a host socket that is not read, and overrun the credit.
  const int copies = 1 + in.byte() % 8;
  for (int i = 0; i < copies; ++i) g.post(kTx, pieces, {});
  if (shape & 128) g.world.vsock->queue_notify(kTx);
}

void give_rx_buffers(Guest& g, Input& in) {
  const int count = 1 + in.byte() % 8;
  const uint8_t shape = in.byte();
  for (int i = 0; i < count; ++i) {
    std::vector<uint32_t> sizes;
    const int pieces = 1 + shape % 3;
    for (int p = 0; p < pieces; ++p) sizes.push_back((shape & 8) ? in.u16() % 80 : in.u16() % 9000);
    g.post(kRx, {}, sizes);
  }
  if (shape & 128) g.world.vsock->queue_notify(kRx);
}

void act_as_host(World& w, Input& in) {
  const uint8_t action = in.byte();
  const size_t index = in.byte();
  UniqueFd* host = w.hosts.empty() ? nullptr : &w.hosts[index % w.hosts.size()];
  switch (action % 6) {
    case 0: {  // a guest-initiated connection reaches its listener
      if (w.hosts.size() >= kMaxHosts) break;
      UniqueFd fd(::accept4(w.listeners[index % w.listeners.size()].get(), nullptr, nullptr,
                            SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (fd.valid()) w.hosts.push_back(std::move(fd));
      break;
    }
    case 1: {  // a host program connects and asks for a guest port
      if (w.hosts.size() >= kMaxHosts) break;
      UniqueFd fd = unix_socket();
      const sockaddr_un addr = address(w.path);
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) break;
      const std::string line = (action & 8) ? in.bytes(in.byte() % 48) : "CONNECT " + std::to_string(100 + index % 4) + "\n";
      (void)::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      w.hosts.push_back(std::move(fd));
      break;
    }
    case 2: {
      if (!host) break;
      const std::string data(in.u16() % 20000, 'h');
      (void)::send(host->get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      break;
    }
    case 3: {
      if (!host) break;
      char buf[65536];
      (void)::recv(host->get(), buf, sizeof buf, MSG_DONTWAIT);
      break;
    }
    case 4:
      if (host) ::shutdown(host->get(), (action & 8) ? SHUT_WR : SHUT_RDWR);
      break;
    default:
      if (host) w.hosts.erase(w.hosts.begin() + static_cast<std::ptrdiff_t>(index % w.hosts.size()));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  Input in(data, size);
  {
    Guest guest(world);
    for (int steps = 0; !in.empty() && steps < 64; ++steps) {
      switch (in.byte() % 5) {
        case 0: send_packet(guest, in); break;
        case 1: give_rx_buffers(guest, in); break;
        case 2: act_as_host(world, in); break;
        case 3: world.vsock->queue_notify(in.byte() % 3); break;
        default: world.spin(1 + in.byte() % 8); break;
      }
      guest.check_used();
    }
    world.spin(8);
    guest.check_used();
    world.hosts.clear();
    world.spin(8);  // the device sees the host programs go
    world.vsock->reset();
    guest.check_used();
  }
  // Connections the guest opened but nobody accepted: accept and drop them.
  for (const auto& listener : world.listeners) {
    while (UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)).valid()) {
    }
  }
  world.spin(8);
  world.vsock->reset();  // what the last spin accepted
  if (world.vsock->stats().connections != 0) std::abort();
  return 0;
}
