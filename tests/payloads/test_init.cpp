// PID 1 of the boot tests: reports reaching user space, prints what the tests assert
// on, and exits through the guest-exit port. Parameters arrive as environment
// variables from the kernel command line (test_action=..., test_exit=...).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "guest-init/vmm_registers.hpp"
#include "tests/payloads/echo.hpp"

namespace {

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
  // The kernel's pool is seeded when getrandom() answers without blocking.
  const bool seeded = ::getrandom(bytes, sizeof bytes, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof bytes);
  std::printf("hyper-test-init: crng=%s\n", seeded ? "ready" : "not-ready");
}

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtoull(value, nullptr, 10) : fallback;
}

// Runs the initramfs's busybox applet argv[0] (test-initrd-busybox.cpio); true when it
// exited 0.
bool run_busybox(std::vector<const char*> argv) {
  argv.push_back(nullptr);
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child == 0) {
    ::execv("/bin/busybox", const_cast<char* const*>(argv.data()));
    ::_exit(127);
  }
  int status = 0;
  return child > 0 && ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Formats /dev/vda with busybox mke2fs (ext2 layout, which the kernel's ext4 driver mounts).
bool format_disk() { return run_busybox({"mke2fs", "-q", "-L", "hyper", "/dev/vda"}); }

// Mounts /dev/vda (ext4; formatted first with test_format=1), prints /mnt/hello.txt,
// writes /mnt/guest.txt durably, unmounts. With test_hold=1 it stops after the fsync and
// waits there, for the host to kill the VMM; with test_hold=2 it then goes on writing and
// fsyncing a block every 200 ms until that fails (a network disk's server went away),
// prints the error and waits.
void exercise_disk() {
  if (env_number("test_format", 0) == 1) {
    if (!format_disk()) {
      std::printf("hyper-test-init: blk mke2fs failed\n");
      return;
    }
    std::printf("hyper-test-init: blk formatted /dev/vda\n");
  }
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
    const uint64_t hold = env_number("test_hold", 0);
    if (hold == 1 || hold == 2) {
      std::printf("hyper-test-init: blk synced, holding\n");
      flush_console();
      const char block[4096] = {};
      while (hold == 2 && ::pwrite(fd, block, sizeof block, 0) == sizeof block && ::fsync(fd) == 0) ::usleep(200 * 1000);
      if (hold == 2) std::printf("hyper-test-init: blk write failed: %s\n", std::strerror(errno));
      flush_console();
      for (;;) ::pause();
    }
  }
  if (fd >= 0) ::close(fd);
  ::umount("/mnt");
  ::sync();
}

// The first line of `path` without its newline, or "" when it cannot be read.
std::string first_line(const char* path) {
  char text[128] = {};
  if (FILE* f = std::fopen(path, "r")) {
    if (!std::fgets(text, sizeof text, f)) text[0] = '\0';
    std::fclose(f);
  }
  text[std::strcspn(text, "\n")] = '\0';
  return text;
}

// Writes `text` to the sysfs file `path`; false when it cannot.
bool write_sysfs(const char* path, const char* text) {
  const int fd = ::open(path, O_WRONLY);
  const bool ok = fd >= 0 && ::write(fd, text, std::strlen(text)) == static_cast<ssize_t>(std::strlen(text));
  if (fd >= 0) ::close(fd);
  return ok;
}

