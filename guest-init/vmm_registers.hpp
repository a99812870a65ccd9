// The VMM's paravirtual registers, written from the guest's user space: the exit status
// (the VMM exits with it) and the mark that the init reached user space (the VMM's boot
// timer). x86 has them as I/O ports (vmm/layout.hpp), reached through ioperm(); other
// VMMs simply ignore those ports. arm64 has no I/O ports, so they are the first bytes of a
// page of MMIO (vmm/layout_arm64.hpp), reached through /dev/mem (the arm64 guest kernel
// has DEVMEM), and only when the kernel command line names the page (hyper_exit_page=,
// which the kernel puts in the init's environment): another VMM may have a device there
// (QEMU's virt machine has its RTC). Without them the writes are skipped and the guest
// simply powers off.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__)
#include <sys/io.h>

#include "vmm/layout.hpp"
#elif defined(__aarch64__)
#include "vmm/layout_arm64.hpp"
#endif

namespace hyper::guest {

class VmmRegisters {
 public:
#if defined(__x86_64__)
  VmmRegisters() : available_(::ioperm(layout::kGuestExitPort, 2, 1) == 0) {}
  [[nodiscard]] bool available() const { return available_; }
  void mark_user_space() const { out(1, layout::kBootTimerPort); }
  void report_exit(int status) const { out(static_cast<uint8_t>(status), layout::kGuestExitPort); }

 private:
  void out(uint8_t value, uint16_t port) const {
    if (available_) asm volatile("outb %0, %1" : : "a"(value), "Nd"(port));
  }
  bool available_;
#elif defined(__aarch64__)
  VmmRegisters() : page_(map_page()) {}
  ~VmmRegisters() {
    if (page_) ::munmap(const_cast<uint8_t*>(page_), layout::arm64::kGuestPortsSize);
  }
  VmmRegisters(const VmmRegisters&) = delete;
  VmmRegisters& operator=(const VmmRegisters&) = delete;
  [[nodiscard]] bool available() const { return page_ != nullptr; }
  void mark_user_space() const { store(layout::arm64::kBootTimerOffset, 1); }
  void report_exit(int status) const { store(layout::arm64::kGuestExitOffset, static_cast<uint8_t>(status)); }

 private:
  void store(uint64_t offset, uint8_t value) const {
    if (page_) page_[offset] = value;
  }
  // PID 1 starts before anything mounted /dev: it is mounted as the inits mount it later.
  static volatile uint8_t* map_page() {
    const char* named = std::getenv(layout::arm64::kGuestPortsParameter);
    char* end = nullptr;
    const unsigned long long address = named ? std::strtoull(named, &end, 0) : 0;
    if (!named || *end != '\0' || address != layout::arm64::kGuestPortsStart) return nullptr;
    int fd = ::open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      ::mkdir("/dev", 0755);
      ::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, nullptr);
      fd = ::open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    }
    if (fd < 0) return nullptr;
    void* page = ::mmap(nullptr, layout::arm64::kGuestPortsSize, PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(address));
    ::close(fd);
    return page == MAP_FAILED ? nullptr : static_cast<volatile uint8_t*>(page);
  }
  volatile uint8_t* page_;
#endif
};

}  // namespace hyper::guest
