// boot_latency: boots the same kernel + initrd N times in hyper-vmm and (optionally) in
// QEMU -M microvm, and prints min/median/max of exec -> first KVM_RUN, exec -> init
// reached and exec -> VMM exit, plus QEMU/hyper ratios measured in the same run.
//
// "init reached" is measured the same way for both VMMs: the moment the guest init's
// marker line appears on the VMM's stdout (our VMM also reports its boot-timer port,
// printed separately). With --native-first-run the guest is stopped by SIGTERM after
// --stop-after-ms: on hosts whose KVM cannot boot the guest (PVM), this measures only
// exec -> first KVM_RUN.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "benches/bench_common.hpp"
#include "vmm/clock.hpp"

namespace po = boost::program_options;

namespace {

using hyper::bench::field;
using hyper::bench::parse_command_line;
using hyper::bench::spawn;
using hyper::bench::Stats;
using hyper::bench::stats;

constexpr const char* kInitMarker = "hyper-test-init: ready";
constexpr const char* kGuestArgs = "quiet";

struct RunSample {
  std::optional<double> first_kvm_run_ms, boot_timer_ms, marker_ms;
  double exit_ms = 0;
  int status = -1;
};

double since_ms(uint64_t start) { return static_cast<double>(hyper::monotonic_ns() - start) / 1e6; }

// Runs one boot; SIGTERMs the VMM after stop_after_ms (0: never) or timeout_s.
RunSample run_once(const std::vector<std::string>& argv, bool is_hyper, double stop_after_ms, double timeout_s) {
  RunSample s;
  const uint64_t start = hyper::monotonic_ns();
  auto child = spawn(argv, {"HYPER_EXEC_TS_NS=" + std::to_string(start)});
  if (!child) return s;
  std::string out, err;
  bool out_open = true, err_open = true, signalled = false;
  while (out_open || err_open) {
    pollfd fds[2] = {{child->out, POLLIN, 0}, {child->err, POLLIN, 0}};
    ::poll(fds, 2, 10);
    char buf[4096];
    if (fds[0].revents) {
      const ssize_t n = ::read(child->out, buf, sizeof buf);
      if (n <= 0) out_open = false; else out.append(buf, static_cast<size_t>(n));
      if (!s.marker_ms && out.find(kInitMarker) != std::string::npos) s.marker_ms = since_ms(start);
    }
    if (fds[1].revents) {
      const ssize_t n = ::read(child->err, buf, sizeof buf);
      if (n <= 0) err_open = false; else err.append(buf, static_cast<size_t>(n));
    }
    const double elapsed = since_ms(start);
    if (!signalled && ((stop_after_ms > 0 && elapsed > stop_after_ms) || elapsed > timeout_s * 1000)) {
      ::kill(child->pid, SIGTERM);
      signalled = true;
    }
  }
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  s.exit_ms = since_ms(start);
  s.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  ::close(child->out);
  ::close(child->err);
  if (is_hyper) {
    s.first_kvm_run_ms = field(err, "first_kvm_run_ms");
    s.boot_timer_ms = field(err, "boot_timer_ms");
  }
  return s;
}

template <class Get>
std::optional<Stats> collect(const std::vector<RunSample>& runs, Get get) {
  std::vector<double> v;
  for (const auto& r : runs)
    if (auto x = get(r)) v.push_back(*x);
  return stats(v);
}

void print_row(const std::string& vmm, const std::string& metric, const std::optional<Stats>& s) {
  if (!s) {
    std::printf("%-8s %-24s %10s %10s %10s %4s\n", vmm.c_str(), metric.c_str(), "-", "-", "-", "0");
    return;
  }
  std::printf("%-8s %-24s %10.2f %10.2f %10.2f %4zu\n", vmm.c_str(), metric.c_str(), s->min, s->median, s->max, s->n);
}

void print_ratio(const std::string& metric, const std::optional<Stats>& hyper, const std::optional<Stats>& qemu) {
  if (hyper && qemu && hyper->median > 0)
    std::printf("ratio    %-24s qemu/hyper median = %.2fx\n", metric.c_str(), qemu->median / hyper->median);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 10;
  std::string vmm, kernel, initrd, qemu = "qemu-system-x86_64", qemu_machine = "microvm,acpi=off";
  double stop_after_ms = 0, timeout_s = 300;
  bool native_first_run = false, no_qemu = false;
  po::options_description desc("Usage: boot_latency --vmm PATH --kernel K --initrd I [options]\n\nOptions");
  desc.add_options()("help,h", "show help")
      ("runs,n", po::value(&runs)->default_value(10), "boots per VMM")
      ("vmm", po::value(&vmm)->required(), "path to hyper-vmm")
      ("kernel", po::value(&kernel)->required(), "guest kernel (vmlinux)")
      ("initrd", po::value(&initrd)->required(), "initrd whose init prints the marker and exits")
      ("qemu", po::value(&qemu), "QEMU binary for the peer measurement")
      ("qemu-machine", po::value(&qemu_machine), "QEMU -M value")
      ("no-qemu", po::bool_switch(&no_qemu), "measure hyper-vmm only")
      ("native-first-run", po::bool_switch(&native_first_run),
       "measure only exec -> first KVM_RUN (for hosts that cannot boot the guest); implies --no-qemu")
      ("stop-after-ms", po::value(&stop_after_ms)->default_value(150), "with --native-first-run: SIGTERM after this")
      ("timeout", po::value(&timeout_s)->default_value(300), "seconds before a boot is killed");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "boot_latency", runs)) return *status;

  std::vector<std::string> hyper_cmd{vmm, "--kernel", kernel, "--initrd", initrd, "--timings", "--cmdline", kGuestArgs};
  std::vector<RunSample> hyper_runs, qemu_runs;
  for (int i = 0; i < runs; ++i)
    hyper_runs.push_back(run_once(hyper_cmd, true, native_first_run ? stop_after_ms : 0, timeout_s));
  const bool compare = !(no_qemu || native_first_run);
  if (compare) {
    std::vector<std::string> qemu_cmd{qemu, "-M", qemu_machine, "-enable-kvm", "-cpu", "host", "-m", "128",
                                      "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                                      "-serial", "stdio", "-kernel", kernel, "-initrd", initrd, "-append",
                                      std::string("console=ttyS0 8250.nr_uarts=1 reboot=t panic=-1 ") + kGuestArgs};
    for (int i = 0; i < runs; ++i) qemu_runs.push_back(run_once(qemu_cmd, false, 0, timeout_s));
  }

  // A run that did not end as expected is reported and left out of the figures.
  const int expected_status = native_first_run ? 128 + SIGTERM : 0;
  int failed = 0;
  for (auto* set : {&hyper_runs, &qemu_runs}) {
    std::erase_if(*set, [&](const RunSample& r) {
      if (r.status == expected_status) return false;
      std::fprintf(stderr, "boot_latency: a %s run ended with status %d (expected %d); left out\n",
                   set == &hyper_runs ? "hyper-vmm" : "QEMU", r.status, expected_status);
      ++failed;
      return true;
    });
  }

  std::printf("%-8s %-24s %10s %10s %10s %4s   (ms)\n", "vmm", "metric", "min", "median", "max", "n");
  const auto first_run = collect(hyper_runs, [](auto& r) { return r.first_kvm_run_ms; });
  print_row("hyper", "exec->first KVM_RUN", first_run);
  if (!native_first_run) {
    const auto h_marker = collect(hyper_runs, [](auto& r) { return r.marker_ms; });
    const auto h_exit = collect(hyper_runs, [](auto& r) { return std::optional<double>(r.exit_ms); });
    print_row("hyper", "exec->boot-timer port", collect(hyper_runs, [](auto& r) { return r.boot_timer_ms; }));
    print_row("hyper", "exec->init marker", h_marker);
    print_row("hyper", "exec->VMM exit", h_exit);
    if (compare) {
      const auto q_marker = collect(qemu_runs, [](auto& r) { return r.marker_ms; });
      const auto q_exit = collect(qemu_runs, [](auto& r) { return std::optional<double>(r.exit_ms); });
      print_row("qemu", "exec->init marker", q_marker);
      print_row("qemu", "exec->VMM exit", q_exit);
      print_ratio("exec->init marker", h_marker, q_marker);
      print_ratio("exec->VMM exit", h_exit, q_exit);
    }
  }
  return failed ? 1 : 0;
}
