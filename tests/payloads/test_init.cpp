// PID 1 of the boot tests: reports reaching user space, prints what the tests assert
// on, and exits through the guest-exit port. Parameters arrive as environment
// variables from the kernel command line (test_action=..., test_exit=...).
#include <fcntl.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr unsigned short kGuestExitPort = 0x501;  // vmm/layout.hpp
constexpr unsigned short kBootTimerPort = 0x502;

void out_byte(unsigned char value, unsigned short port) { asm volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }

void attach_console() {
  ::mkdir("/dev", 0755);
  ::mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);
  const int fd = ::open("/dev/console", O_RDWR);
  if (fd < 0) return;
  for (int i = 0; i < 3; ++i) ::dup2(fd, i);
  if (fd > 2) ::close(fd);
}

// printf returns once the tty holds the bytes; the UART sends them later, on its
// interrupts. Wait until it has, or the VM ends with the last lines still queued.
void flush_console() {
  std::fflush(stdout);
  ::tcdrain(STDOUT_FILENO);
}

unsigned long mem_total_kib() {
  ::mkdir("/proc", 0555);
  ::mount("proc", "/proc", "proc", 0, nullptr);
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  unsigned long kib = 0;
  char line[128];
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "MemTotal: %lu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib;
}

// Which hardware RNG the kernel chose, and 32 bytes from it.
void report_hwrng() {
  ::mkdir("/sys", 0555);
  ::mount("sysfs", "/sys", "sysfs", 0, nullptr);
  char current[64] = "none";
  if (FILE* f = std::fopen("/sys/class/misc/hw_random/rng_current", "r")) {
    if (std::fscanf(f, "%63s", current) != 1) std::strcpy(current, "unreadable");
    std::fclose(f);
  }
  unsigned char bytes[32] = {};
  const int fd = ::open("/dev/hwrng", O_RDONLY);
  const ssize_t n = fd >= 0 ? ::read(fd, bytes, sizeof bytes) : -1;
  std::printf("hyper-test-init: rng_current=%s hwrng_read=%zd bytes=", current, n);
  for (unsigned char b : bytes) std::printf("%02x", b);
  std::printf("\n");
}

// Mounts /dev/vda (ext4), prints /mnt/hello.txt, writes /mnt/guest.txt durably, unmounts.
void exercise_disk() {
  ::mkdir("/mnt", 0755);
  if (::mount("/dev/vda", "/mnt", "ext4", 0, nullptr) != 0) {
    const int rw_errno = errno;
    if (::mount("/dev/vda", "/mnt", "ext4", MS_RDONLY, nullptr) != 0) {
      std::printf("hyper-test-init: blk mount failed: %s\n", std::strerror(errno));
      return;
    }
    std::printf("hyper-test-init: blk mounted read-only (read-write: %s)\n", std::strerror(rw_errno));
  }
  char text[128] = {};
  if (FILE* f = std::fopen("/mnt/hello.txt", "r")) {
    if (!std::fgets(text, sizeof text, f)) text[0] = '\0';
    std::fclose(f);
  }
  text[std::strcspn(text, "\n")] = '\0';
  std::printf("hyper-test-init: blk read: %s\n", text);
  const int fd = ::open("/mnt/guest.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const char message[] = "written by the guest\n";
  if (fd < 0 || ::write(fd, message, sizeof message - 1) != sizeof message - 1 || ::fsync(fd) != 0) {
    std::printf("hyper-test-init: blk write failed: %s\n", std::strerror(errno));
  } else {
    std::printf("hyper-test-init: blk wrote guest.txt\n");
  }
  if (fd >= 0) ::close(fd);
  ::umount("/mnt");
  ::sync();
}

}  // namespace

int main() {
  const bool have_ports = ::ioperm(kGuestExitPort, 2, 1) == 0;
  if (have_ports) out_byte(1, kBootTimerPort);
  attach_console();
  std::printf("hyper-test-init: ready\n");

  const char* action = std::getenv("test_action");
  if (action && std::strcmp(action, "info") == 0) {
    std::printf("hyper-test-init: cpus=%ld mem_kib=%lu\n", ::sysconf(_SC_NPROCESSORS_ONLN), mem_total_kib());
  } else if (action && std::strcmp(action, "blk") == 0) {
    exercise_disk();
  } else if (action && std::strcmp(action, "rng") == 0) {
    report_hwrng();
  } else if (action && std::strcmp(action, "panic") == 0) {
    std::printf("hyper-test-init: exiting PID 1 to make the kernel panic\n");
    flush_console();
    return 0;
  }
  const char* exit_env = std::getenv("test_exit");
  const int status = exit_env ? std::atoi(exit_env) : 0;
  std::printf("hyper-test-init: exit %d\n", status);
  flush_console();
  if (have_ports) out_byte(static_cast<unsigned char>(status), kGuestExitPort);
  ::reboot(RB_AUTOBOOT);  // VMMs without our exit port (QEMU) end here
  return 0;
}
