// hyper-vmm: boots a Linux kernel in a KVM microVM. A thin shell over hyper::Machine.
#include <fcntl.h>
#include <signal.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "vmm/clock.hpp"
#include "vmm/machine.hpp"
#include "vmm/unique_fd.hpp"

namespace po = boost::program_options;
using namespace hyper;

namespace {

constexpr int kExitUsage = 2;      // bad flags or a machine that could not be built
constexpr size_t kTailLines = 25;  // console lines shown when the guest dies badly

// "a,b=c" -> {"a", "b=c"}
std::vector<std::string> split_commas(const std::string& spec) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    const size_t comma = spec.find(',', start);
    parts.push_back(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return parts;
    start = comma + 1;
  }
}

// If `part` is "key=value", stores value in `out`.
bool take_value(const std::string& part, const char* key, std::string& out) {
  const std::string prefix = std::string(key) + "=";
  if (part.rfind(prefix, 0) != 0) return false;
  out = part.substr(prefix.size());
  return true;
}

// PATH[,ro][,serial=S][,io=thread|loop]
std::optional<virtio::BlkOptions> parse_disk(const std::string& spec) {
  virtio::BlkOptions disk;
  const auto parts = split_commas(spec);
  disk.path = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string io;
    if (parts[i] == "ro") {
      disk.read_only = true;
    } else if (take_value(parts[i], "io", io) && (io == "loop" || io == "thread")) {
      disk.io_thread = io == "thread";
    } else if (!take_value(parts[i], "serial", disk.serial)) {
      std::cerr << "hyper-vmm: --disk " << spec << ": unknown option '" << parts[i]
                << "' (want ro, serial=S or io=thread|loop)\n";
      return std::nullopt;
    }
  }
  if (disk.path.empty()) {
    std::cerr << "hyper-vmm: --disk needs a path\n";
    return std::nullopt;
  }
  if (disk.path.find("://") != std::string::npos && !virtio::is_nbd_uri(disk.path)) {
    std::cerr << "hyper-vmm: --disk " << spec
              << ": not a disk hyper-vmm can open (a raw image path, nbd://HOST[:PORT][/EXPORT] or "
                 "nbd+unix:///EXPORT?socket=PATH)\n";
    return std::nullopt;
  }
  return disk;
}

// tap=NAME[,mac=M]
std::optional<virtio::NetOptions> parse_net(const std::string& spec) {
  virtio::NetOptions net;
  std::string mac;
  for (const auto& part : split_commas(spec)) {
    if (!take_value(part, "tap", net.tap) && !take_value(part, "mac", mac)) {
      std::cerr << "hyper-vmm: --net " << spec << ": unknown option '" << part << "' (want tap=NAME or mac=M)\n";
      return std::nullopt;
    }
  }
  if (net.tap.empty()) {
    std::cerr << "hyper-vmm: --net " << spec << ": tap=NAME is required\n";
    return std::nullopt;
  }
  if (!mac.empty()) {
    net.mac = virtio::parse_mac(mac);
    if (!net.mac) {
      std::cerr << "hyper-vmm: --net " << spec << ": '" << mac << "' is not a unicast MAC address (xx:xx:xx:xx:xx:xx)\n";
      return std::nullopt;
    }
  }
  return net;
}

// cid=N,socket=PATH
std::optional<virtio::VsockOptions> parse_vsock(const std::string& spec) {
  virtio::VsockOptions vsock;
  std::string cid;
  for (const auto& part : split_commas(spec)) {
    if (!take_value(part, "cid", cid) && !take_value(part, "socket", vsock.socket_path)) {
      std::cerr << "hyper-vmm: --vsock " << spec << ": unknown option '" << part << "' (want cid=N and socket=PATH)\n";
      return std::nullopt;
    }
  }
  char* end = nullptr;
  errno = 0;
  vsock.guest_cid = cid.empty() ? 0 : std::strtoull(cid.c_str(), &end, 10);
  if (cid.empty() || *end != '\0' || errno != 0 || vsock.socket_path.empty()) {
    std::cerr << "hyper-vmm: --vsock " << spec << ": needs cid=N (a number, 3 or more) and socket=PATH\n";
    return std::nullopt;
  }
  return vsock;
}