// Unbinds the virtio-fs driver from its device (the driver resets it: the VMM stops the
// back-end's rings), binds it again (a new activation) and reads hello.txt once more.
void rebind_virtiofs(const char* tag) {
  ::mkdir("/sys", 0555);
  ::mount("sysfs", "/sys", "sysfs", 0, nullptr);
  const char* const driver = "/sys/bus/virtio/drivers/virtiofs";
  char device[32] = {};
  for (int i = 0; i < 8 && !device[0]; ++i) {
    char link[96];
    std::snprintf(link, sizeof link, "%s/virtio%d", driver, i);
    struct stat st {};
    if (::lstat(link, &st) == 0) std::snprintf(device, sizeof device, "virtio%d", i);
  }
  const bool rebound = device[0] && write_sysfs("/sys/bus/virtio/drivers/virtiofs/unbind", device) &&
                       write_sysfs("/sys/bus/virtio/drivers/virtiofs/bind", device);
  if (!rebound || ::mount(tag, "/mnt", "virtiofs", 0, nullptr) != 0) {
    std::printf("hyper-test-init: virtiofs rebind failed (%s): %s\n", device, std::strerror(errno));
    return;
  }
  std::printf("hyper-test-init: virtiofs after reset: %s\n", first_line("/mnt/hello.txt").c_str());
  ::umount("/mnt");
}

// Mounts virtio-fs tag test_fs_tag on /mnt, prints hello.txt, writes guest.txt durably,
// then waits (up to 60 s) for the host to create late.txt after the mount and prints it
// and hello.txt once more: what the host changed meanwhile must be visible.
void exercise_virtiofs() {
  const char* tag = std::getenv("test_fs_tag");
  if (!tag) tag = "hostshare";
  ::mkdir("/mnt", 0755);
  if (::mount(tag, "/mnt", "virtiofs", 0, nullptr) != 0) {
    std::printf("hyper-test-init: virtiofs mount failed: %s\n", std::strerror(errno));
    return;
  }
  std::printf("hyper-test-init: virtiofs mounted %s\n", tag);
  std::printf("hyper-test-init: virtiofs read: %s\n", first_line("/mnt/hello.txt").c_str());
  const int fd = ::open("/mnt/guest.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const char message[] = "written by the guest\n";
  if (fd < 0 || ::write(fd, message, sizeof message - 1) != sizeof message - 1 || ::fsync(fd) != 0) {
    std::printf("hyper-test-init: virtiofs write failed: %s\n", std::strerror(errno));
  } else {
    std::printf("hyper-test-init: virtiofs wrote guest.txt\n");
  }
  if (fd >= 0) ::close(fd);
  flush_console();
  struct stat st {};
  for (int i = 0; i < 600 && ::stat("/mnt/late.txt", &st) != 0; ++i) ::usleep(100 * 1000);
  std::printf("hyper-test-init: virtiofs late: %s\n", first_line("/mnt/late.txt").c_str());
  std::printf("hyper-test-init: virtiofs reread: %s\n", first_line("/mnt/hello.txt").c_str());
  std::printf("hyper-test-init: virtiofs umount: %s\n", ::umount("/mnt") == 0 ? "ok" : std::strerror(errno));
  if (env_number("test_fs_rebind", 0) == 1) rebind_virtiofs(tag);
}

void report_echo(const char* what, const char* metric, const hyper::testing::EchoResult& r) {
  if (!r.ok) {
    std::printf("hyper-test-init: %s failed after %llu of %llu bytes: %s (%s)\n", what,
                static_cast<unsigned long long>(r.verified), static_cast<unsigned long long>(r.sent), r.error,
                std::strerror(errno));
    return;
  }
  const double mbps = static_cast<double>(r.verified) / r.seconds / 1e6;
  std::printf("hyper-test-init: %s verified %llu bytes in %.3f s (%.1f MB/s)\n", what,
              static_cast<unsigned long long>(r.verified), r.seconds, mbps);
  std::printf("hyper-test-init: metrics %s=%.1f\n", metric, mbps);
}

// Brings `name` up with IPv4 `address`/24 through ioctls (the test init has no `ip`).
bool configure_interface(int s, const char* name, const char* address) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (address) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    in->sin_family = AF_INET;
    ::inet_pton(AF_INET, address, &in->sin_addr);
    if (::ioctl(s, SIOCSIFADDR, &ifr) != 0) return false;
    ::inet_pton(AF_INET, "255.255.255.0", &in->sin_addr);
    if (::ioctl(s, SIOCSIFNETMASK, &ifr) != 0) return false;
  }
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return false;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  return ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
}

