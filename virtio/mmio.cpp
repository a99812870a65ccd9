#include "virtio/mmio.hpp"

#include "vmm/snapshot_codec.hpp"

#include <cstdio>
#include <cstring>
#include <optional>

namespace hyper::virtio {
namespace {

// Register offsets of the version-2 MMIO layout.
enum Register : uint64_t {
  kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
  kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
  kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050,
  kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
  kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
  kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4, kConfigGeneration = 0x0fc, kConfig = 0x100,
};

constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr uint32_t kMmioVersion = 2;
constexpr uint32_t kVendor = 0x52505948;      // "HYPR"
constexpr uint32_t kInterruptUsedBuffer = 1, kInterruptConfigChange = 2;

void set_half(uint64_t& value, bool high, uint32_t half) {
  const int shift = high ? 32 : 0;
  value = (value & ~(0xffffffffULL << shift)) | (uint64_t{half} << shift);
}

}  // namespace

std::string mmio_cmdline_entry(uint64_t base, uint32_t irq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "virtio_mmio.device=4K@0x%llx:%u", static_cast<unsigned long long>(base), irq);
  return buf;
}

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory, EventFd irq)
    : device_(std::move(device)), memory_(&memory), irq_(std::move(irq)) {
  for (uint16_t max : device_->queue_max_sizes()) queues_.push_back(QueueState{max});
}

uint32_t MmioTransport::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

uint64_t MmioTransport::rejected_writes() const {
  std::lock_guard lock(mutex_);
  return rejected_;
}

std::string MmioTransport::describe() const {
  char line[160];
  {
    std::lock_guard lock(mutex_);
    std::snprintf(line, sizeof line, "device type %u: status 0x%x, interrupt status 0x%x, features 0x%llx, %llu refused writes; ",
                  device_->device_type(), status_, interrupt_status_, static_cast<unsigned long long>(driver_features_),
                  static_cast<unsigned long long>(rejected_));
  }
  return line + device_->describe();
}

MmioTransport::QueueState* MmioTransport::selected_queue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

const MmioTransport::QueueState* MmioTransport::selected_queue() const {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

bool MmioTransport::configuring_queues() const {
  return (status_ & kStatusFeaturesOk) && !(status_ & (kStatusDriverOk | kStatusFailed));
}

void MmioTransport::read(uint64_t, uint64_t offset, std::span<uint8_t> data) {
  if (offset >= kConfig) {  // device config space: any width, the device bounds it
    device_->read_config(offset - kConfig, data);
    return;
  }
  std::memset(data.data(), 0, data.size());
  if (data.size() != 4 || offset % 4) return;  // registers are 32-bit only
  std::lock_guard lock(mutex_);
  const uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, 4);
}

uint32_t MmioTransport::read_register(uint64_t offset) const {
  const QueueState* q = selected_queue();
  switch (offset) {
    case kMagic: return kMagicValue;
    case kVersion: return kMmioVersion;
    case kDeviceId: return device_->device_type();
    case kVendorId: return kVendor;
    case kDeviceFeatures: {
      const uint64_t features = device_->device_features();
      return device_features_sel_ == 0 ? static_cast<uint32_t>(features)
             : device_features_sel_ == 1 ? static_cast<uint32_t>(features >> 32) : 0;
    }
    case kQueueNumMax: return q ? q->max_size : 0;
    case kQueueReady: return q && q->ready ? 1 : 0;
    case kInterruptStatus: return interrupt_status_;
    case kStatus: return status_;
    case kConfigGeneration: return config_generation_;
    default: return 0;
  }
}