// SOCKET,tag=TAG
std::optional<virtio::FsOptions> parse_fs(const std::string& spec) {
  virtio::FsOptions fs;
  const auto parts = split_commas(spec);
  fs.socket_path = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!take_value(parts[i], "tag", fs.tag)) {
      std::cerr << "hyper-vmm: --fs " << spec << ": unknown option '" << parts[i] << "' (want tag=TAG)\n";
      return std::nullopt;
    }
  }
  if (fs.socket_path.empty() || fs.socket_path.find('=') != std::string::npos) {
    std::cerr << "hyper-vmm: --fs " << spec << ": the first part must be the back-end's socket path (SOCKET,tag=TAG)\n";
    return std::nullopt;
  }
  if (fs.tag.empty()) {
    std::cerr << "hyper-vmm: --fs " << spec << ": tag=TAG is required (what the guest mounts)\n";
    return std::nullopt;
  }
  if (const Status tag = virtio::check_fs_tag(fs.tag); !tag) {
    std::cerr << "hyper-vmm: --fs " << spec << ": " << tag.error().message << '\n';
    return std::nullopt;
  }
  return fs;
}

struct Options {
  MachineConfig machine;
  std::string console = "stdout";
  bool timings = false;
};

// The launcher may pass its own CLOCK_MONOTONIC timestamp from just before exec, so
// that "exec -> first KVM_RUN" includes process start-up; else we start at main().
uint64_t exec_timestamp(uint64_t fallback) {
  const char* env = std::getenv("HYPER_EXEC_TS_NS");
  if (!env || !*env) return fallback;
  char* end = nullptr;
  const unsigned long long ts = std::strtoull(env, &end, 10);
  return (*end == '\0' && ts > 0 && ts <= fallback) ? ts : fallback;
}

