// io_throughput: runs a hyper-vmm command and a QEMU command (each a shell command line
// that boots the same kernel and test init with the same device and workload) N times,
// alternating, and prints min/median/max of every figure the guest or the host peer
// reports on a "metrics key=value ..." line, with the hyper/QEMU ratio of the medians
// (throughputs: above 1 means hyper is faster). benches/run-io-throughput drives it.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <map>
#include <sstream>

#include "benches/bench_common.hpp"
#include "vmm/clock.hpp"

namespace po = boost::program_options;
using namespace hyper::bench;

namespace {

using Figures = std::map<std::string, std::vector<double>>;

// Every key=value on lines containing "metrics ".
void parse_metrics(const std::string& output, Figures& into) {
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    const auto at = line.find("metrics ");
    if (at == std::string::npos) continue;
    std::istringstream words(line.substr(at + 8));
    std::string word;
    while (words >> word) {
      const auto eq = word.find('=');
      if (eq == std::string::npos) continue;
      if (auto v = field(word, word.substr(0, eq))) into[word.substr(0, eq)].push_back(*v);
    }
  }
}

// Runs `command` under /bin/sh; returns its combined output, or nullopt on failure/timeout.
std::optional<std::string> run(const std::string& command, double timeout_s) {
  auto child = spawn({"/bin/sh", "-c", command}, {});
  if (!child) return std::nullopt;
  std::string output;
  bool out_open = true, err_open = true, killed = false;
  const uint64_t start = hyper::monotonic_ns();
  while (out_open || err_open) {
    pollfd fds[2] = {{child->out, static_cast<short>(out_open ? POLLIN : 0), 0},
                     {child->err, static_cast<short>(err_open ? POLLIN : 0), 0}};
    ::poll(fds, 2, 100);
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) (i == 0 ? out_open : err_open) = false;
      else output.append(buf, static_cast<size_t>(n));
    }
    if (!killed && static_cast<double>(hyper::monotonic_ns() - start) / 1e9 > timeout_s) {
      ::kill(child->pid, SIGKILL);
      killed = true;
    }
  }
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  ::close(child->out);
  ::close(child->err);
  if (killed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "io_throughput: run failed (%s, status %d); last output:\n%s\n",
                 killed ? "timed out" : "exited", status, output.substr(output.size() > 2000 ? output.size() - 2000 : 0).c_str());
    return std::nullopt;
  }
  return output;
}

void print_stats(const std::string& metric, const char* vmm, const std::optional<Stats>& s) {
  if (!s) {
    std::printf("%-26s %-6s %10s %10s %10s %3s\n", metric.c_str(), vmm, "-", "-", "-", "0");
    return;
  }
  std::printf("%-26s %-6s %10.1f %10.1f %10.1f %3zu\n", metric.c_str(), vmm, s->min, s->median, s->max, s->n);
}

}  // namespace

int main(int argc, char** argv) {
  std::string name, hyper_cmd, qemu_cmd;
  int runs = 5;
  double timeout_s = 300;
  po::options_description desc("Usage: io_throughput --name CASE --hyper CMD [--qemu CMD] [--runs N]\n\nOptions");
  desc.add_options()("help,h", "show this help")
      ("name", po::value(&name)->required(), "what is measured (printed)")
      ("hyper", po::value(&hyper_cmd)->required(), "shell command booting hyper-vmm with the workload")
      ("qemu", po::value(&qemu_cmd), "shell command booting QEMU with the same workload")
      ("runs", po::value(&runs)->default_value(5), "runs of each command")
      ("timeout", po::value(&timeout_s)->default_value(300), "seconds before a run is killed");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "io_throughput", runs)) return *status;

  Figures hyper, qemu;
  int failed = 0;
  for (int i = 0; i < runs; ++i) {  // alternating, so drift in the host affects both alike
    if (auto out = run(hyper_cmd, timeout_s)) parse_metrics(*out, hyper); else ++failed;
    if (qemu_cmd.empty()) continue;
    if (auto out = run(qemu_cmd, timeout_s)) parse_metrics(*out, qemu); else ++failed;
  }
  std::printf("== %s: %d run(s) each%s\n", name.c_str(), runs, qemu_cmd.empty() ? "" : ", hyper and QEMU alternating");
  std::printf("%-26s %-6s %10s %10s %10s %3s\n", "metric", "vmm", "min", "median", "max", "n");
  for (const auto& [metric, values] : hyper) {
    const auto h = stats(values);
    print_stats(metric, "hyper", h);
    if (qemu_cmd.empty()) continue;
    const auto q = stats(qemu[metric]);
    print_stats(metric, "qemu", q);
    if (h && q && q->median > 0) std::printf("%-26s hyper/qemu median = %.2fx\n", metric.c_str(), h->median / q->median);
  }
  if (hyper.empty()) std::printf("(no figures from hyper)\n");
  return failed ? 1 : 0;
}
