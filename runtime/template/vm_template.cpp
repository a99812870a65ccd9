#include "runtime/template/vm_template.hpp"

#include <cpuid.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <chrono>

#include "runtime/file_lock.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/vm_defaults.hpp"
#include "runtime/vm_session.hpp"
#include "virtio/tap.hpp"

namespace hyper::runtime {
namespace {

// Bumped when what a template holds changes meaning (the agent's protocol, say).
constexpr int kTemplateFormat = 1;
constexpr int kBootTimeoutMs = 120'000;
constexpr const char* kSnapshotName = "vm.snap";

// The host a snapshot's vCPU state fits: its kernel (KVM's MSR list, XSAVE layout) and its
// CPU (model and features the guest kernel saw at boot).
std::string host_identity() {
  utsname names{};
  std::string text = ::uname(&names) == 0 ? names.release : "unknown";
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx))
    text += " cpu=" + std::to_string(eax) + "/" + std::to_string(ecx) + "/" + std::to_string(edx);
  return text;
}

Result<std::string> file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error::from_errno("stat " + path);
  return path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// A tap of its own for the template's NIC while it boots: it goes away with its fd.
Result<std::pair<std::string, UniqueFd>> scratch_tap() {
  uint32_t suffix = 0;
  if (::getrandom(&suffix, sizeof suffix, 0) != sizeof suffix) return Error::from_errno("getrandom");
  char name[16];
  std::snprintf(name, sizeof name, "hytpl%08x", suffix);
  auto fd = HYPER_TRY(virtio::open_tap(name, virtio::TapOpen::create_new));
  return std::make_pair(std::string(name), std::move(fd));
}

// Boots the template VM in `dir` on empty disks and saves it once its init says ready.
Status make_template(const std::filesystem::path& dir, const TemplateShape& shape) {
  std::filesystem::create_directories(dir);
  VmSpec spec;
  spec.dir = dir;
  spec.cpus = shape.cpus;
  spec.memory_mib = shape.memory_mib;
  spec.snapshots = true;
  for (size_t i = 0; i < shape.read_only_disks.size(); ++i) {
    const auto disk = dir / ("empty-disk-" + std::to_string(i));
    UniqueFd created(::open(disk.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!created.valid()) return Error::from_errno("create " + disk.string());
    virtio::BlkOptions options;
    options.path = disk.string();
    options.read_only = shape.read_only_disks[i];
    options.empty_allowed = true;  // the container's disk replaces it on restore
    spec.disks.push_back(std::move(options));
  }
  std::vector<UniqueFd> taps;
  for (size_t i = 0; i < shape.nets; ++i) {
    auto [name, fd] = HYPER_TRY(scratch_tap());
    spec.nets.push_back(virtio::NetOptions{.tap = name, .tap_fd = fd.get(), .mac = std::nullopt});
    taps.push_back(std::move(fd));
  }
  UniqueFd console(::open((dir / "console.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  spec.console_fd = console.get();
  auto session = HYPER_TRY(VmSession::boot(spec, kBootTimeoutMs));
  const Status saved = session->save(dir / kSnapshotName);
  session->stop();
  (void)session->wait(5000);
  return saved;
}

}  // namespace

Result<std::string> template_key(const TemplateShape& shape) {
  const GuestArtifacts guest = HYPER_TRY(find_guest_artifacts());
  // The VMM is this program: a rebuilt one may save devices differently.
  auto vmm = file_identity("/proc/self/exe");
  std::string description = "format=" + std::to_string(kTemplateFormat) + " host=" + host_identity() +
                            " vmm=" + (vmm.ok() ? *vmm : "unknown") +
                            " kernel=" + HYPER_TRY(file_identity(guest.kernel)) +
                            " initrd=" + HYPER_TRY(file_identity(guest.initrd)) + " cmdline=" + kGuestCmdline +
                            " memory=" + std::to_string(shape.memory_mib) + " cpus=" + std::to_string(shape.cpus) +
                            " nets=" + std::to_string(shape.nets) + " disks=";
  for (const bool ro : shape.read_only_disks) description += ro ? "r" : "w";
  const std::string digest = HYPER_TRY(blobs::sha256_of(description));
  return digest.substr(digest.find(':') + 1);
}

Result<std::filesystem::path> ensure_template(const std::filesystem::path& templates_dir, const TemplateShape& shape,
                                              const std::function<void(const std::string&)>& log) {
  const std::string key = HYPER_TRY(template_key(shape));
  const auto dir = templates_dir / key;
  const auto snapshot = dir / kSnapshotName;
  if (std::filesystem::exists(snapshot)) return snapshot;
  std::error_code error;
  std::filesystem::create_directories(templates_dir, error);
  if (error) return make_error(Errc::io, "create " + templates_dir.string() + ": " + error.message());
  const FileLock lock = HYPER_TRY(FileLock::acquire(templates_dir / (key + ".lock")));
  if (std::filesystem::exists(snapshot)) return snapshot;  // made while we waited
  const auto started = std::chrono::steady_clock::now();
  if (auto made = make_template(dir, shape); !made) {
    std::filesystem::remove_all(dir, error);
    return make_error(made.error().code, "making a VM template: " + made.error().message);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  log("made VM template " + key.substr(0, 12) + " (" + std::to_string(shape.memory_mib) + " MiB, " +
      std::to_string(shape.cpus) + " vCPU) in " + std::to_string(ms.count()) + " ms");
  return snapshot;
}

}  // namespace hyper::runtime
