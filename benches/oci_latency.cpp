// oci_latency: `podman run --rm IMAGE true` with hyper-runtime as podman's OCI runtime,
// with runc, and `hyper run --rm IMAGE true`, in turn in the same run, end to end (client
// exec to client exit): what a microVM costs a podman user over runc's namespaces, and
// what podman and conmon add around our own VM start.
#include <cstdio>

#include "benches/bench_common.hpp"

using namespace hyper::bench;

namespace {

struct Case {
  const char* label;
  std::vector<std::string> command;
  std::vector<double> ms;
};

std::vector<std::string> podman_run(const std::string& podman_dir, const std::string& runtime, const std::string& image) {
  return {"podman", "--root", podman_dir + "/root", "--runroot", podman_dir + "/run", "--cgroup-manager", "cgroupfs",
          "--events-backend", "file", "--storage-driver", "vfs", "--runtime", runtime, "run", "--rm", "--network",
          "none", image, "true"};
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::string hyper, hyper_runtime, runc, podman_dir, image;
  int runs = 10;
  po::options_description desc("oci_latency: podman run --rm with hyper-runtime and with runc, and hyper run --rm");
  desc.add_options()("help", "this text")("hyper", po::value(&hyper)->required(), "the hyper CLI")(
      "hyper-runtime", po::value(&hyper_runtime)->required(), "hyper-runtime (or a wrapper that gives its --root)")(
      "runc", po::value(&runc)->default_value("/usr/sbin/runc"), "runc")(
      "podman-dir", po::value(&podman_dir)->required(), "podman's --root and --runroot go under it")(
      "image", po::value(&image)->default_value("busybox"), "an image podman and hyper both have")(
      "runs", po::value(&runs)->default_value(10), "repetitions of each");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "oci_latency", runs)) return *status;

  Case cases[] = {{"podman + hyper-runtime", podman_run(podman_dir, hyper_runtime, image), {}},
                  {"podman + runc", podman_run(podman_dir, runc, image), {}},
                  {"hyper run", {hyper, "run", "--rm", "--network", "none", image, "true"}, {}}};
  for (int i = 0; i < runs; ++i) {
    for (auto& c : cases) {
      const auto ms = time_command("oci_latency", c.command);
      if (!ms) return 1;
      c.ms.push_back(*ms);
    }
    std::fprintf(stderr, "oci_latency: run %d/%d: %.1f, %.1f, %.1f ms\n", i + 1, runs, cases[0].ms.back(),
                 cases[1].ms.back(), cases[2].ms.back());
  }
  std::printf("run --rm %s true, %d runs each, in turn (ms)\n", image.c_str(), runs);
  std::printf("%-28s %10s %10s %10s\n", "client", "min", "median", "max");
  for (const auto& c : cases) {
    const auto s = stats(c.ms);
    std::printf("%-28s %10.1f %10.1f %10.1f\n", c.label, s->min, s->median, s->max);
  }
  const double hyper_runtime_median = stats(cases[0].ms)->median;
  std::printf("ratio hyper-runtime/runc median = %.2fx\n", hyper_runtime_median / stats(cases[1].ms)->median);
  std::printf("ratio hyper-runtime/hyper run median = %.2fx\n", hyper_runtime_median / stats(cases[2].ms)->median);
  return 0;
}
