// density: start N containers at once, then destroy them at once, with cold boots and from
// a VM template (`hyper run --template`), in turn in the same run. Prints, per mode, the
// time until all are running and until all are gone, each container's own start time, and
// the host memory of each container's VMM process (RSS, and PSS, which splits pages shared
// between VMMs, such as a template's, among them); then the template/cold ratios.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "benches/bench_common.hpp"

using namespace hyper::bench;

namespace {

struct Options {
  std::string hyper, root, image, memory;
  int count = 100;
  int rounds = 3;
};

struct Mode {
  const char* label;
  bool from_template;
  std::vector<double> all_running, all_gone, each_start, rss_mib, pss_mib;
};

struct Batch {
  double wall_ms;                 // until the last command exited
  std::vector<double> each_ms;    // each command's exec to exit
  std::vector<std::string> outs;  // each command's stdout, in command order
};

// Runs every command at once. Nothing when any failed (said on stderr).
std::optional<Batch> run_all(const std::vector<std::vector<std::string>>& commands) {
  const double start = now_ms();
  std::map<pid_t, std::pair<size_t, Spawned>> children;
  for (size_t i = 0; i < commands.size(); ++i) {
    auto child = spawn(commands[i], {});
    if (!child) return std::nullopt;
    children.emplace(child->pid, std::make_pair(i, *child));
  }
  Batch batch{0, {}, std::vector<std::string>(commands.size())};
  bool failed = false;
  for (size_t done = 0; done < commands.size(); ++done) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) return std::nullopt;
    batch.each_ms.push_back(now_ms() - start);
    const auto it = children.find(pid);
    if (it == children.end()) continue;
    const auto& [index, child] = it->second;
    batch.outs[index] = read_all(child.out);
    const std::string err = read_all(child.err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::string words;
      for (const auto& word : commands[index]) words += (words.empty() ? "" : " ") + word;
      std::cerr << "density: `" << words << "` failed (status " << WEXITSTATUS(status) << "): " << err;
      failed = true;
    }
  }
  if (failed) return std::nullopt;
  batch.wall_ms = now_ms() - start;
  return batch;
}

// "Rss:" and "Pss:" of a process, in MiB.
std::optional<std::pair<double, double>> memory_of(int pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  double kib = 0, rss = -1, pss = -1;
  std::string line;
  while (std::getline(rollup, line)) {
    std::istringstream words(line);
    words >> key >> kib;
    if (key == "Rss:") rss = kib / 1024;
    if (key == "Pss:") pss = kib / 1024;
  }
  if (rss < 0 || pss < 0) return std::nullopt;
  return std::make_pair(rss, pss);
}

// The VMM process of container `id`: its state file's vmm_pid (docs/containers.md).
std::optional<int> vmm_pid(const Options& o, std::string id) {
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  std::ifstream state(o.root + "/containers/" + id + "/state.json");
  const std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  const auto at = text.find("\"vmm_pid\":");
  if (at == std::string::npos) return std::nullopt;
  const int pid = std::atoi(text.c_str() + at + 10);
  return pid > 0 ? std::optional<int>(pid) : std::nullopt;
}

bool round_of(const Options& o, Mode& mode, int round) {
  std::vector<std::vector<std::string>> starts, removes;
  std::vector<std::string> names;
  for (int i = 0; i < o.count; ++i) {
    names.push_back("density-" + std::to_string(round) + "-" + std::to_string(i));
    std::vector<std::string> run = {o.hyper, "--root", o.root, "run", "-d", "--network", "none", "-m", o.memory,
                                    "--name", names.back()};
    if (mode.from_template) run.push_back("--template");
    run.insert(run.end(), {o.image, "sleep", "3600"});
    starts.push_back(run);
    removes.push_back({o.hyper, "--root", o.root, "rm", "-f", names.back()});
  }
  const auto started = run_all(starts);
  if (!started) return false;
  mode.all_running.push_back(started->wall_ms);
  mode.each_start.insert(mode.each_start.end(), started->each_ms.begin(), started->each_ms.end());
  for (size_t i = 0; i < names.size(); ++i) {
    const auto pid = vmm_pid(o, started->outs[i]);
    const auto memory = pid ? memory_of(*pid) : std::nullopt;
    if (!memory) {
      std::cerr << "density: no memory figures for " << names[i] << "'s VMM\n";
      return false;
    }
    mode.rss_mib.push_back(memory->first);
    mode.pss_mib.push_back(memory->second);
  }
  const auto gone = run_all(removes);
  if (!gone) return false;
  mode.all_gone.push_back(gone->wall_ms);
  std::fprintf(stderr, "density: round %d, %s: %d running after %.0f ms, all gone %.0f ms later\n", round + 1,
               mode.label, o.count, started->wall_ms, gone->wall_ms);
  return true;
}

void print_row(const char* what, const std::vector<double>& values) {
  const auto s = stats(values);
  std::printf("  %-34s %10.1f %10.1f %10.1f\n", what, s->min, s->median, s->max);
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  Options o;
  po::options_description desc("density: N containers started at once and destroyed at once, cold and from a template");
  desc.add_options()("help", "this text")("hyper", po::value(&o.hyper)->required(), "the hyper CLI")(
      "root", po::value(&o.root)->required(), "hyper's state root (--root)")(
      "image", po::value(&o.image)->default_value("busybox"), "an image hyper has, with sleep")(
      "memory", po::value(&o.memory)->default_value("128m"), "each VM's memory")(
      "count", po::value(&o.count)->default_value(100), "containers at once")(
      "rounds", po::value(&o.rounds)->default_value(3), "repetitions of each mode");
  po::variables_map vm;
  if (auto status = parse_command_line(argc, argv, desc, vm, "density", o.rounds)) return *status;
  if (o.count < 1) {
    std::cerr << "density: --count must be at least 1\n";
    return 2;
  }

  Mode modes[] = {{"cold", false, {}, {}, {}, {}, {}}, {"template", true, {}, {}, {}, {}, {}}};
  for (int round = 0; round < o.rounds; ++round)
    for (auto& mode : modes)
      if (!round_of(o, mode, round)) return 1;

  std::printf("%d containers (%s, -m %s) started at once, then removed at once; %d rounds (ms, MiB)\n", o.count,
              o.image.c_str(), o.memory.c_str(), o.rounds);
  for (const auto& mode : modes) {
    std::printf("%s%*s %10s %10s %10s\n", mode.label, 37 - static_cast<int>(std::strlen(mode.label)), "", "min",
                "median", "max");
    print_row("all running (ms)", mode.all_running);
    print_row("all gone (ms)", mode.all_gone);
    print_row("one container's start (ms)", mode.each_start);
    print_row("VMM RSS per container (MiB)", mode.rss_mib);
    print_row("VMM PSS per container (MiB)", mode.pss_mib);
  }
  const auto ratio = [&](auto member) { return stats(modes[1].*member)->median / stats(modes[0].*member)->median; };
  std::printf("ratio template/cold median: all running %.2fx, all gone %.2fx, start %.2fx, PSS %.2fx\n",
              ratio(&Mode::all_running), ratio(&Mode::all_gone), ratio(&Mode::each_start), ratio(&Mode::pss_mib));
  return 0;
}
