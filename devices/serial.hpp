// A 16550A UART (COM1) as Linux's 8250 driver expects it: transmit is instantaneous,
// so the FIFO is always empty and THRE interrupts fire as soon as they are enabled.
// Output goes to an fd, line-buffered (flush() pushes partial lines out); the last
// few KiB are kept so the VMM can show the console tail when a guest dies.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "vmm/bus.hpp"
#include "vmm/event_fd.hpp"

namespace hyper::devices {

class Serial final : public BusDevice {
 public:
  static constexpr size_t kTailBytes = 16 * 1024;

  // `out_fd` is not owned; -1 discards output (the tail is still kept).
  Serial(EventFd irq, int out_fd) : irq_(std::move(irq)), out_fd_(out_fd) {}

  void read(uint64_t base, uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t base, uint64_t offset, std::span<const uint8_t> data) override;

  [[nodiscard]] int irq_fd() const { return irq_.fd(); }
  void flush();
  // The last kTailBytes bytes the guest wrote.
  [[nodiscard]] std::string tail() const;
  // Queues bytes for the guest to read (console input).
  void push_input(std::span<const uint8_t> bytes);

 private:
  uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  void transmit(uint8_t byte);
  void update_interrupt();
  void flush_locked();

  mutable std::mutex mutex_;
  EventFd irq_;
  int out_fd_;
  std::string pending_;    // bytes not yet written to out_fd_
  std::deque<char> tail_;  // bounded by kTailBytes
  std::deque<uint8_t> rx_;

  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
  uint8_t dll_ = 0x0c, dlm_ = 0;  // 9600 baud until the guest says otherwise
  bool thr_interrupt_pending_ = false;
  bool irq_asserted_ = false;
};

}  // namespace hyper::devices
