// A 16550A UART (COM1) as Linux's 8250 driver expects it: transmit is instantaneous,
// so the FIFO is always empty and THRE interrupts fire as soon as they are enabled.
//
// Output never blocks the vCPU: transmitted bytes go to a bounded buffer and
// `output_ready` is signalled at each newline; the event-loop thread then calls flush(),
// which writes what the console fd takes without blocking (give it a non-blocking fd)
// and drops the oldest bytes if the reader falls more than kBacklogBytes behind. The
// last kTailBytes are kept so the VMM can show the console tail when a guest dies.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/bus.hpp"
#include "vmm/event_fd.hpp"
#include "vmm/result.hpp"

namespace hyper::devices {

class Serial final : public BusDevice {
 public:
  static constexpr uint64_t kRegisterCount = 8;  // one byte apart: ports, or MMIO with reg-shift 0
  static constexpr size_t kTailBytes = 16 * 1024;
  static constexpr size_t kRxFifoBytes = 16;         // loopback: a 16550A FIFO
  static constexpr size_t kInputBufferBytes = 4096;  // host input not yet read by the guest
  static constexpr size_t kBacklogBytes = 1 << 20;   // output the console has not taken yet

  // `out_fd` is not owned; -1 discards output (the tail is still kept).
  Serial(EventFd irq, EventFd output_ready, int out_fd)
      : irq_(std::move(irq)), output_ready_(std::move(output_ready)), out_fd_(out_fd) {}

  void read(uint64_t base, uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t base, uint64_t offset, std::span<const uint8_t> data) override;

  [[nodiscard]] int output_ready_fd() const { return output_ready_.fd(); }
  // Writes buffered output; waits up to `patience` for a slow reader. Call from one
  // thread only (the event loop).
  void flush(std::chrono::milliseconds patience = std::chrono::milliseconds{0});
  // Console bytes dropped because the reader fell behind.
  [[nodiscard]] uint64_t dropped_bytes() const;
  // The last kTailBytes bytes the guest wrote.
  [[nodiscard]] std::string tail() const;
  // Queues bytes for the guest to read (console input).
  void push_input(std::span<const uint8_t> bytes);

  // The registers and unread input, for a snapshot; restore() takes them back (and
  // raises the interrupt the guest was owed). Output already transmitted is not state.
  [[nodiscard]] std::vector<uint8_t> save() const;
  [[nodiscard]] Status restore(std::span<const uint8_t> bytes);

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  void transmit(uint8_t byte);
  void update_interrupt();

  mutable std::mutex mutex_;
  EventFd irq_;
  EventFd output_ready_;
  int out_fd_;
  std::string pending_;    // transmitted, not yet handed to flush() (guarded by mutex_)
  std::string unwritten_;  // handed to flush(), not yet taken by out_fd_ (flusher only)
  uint64_t dropped_ = 0;
  std::deque<char> tail_;  // bounded by kTailBytes
  std::deque<uint8_t> rx_;

  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
  uint8_t dll_ = 0x0c, dlm_ = 0;  // 9600 baud until the guest says otherwise
  bool thr_interrupt_pending_ = false;
  bool overrun_ = false;  // bytes were dropped since the guest last read LSR
  bool irq_asserted_ = false;
};

}  // namespace hyper::devices
