#include "devices/serial.hpp"

#include "vmm/snapshot_codec.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace hyper::devices {
namespace {

enum Register : uint64_t { kData = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7 };

constexpr uint8_t kIerRxAvailable = 0x01, kIerThrEmpty = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThrEmpty = 0x02, kIirRxAvailable = 0x04, kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kLsrDataReady = 0x01, kLsrOverrun = 0x02, kLsrThrEmpty = 0x20, kLsrIdle = 0x40;
constexpr uint8_t kMsrDefault = 0xb0;  // DCD, DSR, CTS: a cable is always attached
constexpr size_t kFlushThreshold = 4096;

}  // namespace

void Serial::read(uint64_t, uint64_t offset, std::span<uint8_t> data) {
  if (data.empty()) return;
  std::lock_guard lock(mutex_);
  data[0] = read_register(offset);
  for (size_t i = 1; i < data.size(); ++i) data[i] = 0;
}

void Serial::write(uint64_t, uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) return;
  std::lock_guard lock(mutex_);
  write_register(offset, data[0]);
}

uint8_t Serial::read_register(uint64_t offset) {
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kData: {
      if (dlab) return dll_;
      if (rx_.empty()) return 0;
      const uint8_t byte = rx_.front();
      rx_.pop_front();
      update_interrupt();
      return byte;
    }
    case kIer: return dlab ? dlm_ : ier_;
    case kIirFcr: {
      uint8_t iir = kIirNone;
      if ((ier_ & kIerRxAvailable) && !rx_.empty()) {
        iir = kIirRxAvailable;
      } else if ((ier_ & kIerThrEmpty) && thr_interrupt_pending_) {
        iir = kIirThrEmpty;
        thr_interrupt_pending_ = false;  // reading IIR acknowledges THRE
      }
      update_interrupt();
      return iir | ((fcr_ & kFcrEnable) ? kIirFifoEnabled : 0);
    }
    case kLcr: return lcr_;
    case kMcr: return mcr_;
    case kLsr: {
      const uint8_t lsr = kLsrThrEmpty | kLsrIdle | (rx_.empty() ? 0 : kLsrDataReady) | (overrun_ ? kLsrOverrun : 0);
      overrun_ = false;  // reading LSR clears the error bits
      return lsr;
    }
    case kMsr:
      if (mcr_ & kMcrLoop) {  // loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD
        return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) | ((mcr_ & 0x0c) << 4));
      }
      return kMsrDefault;
    case kScr: return scr_;
    default: return 0;
  }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) {
        dll_ = value;
        return;
      }
      transmit(value);
      thr_interrupt_pending_ = true;
      update_interrupt();
      return;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return;
      }
      if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) thr_interrupt_pending_ = true;
      ier_ = value & 0x0f;
      update_interrupt();
      return;
    case kIirFcr:
      fcr_ = value;
      if (value & kFcrClearRx) rx_.clear();
      update_interrupt();
      return;
    case kLcr: lcr_ = value; return;
    case kMcr: mcr_ = value & 0x1f; return;
    case kScr: scr_ = value; return;
    default: return;  // LSR and MSR are read-only
  }
}

void Serial::transmit(uint8_t byte) {
  if (mcr_ & kMcrLoop) {  // a guest that never reads must not grow our memory
    if (rx_.size() < kRxFifoBytes) rx_.push_back(byte); else overrun_ = true;
    return;
  }
  tail_.push_back(static_cast<char>(byte));
  if (tail_.size() > kTailBytes) tail_.pop_front();
  if (out_fd_ < 0) return;
  if (pending_.size() >= kBacklogBytes) {
    ++dropped_;
    return;
  }
  pending_.push_back(static_cast<char>(byte));
  if (byte == '\n' || pending_.size() == kFlushThreshold) output_ready_.signal();
}

void Serial::update_interrupt() {
  const bool active = ((ier_ & kIerRxAvailable) && !rx_.empty()) || ((ier_ & kIerThrEmpty) && thr_interrupt_pending_);
  // The line is edge-triggered (ISA IRQ through irqfd): signal only on a rising edge.
  if (active && !irq_asserted_) irq_.signal();
  irq_asserted_ = active;
}

void Serial::flush(std::chrono::milliseconds patience) {
  if (out_fd_ < 0) return;
  {
    std::lock_guard lock(mutex_);
    unwritten_.append(pending_);
    pending_.clear();
  }
  const auto deadline = std::chrono::steady_clock::now() + patience;
  size_t done = 0;
  while (done < unwritten_.size()) {
    const ssize_t n = ::write(out_fd_, unwritten_.data() + done, unwritten_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd pfd{out_fd_, POLLOUT, 0};
      if (left.count() > 0 && ::poll(&pfd, 1, static_cast<int>(left.count())) > 0) continue;
      break;  // the reader is slow: keep the rest for the next flush
    }
    done = unwritten_.size();  // a closed or broken console loses output, never the VM
  }
  unwritten_.erase(0, done);
  if (unwritten_.size() > kBacklogBytes) {  // drop the oldest: the tail keeps the latest anyway
    const size_t excess = unwritten_.size() - kBacklogBytes;
    unwritten_.erase(0, excess);
    std::lock_guard lock(mutex_);
    dropped_ += excess;
  }
}

uint64_t Serial::dropped_bytes() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

std::string Serial::tail() const {
  std::lock_guard lock(mutex_);
  return std::string(tail_.begin(), tail_.end());
}

void Serial::push_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  for (uint8_t byte : bytes) {
    if (rx_.size() < kInputBufferBytes) rx_.push_back(byte); else overrun_ = true;
  }
  update_interrupt();
}

}  // namespace hyper::devices

namespace hyper::devices {

std::vector<uint8_t> Serial::save() const {
  std::lock_guard lock(mutex_);
  snapshot::Encoder e;
  e.put(ier_).put(lcr_).put(mcr_).put(scr_).put(fcr_).put(dll_).put(dlm_);
  e.put(static_cast<uint8_t>(thr_interrupt_pending_)).put(static_cast<uint8_t>(overrun_));
  e.put_vector(std::vector<uint8_t>(rx_.begin(), rx_.end()));
  return e.bytes();
}

Status Serial::restore(std::span<const uint8_t> bytes) {
  snapshot::Decoder d(bytes, "serial port");
  std::lock_guard lock(mutex_);
  ier_ = HYPER_TRY(d.get<uint8_t>());
  lcr_ = HYPER_TRY(d.get<uint8_t>());
  mcr_ = HYPER_TRY(d.get<uint8_t>());
  scr_ = HYPER_TRY(d.get<uint8_t>());
  fcr_ = HYPER_TRY(d.get<uint8_t>());
  dll_ = HYPER_TRY(d.get<uint8_t>());
  dlm_ = HYPER_TRY(d.get<uint8_t>());
  thr_interrupt_pending_ = HYPER_TRY(d.get<uint8_t>()) != 0;
  overrun_ = HYPER_TRY(d.get<uint8_t>()) != 0;
  const auto rx = HYPER_TRY(d.get_vector<uint8_t>());
  HYPER_CHECK(d.finish());
  if (rx.size() > kInputBufferBytes) return make_error(Errc::invalid_argument, "snapshot: the serial port's input buffer is overfull");
  rx_.assign(rx.begin(), rx.end());
  irq_asserted_ = false;
  update_interrupt();
  return {};
}

}  // namespace hyper::devices