// Retries connect() for up to ~10 s: the peer may still be coming up.
int connect_with_retry(int family, const sockaddr* address, socklen_t length) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, address, length) == 0) return fd;
    if (fd >= 0) ::close(fd);
    ::usleep(100 * 1000);
  }
  return -1;
}

// eth0 = 10.0.2.15/24 with the MAC the VMM gave it; echo test_bytes through the host's
// TCP echo server at 10.0.2.1:test_port.
void exercise_network() {
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0 || !configure_interface(s, "lo", nullptr) || !configure_interface(s, "eth0", "10.0.2.15")) {
    std::printf("hyper-test-init: net configuration failed: %s\n", std::strerror(errno));
    return;
  }
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "eth0");
  if (::ioctl(s, SIOCGIFHWADDR, &ifr) == 0) {
    const auto* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
    std::printf("hyper-test-init: eth0 mac=%02x:%02x:%02x:%02x:%02x:%02x\n", m[0], m[1], m[2], m[3], m[4], m[5]);
  }
  ::close(s);
  sockaddr_in host{};
  host.sin_family = AF_INET;
  host.sin_port = htons(static_cast<uint16_t>(env_number("test_port", 5000)));
  ::inet_pton(AF_INET, "10.0.2.1", &host.sin_addr);
  const int fd = connect_with_retry(AF_INET, reinterpret_cast<sockaddr*>(&host), sizeof host);
  if (fd < 0) {
    std::printf("hyper-test-init: net connect to 10.0.2.1 failed: %s\n", std::strerror(errno));
    return;
  }
  report_echo("net echo", "net_echo_MBps", hyper::testing::send_and_verify_echo(fd, env_number("test_bytes", 4 << 20)));
  ::close(fd);
}

// Forks a child that echoes one host-initiated connection on vsock port `port`; returns
// its pid, or -1 when the port cannot be listened on.
pid_t serve_one_vsock_echo(unsigned port) {
  const int listener = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_vm local{};
  local.svm_family = AF_VSOCK;
  local.svm_cid = VMADDR_CID_ANY;
  local.svm_port = port;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::listen(listener, 4) != 0) {
    std::printf("hyper-test-init: vsock listen failed: %s\n", std::strerror(errno));
    return -1;
  }
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child == 0) {
    ::alarm(100);  // a host that never connects must not keep the guest up forever
    const int conn = ::accept(listener, nullptr, nullptr);
    const int64_t echoed = conn >= 0 ? hyper::testing::echo_until_eof(conn) : -1;
    std::printf("hyper-test-init: vsock echoed %lld bytes for the host\n", static_cast<long long>(echoed));
    std::fflush(stdout);
    ::_exit(echoed > 0 ? 0 : 1);
  }
  ::close(listener);
  return child;
}

// Both directions of vsock: a child echoes one host-initiated connection on port
// test_listen (default 1234; 0: no listener) while this process echoes test_bytes
// through the host's listener on port test_port (default 5678).
void exercise_vsock() {
  const uint64_t listen_port = env_number("test_listen", 1234);
  const pid_t child = listen_port ? serve_one_vsock_echo(static_cast<unsigned>(listen_port)) : 0;
  if (child < 0) return;
  sockaddr_vm host{};
  host.svm_family = AF_VSOCK;
  host.svm_cid = VMADDR_CID_HOST;
  host.svm_port = static_cast<unsigned>(env_number("test_port", 5678));
  const int fd = connect_with_retry(AF_VSOCK, reinterpret_cast<sockaddr*>(&host), sizeof host);
  if (fd < 0) {
    std::printf("hyper-test-init: vsock connect to the host failed: %s\n", std::strerror(errno));
  } else {
    report_echo("vsock echo", "vsock_echo_MBps", hyper::testing::send_and_verify_echo(fd, env_number("test_bytes", 4 << 20)));
    ::close(fd);
  }
  int status = 0;
  if (child > 0) ::waitpid(child, &status, 0);
}