void MmioTransport::write(uint64_t, uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= kConfig) {
    device_->write_config(offset - kConfig, data);
    return;
  }
  if (data.size() != 4 || offset % 4) {
    std::lock_guard lock(mutex_);
    ++rejected_;
    return;
  }
  uint32_t value;
  std::memcpy(&value, data.data(), 4);

  if (offset == kQueueNotify) {  // the hot path: no state change, the device does the work
    bool live;
    {
      std::lock_guard lock(mutex_);
      live = (status_ & kStatusDriverOk) && value < queues_.size();
      rejected_ += live ? 0 : 1;
    }
    if (live) device_->queue_notify(value);
    return;
  }
  if (offset == kStatus) {
    write_status(value);
    return;
  }
  std::lock_guard lock(mutex_);
  write_register(offset, value);
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  QueueState* q = selected_queue();
  const bool queue_writable = configuring_queues() && q && !q->ready;
  switch (offset) {
    case kDeviceFeaturesSel: device_features_sel_ = value; return;
    case kDriverFeaturesSel: driver_features_sel_ = value; return;
    case kDriverFeatures:
      // Features are fixed once FEATURES_OK is set; only two 32-bit halves exist.
      if ((status_ & kStatusDriver) && !(status_ & kStatusFeaturesOk) && driver_features_sel_ < 2) {
        set_half(driver_features_, driver_features_sel_ == 1, value);
        return;
      }
      break;
    case kQueueSel: queue_sel_ = value; return;
    case kQueueNum:
      if (queue_writable && value > 0 && value <= q->max_size && !(value & (value - 1))) {
        q->size = static_cast<uint16_t>(value);
        return;
      }
      break;
    case kQueueReady:
      if (configuring_queues() && q && value <= 1) {
        q->ready = value == 1 && q->size != 0;
        return;
      }
      break;
    case kQueueDescLow: case kQueueDescHigh:
    case kQueueDriverLow: case kQueueDriverHigh:
    case kQueueDeviceLow: case kQueueDeviceHigh:
      if (queue_writable) {
        uint64_t& addr = offset < kQueueDriverLow ? q->desc : offset < kQueueDeviceLow ? q->driver : q->device;
        set_half(addr, offset % 8 == 4, value);
        return;
      }
      break;
    case kInterruptAck: interrupt_status_ &= ~value; return;
    default: break;
  }
  ++rejected_;
}

// What a driver could never have reached through the registers, which refuse it: a
// restored state is held to the same rules.
std::optional<std::string> MmioTransport::impossible_state_locked() const {
  if (status_ & ~0xcfu) return "has reserved status bits";
  if ((status_ & kStatusDriverOk) && !(status_ & kStatusFeaturesOk)) return "is DRIVER_OK without FEATURES_OK";
  if ((status_ & kStatusFeaturesOk) && !features_acceptable()) return "has features its device does not offer";
  for (size_t i = 0; i < queues_.size(); ++i) {
    const QueueState& q = queues_[i];
    if (q.size > q.max_size || (q.size & (q.size - 1)) || (q.ready && q.size == 0))
      return "has queue " + std::to_string(i) + " of an impossible size";
  }
  return std::nullopt;
}

bool MmioTransport::features_acceptable() const {
  const uint64_t offered = device_->device_features();
  return (driver_features_ & kFeatureVersion1) && !(driver_features_ & ~offered);
}

// Only forward transitions are legal: ACKNOWLEDGE, then DRIVER, then FEATURES_OK (if the
// features are acceptable), then DRIVER_OK; FAILED at any time; 0 resets.
void MmioTransport::write_status(uint32_t value) {
  std::unique_lock lock(mutex_);
  if (value == 0) {
    reset_locked();
    lock.unlock();
    device_->reset();
    return;
  }
  const uint32_t added = value & ~status_;
  const bool clears_bits = status_ & ~value;
  const bool sets_device_bit = added & kStatusNeedsReset;
  const bool out_of_order = ((value & kStatusDriver) && !(value & kStatusAcknowledge)) ||
                            ((added & kStatusFeaturesOk) && !(value & kStatusDriver)) ||
                            ((added & kStatusDriverOk) && !(status_ & kStatusFeaturesOk));
  if (clears_bits || sets_device_bit || out_of_order || (value & ~0xcfu)) {
    ++rejected_;
    return;
  }
  status_ = value;
  if ((added & kStatusFeaturesOk) && !features_acceptable()) status_ &= ~kStatusFeaturesOk;
  if (!(added & kStatusDriverOk)) return;

  // DRIVER_OK: hand the device its queues. It runs outside our lock, since the device
  // may raise an interrupt (which takes the lock) as soon as it is active.
  auto activation = activation_locked();
  lock.unlock();
  Status activated = activation ? device_->activate(std::move(activation).value()) : Status(std::move(activation).error());
  if (!activated) enter_needs_reset();
}

Result<Activation> MmioTransport::activation_locked() {
  Activation activation{memory_, driver_features_, {}, [this] { raise(kInterruptUsedBuffer); },
                        [this] { enter_needs_reset(); }};
  for (size_t i = 0; i < queues_.size(); ++i) {
    const QueueState& q = queues_[i];
    if (!q.ready) return make_error(Errc::invalid_argument, "queue " + std::to_string(i) + " was not set up");
    activation.queues.push_back(HYPER_TRY(
        Queue::create(*memory_, {q.size, q.desc, q.driver, q.device, (driver_features_ & kFeatureRingEventIdx) != 0})));
  }
  return activation;
}

