// net_throughput: TCP through a container's network, as an HTTP client of a server in the
// container (busybox httpd): the download rate of a large file (throughput) and how many
// connect-request-response-close cycles of a small one finish per second (connection
// rate), each repeated, for one or more targets measured in the same run, e.g. a
// published port and the container's own address.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "benches/bench_common.hpp"

namespace {

using namespace hyper::bench;

double now_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Target {
  std::string label;
  sockaddr_in address{};
};

bool parse_target(const std::string& spec, Target& out) {
  // LABEL=IP:PORT
  const auto eq = spec.find('='), colon = spec.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) return false;
  out.label = spec.substr(0, eq);
  out.address.sin_family = AF_INET;
  out.address.sin_port = htons(static_cast<uint16_t>(std::atoi(spec.c_str() + colon + 1)));
  return ::inet_pton(AF_INET, spec.substr(eq + 1, colon - eq - 1).c_str(), &out.address.sin_addr) == 1;
}

// One HTTP/1.0 GET; the bytes of the response, or -1.
long long get(const Target& target, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  long long total = -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&target.address), sizeof target.address) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      static char buf[1 << 16];
      total = 0;
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) total += n;
      if (n < 0) total = -1;
    }
  }
  ::close(fd);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::vector<std::string> specs;
  std::string big = "/big", small = "/";
  int runs = 5;
  double seconds = 2;
  po::options_description desc("net_throughput: HTTP downloads and connection rate against busybox httpd");
  desc.add_options()("help", "this text")("target", po::value(&specs)->required(), "LABEL=IP:PORT (repeatable)")(
      "big", po::value(&big)->default_value(big), "the large file's path")(
      "small", po::value(&small)->default_value(small), "the small file's path")(
      "seconds", po::value(&seconds)->default_value(seconds), "length of each connection-rate run")(
      "runs", po::value(&runs)->default_value(runs), "repetitions");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "net_throughput", runs)) return *status;
  std::vector<Target> targets(specs.size());
  for (size_t i = 0; i < specs.size(); ++i)
    if (!parse_target(specs[i], targets[i])) {
      std::fprintf(stderr, "net_throughput: bad --target \"%s\": want LABEL=IP:PORT\n", specs[i].c_str());
      return 2;
    }

  std::vector<std::vector<double>> mbps(targets.size()), rates(targets.size());
  // Interleaved, so that drift of the machine (the nested VM's) affects every target alike.
  for (int run = 0; run < runs; ++run) {
    for (size_t t = 0; t < targets.size(); ++t) {
      const double start = now_s();
      const long long bytes = get(targets[t], big);
      const double elapsed = now_s() - start;
      if (bytes <= 0) {
        std::fprintf(stderr, "net_throughput: GET %s from %s failed\n", big.c_str(), targets[t].label.c_str());
        return 1;
      }
      mbps[t].push_back(static_cast<double>(bytes) * 8 / 1e6 / elapsed);
      int done = 0;
      const double rate_start = now_s();
      while (now_s() - rate_start < seconds) {
        if (get(targets[t], small) <= 0) {
          std::fprintf(stderr, "net_throughput: GET %s from %s failed\n", small.c_str(), targets[t].label.c_str());
          return 1;
        }
        ++done;
      }
      rates[t].push_back(done / (now_s() - rate_start));
    }
    std::fprintf(stderr, "net_throughput: run %d/%d done\n", run + 1, runs);
  }
  std::printf("%-28s %12s %12s %12s\n", "target", "min", "median", "max");
  for (size_t t = 0; t < targets.size(); ++t) {
    const auto m = *stats(mbps[t]);
    const auto r = *stats(rates[t]);
    std::printf("%-28s %12.1f %12.1f %12.1f\n", (targets[t].label + " Mbit/s").c_str(), m.min, m.median, m.max);
    std::printf("%-28s %12.1f %12.1f %12.1f\n", (targets[t].label + " conn/s").c_str(), r.min, r.median, r.max);
  }
  if (targets.size() >= 2) {
    const double m0 = stats(mbps[0])->median, m1 = stats(mbps[1])->median;
    const double r0 = stats(rates[0])->median, r1 = stats(rates[1])->median;
    std::printf("ratio %s/%s (medians): throughput %.2f, connection rate %.2f\n", targets[0].label.c_str(),
                targets[1].label.c_str(), m0 / m1, r0 / r1);
  }
  return 0;
}