std::optional<Options> parse_args(int argc, char** argv) {
  Options opt;
  std::string kernel, initrd, vsock;
  std::vector<std::string> disks, nets, filesystems;
  bool no_seccomp = false;
  po::options_description desc(
      "Usage: hyper-vmm --kernel KERNEL [options]\n"
      "       hyper-vmm --restore SNAPSHOT [device options]\n\n"
      "Boots a Linux kernel (ELF vmlinux with a PVH note, or bzImage) in a KVM microVM, or\n"
      "resumes one saved with --snapshot.\n"
      "Exit status: the byte the guest wrote to the exit port (0x501); 0 when the guest\n"
      "rebooted or powered off; 1 when the guest kernel panicked or triple-faulted or KVM\n"
      "failed; 2 for bad options or a VM that could not be built; 128+N when stopped by\n"
      "signal N; 159 when a VMM thread made a system call its seccomp filter forbids.\n\nOptions");
  desc.add_options()
      ("help,h", "show this help and exit")
      ("kernel,k", po::value(&kernel)->value_name("PATH"), "kernel image: vmlinux (PVH entry) or bzImage (required)")
      ("initrd,i", po::value(&initrd)->value_name("PATH"), "initial ramdisk (cpio archive)")
      ("cmdline,c", po::value(&opt.machine.extra_cmdline)->value_name("ARGS"),
       (std::string("extra kernel arguments, appended to \"") + kBaseCmdline + "\"").c_str())
      ("cpus", po::value(&opt.machine.vcpus)->default_value(1)->value_name("N"), "number of vCPUs (1-64)")
      ("memory,m", po::value(&opt.machine.memory_mib)->default_value(128)->value_name("MiB"), "guest RAM in MiB")
      ("hugepages", po::bool_switch(&opt.machine.hugepages), "back guest RAM with 2 MiB huge pages")
      ("disk", po::value(&disks)->value_name("PATH|URI[,ro][,serial=S][,io=thread|loop]"),
       "add a virtio-blk device backed by a raw image or an NBD export (nbd://HOST[:PORT][/EXPORT] or "
       "nbd+unix:///EXPORT?socket=PATH) (repeatable: /dev/vda, /dev/vdb, ...); its I/O runs on a thread "
       "of its own (io=thread, the default; always for NBD) or on the event loop (io=loop)")
      ("net", po::value(&nets)->value_name("tap=NAME[,mac=M]"),
       "add a virtio-net device attached to tap interface NAME (repeatable: eth0, eth1, ...)")
      ("vsock", po::value(&vsock)->value_name("cid=N,socket=PATH"),
       "add a virtio-vsock device with guest CID N; host programs reach guest port P by "
       "connecting to PATH and sending \"CONNECT P\\n\", and the guest reaches host port P at PATH_P")
      ("rng", po::bool_switch(&opt.machine.rng), "add a virtio-rng device (entropy from the host's getrandom)")
      ("fs", po::value(&filesystems)->value_name("SOCKET,tag=TAG"),
       "add a virtio-fs device served by the vhost-user back-end listening on SOCKET (virtiofsd "
       "--socket-path=SOCKET); the guest mounts it with mount -t virtiofs TAG DIR (repeatable; "
       "guest RAM becomes shared memory the back-end maps)")
      ("console", po::value(&opt.console)->value_name("stdout|none|PATH"),
       "where the guest's serial console goes (default: stdout)")
      ("no-seccomp", po::bool_switch(&no_seccomp),
       "do not confine the VMM's threads with seccomp filters (by default each vCPU, I/O and "
       "event-loop thread may make only the system calls it needs; a forbidden one ends the "
       "VMM with status 159)")
      ("snapshot", po::value(&opt.machine.snapshot_path)->value_name("PATH"),
       "on SIGUSR2, pause the VM, save it to PATH (replaced atomically) and resume it")
      ("snapshot-stop", po::bool_switch(&opt.machine.stop_after_snapshot),
       "with --snapshot: stop once the snapshot is saved (exit status 0)")
      ("restore", po::value(&opt.machine.restore_from)->value_name("PATH"),
       "resume the VM saved in PATH instead of booting a kernel; its memory and vCPUs come "
       "from the snapshot, and --disk, --net, --vsock and --rng must give the devices it was "
       "taken with, in the same order (their images, taps and sockets may differ)")
      ("timings", po::bool_switch(&opt.timings),
       "print exec->first KVM_RUN, exec->boot-timer write and exec->exit times to stderr");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "hyper-vmm: " << e.what() << "\nTry 'hyper-vmm --help'.\n";
    return std::nullopt;
  }
  if (vm.count("help")) {
    std::cout << desc << '\n';
    std::exit(0);
  }
  const bool restoring = !opt.machine.restore_from.empty();
  if (kernel.empty() && !restoring) {
    std::cerr << "hyper-vmm: --kernel is required\nTry 'hyper-vmm --help'.\n";
    return std::nullopt;
  }
  if (restoring && (!kernel.empty() || !initrd.empty() || vm.count("cmdline") || !vm["cpus"].defaulted() ||
                    !vm["memory"].defaulted())) {
    std::cerr << "hyper-vmm: --restore takes the kernel, command line, memory and vCPUs from the snapshot: "
                 "--kernel, --initrd, --cmdline, --cpus and --memory cannot go with it\n";
    return std::nullopt;
  }
  if (opt.machine.stop_after_snapshot && opt.machine.snapshot_path.empty()) {
    std::cerr << "hyper-vmm: --snapshot-stop needs --snapshot PATH\n";
    return std::nullopt;
  }
  opt.machine.snapshots = !opt.machine.snapshot_path.empty();
  for (const auto& spec : disks) {
    auto disk = parse_disk(spec);
    if (!disk) return std::nullopt;
    opt.machine.disks.push_back(*disk);
  }
  for (const auto& spec : nets) {
    auto net = parse_net(spec);
    if (!net) return std::nullopt;
    opt.machine.nets.push_back(*net);
  }
  for (const auto& spec : filesystems) {
    auto fs = parse_fs(spec);
    if (!fs) return std::nullopt;
    opt.machine.filesystems.push_back(*fs);  // Machine::create refuses two with one tag
  }
  if (!vsock.empty()) {
    opt.machine.vsock = parse_vsock(vsock);
    if (!opt.machine.vsock) return std::nullopt;
  }
  opt.machine.seccomp = !no_seccomp;
  opt.machine.kernel = kernel;
  if (!initrd.empty()) opt.machine.initrd = initrd;
  return opt;
}