void MmioTransport::enter_needs_reset() {
  {
    std::lock_guard lock(mutex_);
    if (status_ & kStatusNeedsReset) return;
    status_ |= kStatusNeedsReset;
    ++config_generation_;
  }
  raise(kInterruptConfigChange);
}

void MmioTransport::reset_locked() {
  status_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  interrupt_status_ = 0;
  for (auto& q : queues_) q = QueueState{q.max_size};
}

void MmioTransport::raise(uint32_t interrupt_bit) {
  {
    std::lock_guard lock(mutex_);
    interrupt_status_ |= interrupt_bit;
  }
  irq_.signal();
}

}  // namespace hyper::virtio

namespace hyper::virtio {

std::vector<uint8_t> MmioTransport::save() const {
  // The device's lock before ours, as when it raises an interrupt while serving a queue.
  const std::vector<QueuePosition> positions = device_->queue_positions();
  std::lock_guard lock(mutex_);
  snapshot::Encoder e;
  e.put(device_->device_type()).put(static_cast<uint32_t>(queues_.size()));
  e.put(status_).put(device_features_sel_).put(driver_features_sel_).put(queue_sel_);
  e.put(driver_features_).put(interrupt_status_).put(config_generation_);
  for (const QueueState& q : queues_) e.put(q.size).put(static_cast<uint8_t>(q.ready)).put(q.desc).put(q.driver).put(q.device);
  e.put_vector(positions);
  return e.bytes();
}

Status MmioTransport::restore(std::span<const uint8_t> bytes, const std::string& what) {
  snapshot::Decoder d(bytes, what);
  const auto type = HYPER_TRY(d.get<uint32_t>());
  const auto queue_count = HYPER_TRY(d.get<uint32_t>());
  if (type != device_->device_type() || queue_count != queues_.size())
    return make_error(Errc::invalid_argument, "snapshot: " + what + " was a virtio device of type " + std::to_string(type) +
                                                  " with " + std::to_string(queue_count) + " queue(s); this machine has type " +
                                                  std::to_string(device_->device_type()) + " there");
  std::unique_lock lock(mutex_);
  status_ = HYPER_TRY(d.get<uint32_t>());
  device_features_sel_ = HYPER_TRY(d.get<uint32_t>());
  driver_features_sel_ = HYPER_TRY(d.get<uint32_t>());
  queue_sel_ = HYPER_TRY(d.get<uint32_t>());
  driver_features_ = HYPER_TRY(d.get<uint64_t>());
  interrupt_status_ = HYPER_TRY(d.get<uint32_t>());
  config_generation_ = HYPER_TRY(d.get<uint32_t>());
  for (QueueState& q : queues_) {
    q.size = HYPER_TRY(d.get<uint16_t>());
    q.ready = HYPER_TRY(d.get<uint8_t>()) != 0;
    q.desc = HYPER_TRY(d.get<uint64_t>());
    q.driver = HYPER_TRY(d.get<uint64_t>());
    q.device = HYPER_TRY(d.get<uint64_t>());
  }
  const auto positions = HYPER_TRY(d.get_vector<QueuePosition>());
  HYPER_CHECK(d.finish());
  if (auto impossible = impossible_state_locked()) {
    reset_locked();
    return make_error(Errc::invalid_argument, "snapshot: " + what + " " + *impossible);
  }
  const bool live = (status_ & kStatusDriverOk) && !(status_ & (kStatusNeedsReset | kStatusFailed));
  const bool raised = interrupt_status_ != 0;
  if (!live) {
    lock.unlock();
    if (raised) irq_.signal();
    return {};
  }
  Activation activation = HYPER_TRY(activation_locked());
  if (positions.size() != activation.queues.size())
    return make_error(Errc::invalid_argument, "snapshot: " + what + " was active but its queue positions are missing");
  for (size_t i = 0; i < positions.size(); ++i) activation.queues[i].set_position(positions[i]);
  lock.unlock();
  HYPER_CHECK(device_->activate(std::move(activation)));
  if (device_->restored()) {
    {
      std::lock_guard relock(mutex_);
      ++config_generation_;
    }
    raise(kInterruptConfigChange);
  } else if (raised) {
    irq_.signal();
  }
  return {};
}

}  // namespace hyper::virtio
