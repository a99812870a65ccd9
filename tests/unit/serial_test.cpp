#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "devices/serial.hpp"

using namespace hyper;
using namespace hyper::devices;

namespace {
struct Pipe {
  Pipe() { REQUIRE(::pipe2(fds, O_NONBLOCK) == 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::string drain() const {
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  int fds[2];
};

uint8_t in(Serial& s, uint64_t reg) {
  uint8_t v = 0;
  s.read(0x3f8, reg, {&v, 1});
  return v;
}
void out(Serial& s, uint64_t reg, uint8_t v) { s.write(0x3f8, reg, {&v, 1}); }

struct Fixture {
  Fixture()
      : irq(EventFd::create().value()),
        ready(EventFd::create().value()),
        irq_fd(irq.fd()),
        ready_fd(ready.fd()),
        serial(std::move(irq), std::move(ready), pipe.fds[1]) {}
  Pipe pipe;
  EventFd irq, ready;
  int irq_fd, ready_fd;
  Serial serial;
  bool output_ready() const {
    uint64_t v = 0;
    return ::read(ready_fd, &v, sizeof v) == sizeof v;
  }
  uint64_t interrupts() const {
    uint64_t v = 0;
    return ::read(irq_fd, &v, sizeof v) == sizeof v ? v : 0;
  }
};
}  // namespace

TEST_CASE("serial: the vCPU only buffers; a newline asks the event loop to flush") {
  Fixture f;
  for (char c : std::string("hello")) out(f.serial, 0, static_cast<uint8_t>(c));
  CHECK_FALSE(f.output_ready());  // no newline yet
  CHECK(f.pipe.drain().empty());  // and no write on the vCPU's path
  out(f.serial, 0, '\n');
  CHECK(f.output_ready());
  CHECK(f.pipe.drain().empty());
  f.serial.flush();
  CHECK(f.pipe.drain() == "hello\n");
  out(f.serial, 0, 'x');
  f.serial.flush();  // the periodic flush takes partial lines
  CHECK(f.pipe.drain() == "x");
  CHECK(f.serial.tail() == "hello\nx");
}

TEST_CASE("serial: a console that stops reading loses the oldest output, never blocks") {
  Fixture f;
  const std::string line(1023, 'a');
  size_t sent = 0;
  while (sent < 3 * Serial::kBacklogBytes) {  // far more than the pipe and the backlog hold
    for (char c : line) out(f.serial, 0, static_cast<uint8_t>(c));
    out(f.serial, 0, '\n');
    sent += 1024;
    f.serial.flush();  // returns at once when the pipe is full
  }
  CHECK(f.serial.dropped_bytes() > 0);
  CHECK(f.serial.dropped_bytes() < sent);
}

TEST_CASE("serial: the tail is bounded") {
  Fixture f;
  for (size_t i = 0; i < Serial::kTailBytes + 100; ++i) out(f.serial, 0, 'a');
  CHECK(f.serial.tail().size() == Serial::kTailBytes);
}

TEST_CASE("serial: THRE interrupt is raised when enabled and acknowledged by reading IIR") {
  Fixture f;
  CHECK((in(f.serial, 5) & 0x60) == 0x60);  // LSR: transmitter empty
  CHECK(in(f.serial, 2) == 0x01);           // IIR: nothing pending
  out(f.serial, 1, 0x02);                   // IER: THRE
  CHECK(f.interrupts() == 1);
  CHECK((in(f.serial, 2) & 0x0f) == 0x02);  // THRE pending
  CHECK((in(f.serial, 2) & 0x0f) == 0x01);  // acknowledged
  out(f.serial, 0, 'z');                    // transmit completes at once: pending again
  CHECK(f.interrupts() == 1);
  CHECK((in(f.serial, 2) & 0x0f) == 0x02);
}

TEST_CASE("serial: FIFO, divisor latch, scratch and loopback look like a 16550A") {
  Fixture f;
  out(f.serial, 2, 0x01);  // enable FIFO
  CHECK((in(f.serial, 2) & 0xc0) == 0xc0);
  out(f.serial, 3, 0x80);  // DLAB
  out(f.serial, 0, 0x01);
  out(f.serial, 1, 0x00);
  CHECK(in(f.serial, 0) == 0x01);
  out(f.serial, 3, 0x03);
  CHECK(f.pipe.drain().empty());  // divisor writes are not output
  out(f.serial, 7, 0x5a);
  CHECK(in(f.serial, 7) == 0x5a);
  out(f.serial, 4, 0x1a);  // loopback with RTS and OUT2
  CHECK((in(f.serial, 6) & 0xf0) == 0x90);
  out(f.serial, 0, 'q');  // loops back to the receiver
  CHECK((in(f.serial, 5) & 0x01) == 0x01);
  CHECK(in(f.serial, 0) == 'q');
  CHECK(f.serial.tail().empty());
  for (int i = 0; i < 1000; ++i) out(f.serial, 0, 'z');  // never read: the FIFO stays 16 bytes
  CHECK((in(f.serial, 5) & 0x03) == 0x03);  // data ready + overrun
  CHECK((in(f.serial, 5) & 0x02) == 0);     // reading LSR cleared the overrun
  int received = 0;
  while (in(f.serial, 5) & 0x01) {
    (void)in(f.serial, 0);
    ++received;
  }
  CHECK(received == static_cast<int>(Serial::kRxFifoBytes));
}

TEST_CASE("serial: input is readable and raises the receive interrupt") {
  Fixture f;
  out(f.serial, 1, 0x01);  // IER: receive
  const uint8_t bytes[] = {'o', 'k'};
  f.serial.push_input(bytes);
  CHECK(f.interrupts() == 1);
  CHECK((in(f.serial, 2) & 0x0f) == 0x04);
  CHECK(in(f.serial, 0) == 'o');
  CHECK(in(f.serial, 0) == 'k');
  CHECK((in(f.serial, 5) & 0x01) == 0);
  CHECK((in(f.serial, 2) & 0x0f) == 0x01);
}