// The last `count` lines of `text`, without its final newline.
std::string last_lines(const std::string& text, size_t count) {
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  size_t start = end;
  for (size_t lines = 0; start > 0 && lines < count; ++lines) {
    const size_t newline = text.rfind('\n', start - 1);
    start = newline == std::string::npos ? 0 : newline;
  }
  if (start > 0) ++start;  // skip the newline that ends the line before
  return end > start ? text.substr(start, end - start) : "(no console output)";
}

double ms_between(uint64_t from, uint64_t to) { return to > from ? static_cast<double>(to - from) / 1e6 : 0.0; }

void print_timings(const BootTimings& t) {
  std::fprintf(stderr, "hyper-vmm: timings: first_kvm_run_ms=%.3f boot_timer_ms=", ms_between(t.start_ns, t.first_kvm_run_ns));
  if (t.boot_timer_ns) {
    std::fprintf(stderr, "%.3f", ms_between(t.start_ns, t.boot_timer_ns));
  } else {
    std::fprintf(stderr, "none");
  }
  std::fprintf(stderr, " exit_ms=%.3f\n", ms_between(t.start_ns, t.exit_ns));
}

}  // namespace

int run_cli(int argc, char** argv, uint64_t main_ns) {
  ::signal(SIGPIPE, SIG_IGN);
  auto opt = parse_args(argc, argv);
  if (!opt) return kExitUsage;

  UniqueFd console_file;
  if (opt->console == "none") {
    opt->machine.console_fd = -1;
  } else if (opt->console != "stdout") {
    console_file.reset(::open(opt->console.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!console_file.valid()) {
      std::perror(("hyper-vmm: --console " + opt->console).c_str());
      return kExitUsage;
    }
    opt->machine.console_fd = console_file.get();
  }
  opt->machine.start_ns = exec_timestamp(main_ns);
  opt->machine.log = [](const std::string& line) { std::cerr << "hyper-vmm: " << line << '\n'; };

  auto machine = Machine::create(opt->machine);
  if (!machine) {
    std::cerr << "hyper-vmm: error: " << machine.error().message << '\n';
    return kExitUsage;
  }
  auto result = (*machine)->run();
  if (!result) {
    std::cerr << "hyper-vmm: error: " << result.error().message << '\n';
    return 1;
  }
  const auto& exit = result->exit;
  if (exit.kind == ExitKind::panic || exit.kind == ExitKind::error || exit.kind == ExitKind::crash ||
      exit.kind == ExitKind::triple_fault) {
    std::cerr << "hyper-vmm: " << exit.detail << "; last console output:\n"
              << last_lines(result->console_tail, kTailLines) << '\n';
  } else if (exit.kind == ExitKind::signal || exit.kind == ExitKind::snapshot) {
    std::cerr << "hyper-vmm: " << exit.detail << '\n';
  }
  if (opt->timings) print_timings(result->timings);
  return exit.status;
}

int main(int argc, char** argv) {
  const uint64_t main_ns = monotonic_ns();
  try {
    return run_cli(argc, argv, main_ns);
  } catch (const std::exception& e) {  // out of memory, threads: report, never abort
    std::cerr << "hyper-vmm: error: " << e.what() << '\n';
    return 1;
  }
}