// Direct I/O on /dev/vda, as fio would measure it: sequential 1 MiB writes then reads
// over the whole disk, then 4 KiB random reads from 4 threads (queue depth 4) for 3 s.
void benchmark_disk() {
  using hyper::testing::seconds_now;
  const int fd = ::open("/dev/vda", O_RDWR | O_DIRECT | O_CLOEXEC);
  uint64_t size = 0;
  if (fd < 0 || ::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    std::printf("hyper-test-init: blkbench cannot open /dev/vda: %s\n", std::strerror(errno));
    return;
  }
  constexpr size_t kBlock = 1 << 20;
  void* raw = nullptr;
  if (::posix_memalign(&raw, 4096, kBlock) != 0) return;
  auto* block = static_cast<unsigned char*>(raw);
  std::memset(block, 0x5a, kBlock);
  const uint64_t blocks = size / kBlock;
  double start = seconds_now();
  for (uint64_t i = 0; i < blocks; ++i) {
    if (::pwrite(fd, block, kBlock, static_cast<off_t>(i * kBlock)) != static_cast<ssize_t>(kBlock)) return;
  }
  ::fdatasync(fd);
  const double write_mbps = static_cast<double>(blocks * kBlock) / (seconds_now() - start) / 1e6;
  start = seconds_now();
  for (uint64_t i = 0; i < blocks; ++i) {
    if (::pread(fd, block, kBlock, static_cast<off_t>(i * kBlock)) != static_cast<ssize_t>(kBlock)) return;
  }
  const double read_mbps = static_cast<double>(blocks * kBlock) / (seconds_now() - start) / 1e6;

  constexpr int kThreads = 4;
  constexpr double kSeconds = 3.0;
  std::vector<uint64_t> done(kThreads, 0);
  std::vector<std::thread> threads;
  start = seconds_now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      void* page = nullptr;
      if (::posix_memalign(&page, 4096, 4096) != 0) return;
      uint64_t state = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(t + 1);
      while (seconds_now() - start < kSeconds) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        const off_t offset = static_cast<off_t>((state % (size / 4096)) * 4096);
        if (::pread(fd, page, 4096, offset) != 4096) break;
        ++done[static_cast<size_t>(t)];
      }
      std::free(page);
    });
  }
  uint64_t reads = 0;
  for (int t = 0; t < kThreads; ++t) threads[static_cast<size_t>(t)].join(), reads += done[static_cast<size_t>(t)];
  const double iops = static_cast<double>(reads) / (seconds_now() - start);
  std::printf("hyper-test-init: metrics blk_seq_write_MBps=%.1f blk_seq_read_MBps=%.1f blk_rand4k_read_iops=%.0f\n",
              write_mbps, read_mbps, iops);
  std::free(raw);
  ::close(fd);
}

// Counts and stats every entry below `dir` (a walk as find(1) or ls -lR makes one).
uint64_t stat_tree(const std::string& dir) {
  uint64_t entries = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    const std::string path = dir + "/" + e->d_name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    ++entries;
    if (S_ISDIR(st.st_mode)) entries += stat_tree(path);
  }
  ::closedir(d);
  return entries;
}

