// The pieces of a machine's snapshot that need no /dev/kvm: the section codec, the UART's
// and the virtio-mmio transport's save and restore, and guest memory written sparse.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "devices/serial.hpp"
#include "tests/unit/temp_dir.hpp"
#include "virtio/mmio.hpp"
#include "vmm/snapshot_codec.hpp"
#include "vmm/snapshot_file.hpp"
#include "vmm/vcpu_state.hpp"

using namespace hyper;
using namespace hyper::virtio;

namespace {

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A device that remembers its activation, so the queue positions can be checked.
struct RecordingDevice : VirtioDevice {
  explicit RecordingDevice(uint32_t type = 4) : type_(type) {}
  uint32_t device_type() const override { return type_; }
  uint64_t device_features() const override { return kFeatureVersion1 | kFeatureRingEventIdx; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void read_config(uint64_t, std::span<uint8_t> data) const override { std::memset(data.data(), 0, data.size()); }
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(Activation a) override {
    positions.clear();
    for (const auto& q : a.queues) positions.push_back(q.position());
    features = a.features;
    ++activations;
    return {};
  }
  void queue_notify(uint32_t) override {}
  void reset() override { positions.clear(); }
  std::vector<QueuePosition> queue_positions() const override { return positions; }
  bool restored() override {
    ++restores;
    return config_changed;
  }

  uint32_t type_;
  std::vector<QueuePosition> positions;
  uint64_t features = 0;
  int activations = 0, restores = 0;
  bool config_changed = false;
};

GuestMemory small_memory() {
  const RegionSpec spec[] = {{0, 0x100000}};
  return GuestMemory::create(spec).value();
}

struct Transport {
  explicit Transport(const GuestMemory& memory, uint32_t type = 4)
      : device(std::make_shared<RecordingDevice>(type)), irq(EventFd::create().value()), irq_fd(irq.fd()),
        mmio(device, memory, std::move(irq)) {}
  uint32_t rd(uint64_t reg) {
    uint32_t v = 0;
    mmio.read(0xd0000000, reg, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  void wr(uint64_t reg, uint32_t v) { mmio.write(0xd0000000, reg, {reinterpret_cast<const uint8_t*>(&v), 4}); }
  // The Linux driver's sequence, to DRIVER_OK with one 8-entry queue.
  void bring_up() {
    wr(0x070, kStatusAcknowledge);
    wr(0x070, kStatusAcknowledge | kStatusDriver);
    wr(0x024, 1);
    wr(0x020, 1);  // VERSION_1
    wr(0x070, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    wr(0x030, 0);
    wr(0x038, 8);
    wr(0x080, 0x1000);
    wr(0x090, 0x2000);
    wr(0x0a0, 0x3000);
    wr(0x044, 1);
    wr(0x070, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  }
  std::shared_ptr<RecordingDevice> device;
  EventFd irq;
  int irq_fd;
  MmioTransport mmio;
};

}  // namespace

TEST_CASE("snapshot codec: values and byte strings come back in order; short or long sections are errors") {
  snapshot::Encoder e;
  e.put(uint32_t{7}).put_bytes(std::vector<uint8_t>{1, 2, 3}).put(uint64_t{1} << 40).put_vector(std::vector<uint16_t>{9, 8});
  snapshot::Decoder d(e.bytes(), "test");
  CHECK(*d.get<uint32_t>() == 7);
  CHECK(d.get_bytes()->size() == 3);
  CHECK(*d.get<uint64_t>() == (uint64_t{1} << 40));
  CHECK(*d.get_vector<uint16_t>() == std::vector<uint16_t>{9, 8});
  CHECK(d.finish().ok());
  CHECK(mentions(d.get<uint8_t>().error().message, "the test section is shorter"));

  std::vector<uint8_t> lying = e.bytes();
  lying[4] = 0xff;  // the byte string claims more than there is
  snapshot::Decoder bad(lying, "device 2");
  (void)bad.get<uint32_t>();
  CHECK(mentions(bad.get_bytes().error().message, "device 2 section is shorter"));
  snapshot::Decoder extra(e.bytes(), "clock");
  (void)extra.get<uint32_t>();
  CHECK(mentions(extra.finish().error().message, "unexpected bytes"));
}

TEST_CASE("snapshot: a vCPU's state survives encoding; a short one is refused") {
  VcpuState s;
  s.regs.rip = 0xffffffff81000000;
  s.sregs.cr3 = 0x1234000;
  s.xsave.assign(4096, 0x5a);
  s.msrs = {{0x10, 0, 42}, {0xc0000080, 0, 0xd01}};
  s.events.nmi.pending = 1;
  const auto bytes = s.encode();
  auto back = VcpuState::decode(bytes, 3);
  REQUIRE(back.ok());
  CHECK(back->regs.rip == s.regs.rip);
  CHECK(back->sregs.cr3 == s.sregs.cr3);
  CHECK(back->xsave == s.xsave);
  REQUIRE(back->msrs.size() == 2);
  CHECK(back->msrs[1].data == 0xd01);
  CHECK(back->events.nmi.pending == 1);
  auto cut = VcpuState::decode(std::span(bytes).first(bytes.size() - 1), 3);
  CHECK(mentions(cut.error().message, "vCPU 3"));
}

TEST_CASE("snapshot: the UART's registers and unread input are restored, and the owed interrupt raised") {
  auto make = [] { return devices::Serial(EventFd::create().value(), EventFd::create().value(), -1); };
  devices::Serial before = make();
  auto out = [](devices::Serial& s, uint64_t reg, uint8_t v) { s.write(0x3f8, reg, {&v, 1}); };
  auto in = [](devices::Serial& s, uint64_t reg) {
    uint8_t v = 0;
    s.read(0x3f8, reg, {&v, 1});
    return v;
  };
  out(before, 3, 0x03);  // LCR: 8N1
  out(before, 7, 0x5c);  // scratch
  out(before, 1, 0x01);  // IER: receive interrupts
  const uint8_t typed[] = {'o', 'k'};
  before.push_input(typed);
  devices::Serial after = make();
  REQUIRE(after.restore(before.save()).ok());
  CHECK(in(after, 3) == 0x03);
  CHECK(in(after, 7) == 0x5c);
  CHECK(in(after, 1) == 0x01);
  CHECK((in(after, 5) & 0x01) == 0x01);  // LSR: data ready
  CHECK(in(after, 0) == 'o');
  CHECK(in(after, 0) == 'k');
  CHECK(mentions(after.restore(std::vector<uint8_t>{1, 2}).error().message, "serial port"));
}

TEST_CASE("snapshot: a virtio-mmio transport comes back active with its queue positions") {
  GuestMemory memory = small_memory();
  Transport before(memory);
  before.bring_up();
  REQUIRE(before.device->activations == 1);
  before.device->positions = {{5, 4, 3}};  // where the device got to in its ring
  const std::vector<uint8_t> saved = before.mmio.save();

  Transport after(memory);
  REQUIRE(after.mmio.restore(saved, "virtio device 1").ok());
  CHECK(after.rd(0x070) == (kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk));
  CHECK(after.device->activations == 1);
  CHECK(after.device->restores == 1);
  CHECK(after.device->features == kFeatureVersion1);
  REQUIRE(after.device->positions.size() == 1);
  CHECK(after.device->positions[0].next_avail == 5);
  CHECK(after.device->positions[0].next_used == 4);
  CHECK(after.device->positions[0].last_notified == 3);
  after.wr(0x030, 0);
  CHECK(after.rd(0x038) == 0);  // QueueNum is write-only; reads as 0
  CHECK(after.rd(0x044) == 1);  // ready

  Transport wrong(memory, 2);  // a blk where the snapshot had an rng
  CHECK(mentions(wrong.mmio.restore(saved, "virtio device 1").error().message, "type 4"));
  Transport cut(memory);
  CHECK(mentions(cut.mmio.restore(std::span(saved).first(20), "virtio device 1").error().message, "shorter"));
}

TEST_CASE("snapshot: a device restored onto other backing tells its driver to read its configuration again") {
  GuestMemory memory = small_memory();
  Transport before(memory);
  before.bring_up();
  before.device->positions = {{0, 0, 0}};
  const uint32_t generation = before.rd(0x0fc);
  Transport after(memory);
  after.device->config_changed = true;
  REQUIRE(after.mmio.restore(before.mmio.save(), "virtio device 1").ok());
  CHECK((after.rd(0x060) & 0x2) == 0x2);  // InterruptStatus: configuration change
  CHECK(after.rd(0x0fc) == generation + 1);
  uint64_t raised = 0;
  CHECK(::read(after.irq_fd, &raised, sizeof raised) == sizeof raised);
}

TEST_CASE("snapshot: a transport state the registers would have refused is refused on restore") {
  GuestMemory memory = small_memory();
  Transport before(memory);
  before.bring_up();
  before.device->positions = {{0, 0, 0}};
  const std::vector<uint8_t> saved = before.mmio.save();
  // The layout: type, queue count, status, three selectors, features (8), interrupt
  // status, config generation; then queue 0's size.
  constexpr size_t kStatusAt = 8, kQueueSizeAt = 40;
  auto patched = [&](size_t at, uint16_t value) {
    std::vector<uint8_t> bytes = saved;
    std::memcpy(bytes.data() + at, &value, sizeof value);
    return bytes;
  };
  Transport oversized(memory);
  CHECK(mentions(oversized.mmio.restore(patched(kQueueSizeAt, 512), "virtio device 1").error().message, "impossible size"));
  CHECK(oversized.device->activations == 0);
  CHECK(oversized.rd(0x070) == 0);
  Transport odd(memory);
  CHECK(mentions(odd.mmio.restore(patched(kQueueSizeAt, 6), "virtio device 1").error().message, "impossible size"));
  Transport reserved(memory);
  CHECK(mentions(reserved.mmio.restore(patched(kStatusAt, 0x1f), "virtio device 1").error().message, "reserved"));
  Transport early(memory);
  CHECK(mentions(early.mmio.restore(patched(kStatusAt, 0x07), "virtio device 1").error().message, "without FEATURES_OK"));
}

TEST_CASE("snapshot: an inactive transport is restored without activating its device") {
  GuestMemory memory = small_memory();
  Transport before(memory);
  before.wr(0x070, kStatusAcknowledge);
  Transport after(memory);
  REQUIRE(after.mmio.restore(before.mmio.save(), "virtio device 1").ok());
  CHECK(after.rd(0x070) == kStatusAcknowledge);
  CHECK(after.device->activations == 0);
}

TEST_CASE("snapshot file: memory regions are written one after the other, zero pages as holes") {
  test::TempDir dir("hyper-snapshot-sparse");
  std::vector<uint8_t> low(64 * 4096, 0), high(16 * 4096, 0);
  low[5 * 4096 + 7] = 0xaa;
  high[15 * 4096] = 0xbb;
  snapshot::Writer w;
  w.add(snapshot::SectionKind::machine, 0, std::vector<uint8_t>{1});
  w.set_memory({std::span<const uint8_t>(low), std::span<const uint8_t>(high)});
  const auto path = dir.path / "sparse.snap";
  REQUIRE(w.write(path).ok());
  auto reader = snapshot::Reader::open(path);
  REQUIRE(reader.ok());
  const auto ram = reader->memory();
  REQUIRE(ram.has_value());
  CHECK(ram->size == low.size() + high.size());
  std::vector<uint8_t> back(ram->size);
  REQUIRE(::pread(reader->fd(), back.data(), back.size(), static_cast<off_t>(ram->offset)) == static_cast<ssize_t>(back.size()));
  CHECK(back[5 * 4096 + 7] == 0xaa);
  CHECK(back[low.size() + 15 * 4096] == 0xbb);
  CHECK(std::memcmp(back.data(), low.data(), low.size()) == 0);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == ram->offset + ram->size);
  // Two pages of data (and the state) take blocks; the 78 zero pages do not.
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 16 * 4096);
}
