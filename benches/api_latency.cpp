// api_latency: `docker run --rm IMAGE true` through hyperd against `hyper run --rm IMAGE
// true`, alternating in the same run, end to end (client exec to client exit): what the
// Engine API, the docker client and hyperd's way of starting a monitor (`hyper start`,
// output followed from the log) add to a container's start and end.

#include <cstdio>

#include "benches/bench_common.hpp"

using namespace hyper::bench;

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::string hyper, docker, host, image;
  int runs = 10;
  po::options_description desc("api_latency: docker run --rm through hyperd vs hyper run --rm");
  desc.add_options()("help", "this text")("hyper", po::value(&hyper)->required(), "the hyper CLI")(
      "docker", po::value(&docker)->default_value("docker"), "the docker CLI")(
      "host", po::value(&host)->required(), "hyperd's socket, unix://PATH")(
      "image", po::value(&image)->default_value("busybox"), "an image both see")(
      "runs", po::value(&runs)->default_value(10), "repetitions of each");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "api_latency", runs)) return *status;

  std::vector<double> through_api, direct;
  for (int i = 0; i < runs; ++i) {
    const auto api = time_command("api_latency", {docker, "-H", host, "run", "--rm", image, "true"});
    const auto cli = time_command("api_latency", {hyper, "run", "--rm", image, "true"});
    if (!api || !cli) return 1;
    through_api.push_back(*api);
    direct.push_back(*cli);
    std::fprintf(stderr, "api_latency: run %d/%d: docker %.1f ms, hyper %.1f ms\n", i + 1, runs, *api, *cli);
  }
  const auto a = stats(through_api), d = stats(direct);
  std::printf("run --rm %s true, %d runs each, alternating (ms)\n", image.c_str(), runs);
  std::printf("%-28s %10s %10s %10s\n", "client", "min", "median", "max");
  std::printf("%-28s %10.1f %10.1f %10.1f\n", "docker -> hyperd", a->min, a->median, a->max);
  std::printf("%-28s %10.1f %10.1f %10.1f\n", "hyper (no daemon)", d->min, d->median, d->max);
  std::printf("ratio docker/hyper median = %.2fx\n", a->median / d->median);
  return 0;
}