// File-heavy work on a file system the host prepared with /bench.tar on it: mounts it
// (test_fs=virtiofs: the tag test_fs_tag; test_fs=ext4: /dev/vda), untars the archive
// with busybox tar, syncs, then stats every entry twice (cold after a drop of the
// guest's caches, then warm). Prints rates (above 1 in a ratio: faster).
void benchmark_files() {
  using hyper::testing::seconds_now;
  const std::string fs = std::getenv("test_fs") ? std::getenv("test_fs") : "ext4";
  const char* tag = std::getenv("test_fs_tag") ? std::getenv("test_fs_tag") : "hostshare";
  ::mkdir("/mnt", 0755);
  const int mounted = fs == "virtiofs" ? ::mount(tag, "/mnt", "virtiofs", 0, nullptr)
                                       : ::mount("/dev/vda", "/mnt", "ext4", 0, nullptr);
  if (mounted != 0) {
    std::printf("hyper-test-init: filebench cannot mount %s: %s\n", fs.c_str(), std::strerror(errno));
    return;
  }
  double start = seconds_now();
  ::mkdir("/mnt/tree", 0755);
  if (!run_busybox({"tar", "-xf", "/mnt/bench.tar", "-C", "/mnt/tree"})) {
    std::printf("hyper-test-init: filebench: tar failed\n");
    return;
  }
  ::sync();
  const double untar_s = seconds_now() - start;
  ::mkdir("/proc", 0555);
  ::mount("proc", "/proc", "proc", 0, nullptr);
  const bool dropped = write_sysfs("/proc/sys/vm/drop_caches", "3");
  start = seconds_now();
  const uint64_t entries = stat_tree("/mnt/tree");
  const double cold_s = seconds_now() - start;
  start = seconds_now();
  const uint64_t again = stat_tree("/mnt/tree");
  const double warm_s = seconds_now() - start;
  std::printf("hyper-test-init: filebench %s: %llu entries%s\n", fs.c_str(), static_cast<unsigned long long>(entries),
              dropped ? "" : " (no drop_caches: the cold walk found warm caches)");
  if (entries == 0 || again != entries) return;
  std::printf("hyper-test-init: metrics untar_entries_per_s=%.0f stat_cold_entries_per_s=%.0f stat_warm_entries_per_s=%.0f\n",
              static_cast<double>(entries) / untar_s, static_cast<double>(entries) / cold_s,
              static_cast<double>(entries) / warm_s);
  ::umount("/mnt");
}

// A workload whose state lives in guest memory, for the snapshot tests: counts to
// test_count_to (default 100), one line every 100 ms, then shows that the devices work in
// whatever VM it finished in: the first line of /dev/vda read past the page cache (a
// restored VM may have a different disk), and bytes from /dev/hwrng.
void count_in_memory() {
  const uint64_t limit = env_number("test_count_to", 100);
  for (uint64_t count = 1; count <= limit; ++count) {
    std::printf("hyper-test-init: count %llu\n", static_cast<unsigned long long>(count));
    flush_console();
    ::usleep(100'000);
  }
  const int fd = ::open("/dev/vda", O_RDONLY | O_DIRECT);
  if (fd >= 0) {
    alignas(4096) static char sector[4096];
    const ssize_t n = ::read(fd, sector, sizeof sector);
    ::close(fd);
    const std::string text(sector, n > 0 ? ::strnlen(sector, static_cast<size_t>(n)) : 0);
    std::printf("hyper-test-init: vda says %s\n", text.substr(0, text.find('\n')).c_str());
  }
  report_hwrng();
}

}  // namespace

int main() {
  const hyper::guest::VmmRegisters registers;
  registers.mark_user_space();
  attach_console();
  std::printf("hyper-test-init: ready\n");

  const char* action = std::getenv("test_action");
  if (action && std::strcmp(action, "info") == 0) {
    std::printf("hyper-test-init: cpus=%ld mem_kib=%lu\n", ::sysconf(_SC_NPROCESSORS_ONLN), mem_total_kib());
  } else if (action && std::strcmp(action, "blk") == 0) {
    exercise_disk();
  } else if (action && std::strcmp(action, "blkbench") == 0) {
    benchmark_disk();
  } else if (action && std::strcmp(action, "filebench") == 0) {
    benchmark_files();
  } else if (action && std::strcmp(action, "net") == 0) {
    exercise_network();
  } else if (action && std::strcmp(action, "vsock") == 0) {
    exercise_vsock();
  } else if (action && std::strcmp(action, "virtiofs") == 0) {
    exercise_virtiofs();
  } else if (action && std::strcmp(action, "counter") == 0) {
    count_in_memory();
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
  registers.report_exit(status);
  ::reboot(RB_AUTOBOOT);  // VMMs without our exit port (QEMU) end here
  return 0;
}
