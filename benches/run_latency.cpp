// run_latency: `hyper run --rm IMAGE true` end to end (the CLI's exec to its exit
// status), repeated, with the breakdown hyper prints under HYPER_TIMINGS=1: VMM set-up
// (CLI exec -> first KVM_RUN), kernel to init, init to the container's exec (guest
// clock; of which start_to_exec is the init's own work after the host's start request),
// the container's process, and teardown (exit status -> CLI exit).
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "benches/bench_common.hpp"

namespace {

using namespace hyper::bench;

const char* const kPhases[] = {"vmm_setup_ms",    "kernel_to_init_ms", "init_to_exec_ms",
                               "start_to_exec_ms", "exec_to_exit_ms",   "teardown_ms"};

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::string hyper, image;
  std::vector<std::string> run_args;
  int runs = 20;
  po::options_description desc("run_latency: hyper run --rm IMAGE true, end to end");
  desc.add_options()("help", "this text")(
      "hyper", po::value(&hyper)->required(), "the hyper CLI")("image", po::value(&image)->default_value("busybox"),
                                                               "a loaded image")(
      "runs", po::value(&runs)->default_value(20), "repetitions")(
      "run-arg", po::value(&run_args), "a flag for hyper run, e.g. --run-arg=--network=none (repeatable)");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "run_latency", runs)) return *status;

  std::map<std::string, std::vector<double>> figures;
  for (int i = 0; i < runs; ++i) {
    const double start = now_ms();
    std::vector<std::string> command = {hyper, "run", "--rm"};
    command.insert(command.end(), run_args.begin(), run_args.end());
    command.insert(command.end(), {image, "true"});
    auto child = spawn(command, {"HYPER_TIMINGS=1"});
    if (!child) return 1;
    const std::string out = read_all(child->out);
    const std::string err = read_all(child->err);
    int status = 0;
    ::waitpid(child->pid, &status, 0);
    const double total = now_ms() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "run_latency: run %d failed (status %d):\n%s%s", i + 1, WEXITSTATUS(status), out.c_str(), err.c_str());
      return 1;
    }
    figures["total_ms"].push_back(total);
    std::fprintf(stderr, "run_latency: run %d/%d: %.1f ms\n", i + 1, runs, total);
    for (const char* phase : kPhases) {
      if (auto value = field(err, phase)) figures[phase].push_back(*value);
    }
  }
  std::string flags;
  for (const auto& arg : run_args) flags += arg + " ";
  std::printf("hyper run --rm %s%s true: %d runs (ms)\n", flags.c_str(), image.c_str(), runs);
  std::printf("%-20s %10s %10s %10s\n", "phase", "min", "median", "max");
  for (const char* phase : {"total_ms", kPhases[0], kPhases[1], kPhases[2], kPhases[3], kPhases[4], kPhases[5]}) {
    const auto s = stats(figures[phase]);
    if (!s) continue;
    std::printf("%-20s %10.1f %10.1f %10.1f\n", phase, s->min, s->median, s->max);
  }
  return 0;
}
