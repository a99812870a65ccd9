// hyper volume create|ls|inspect|rm|prune|snapshot: named block volumes, as `docker volume`
// has them, with snapshots (runtime/volume).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "runtime/api/resource_json.hpp"
#include "cli/container_args.hpp"
#include "cli/human.hpp"
#include "runtime/volume/mount_spec.hpp"
#include "runtime/volume/volume_store.hpp"
#include "runtime/volume/volume_users.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
namespace volume = runtime::volume;
using Json = nlohmann::ordered_json;

struct Stores {
  volume::VolumeStore volumes;
  runtime::ContainerStore containers;
};

Result<Stores> open_stores(const GlobalOptions& global) {
  const runtime::Paths paths = HYPER_TRY(runtime::resolve_paths(global.root));
  return Stores{HYPER_TRY(volume::VolumeStore::open(paths.volumes())),
                HYPER_TRY(runtime::ContainerStore::open(paths.containers()))};
}

// The bytes a sparse image really occupies.
uint64_t disk_usage(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

Result<std::map<std::string, std::string>> parse_options(const std::vector<std::string>& opts) {
  std::map<std::string, std::string> out;
  for (const auto& opt : opts) {
    const auto eq = opt.find('=');
    if (eq == std::string::npos || eq == 0) return make_error(Errc::invalid_argument, "invalid option '" + opt + "': KEY=VALUE");
    out[opt.substr(0, eq)] = opt.substr(eq + 1);
  }
  return out;
}

int volume_create(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  desc.add_options()("driver,d", po::value<std::string>()->default_value(volume::kLocalDriver))(
      "opt,o", po::value<std::vector<std::string>>()->composing())("from-snapshot", po::value<std::string>())(
      "name", po::value<std::string>());
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message + "\nSee 'hyper volume create --help'.", 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper volume create [OPTIONS] [VOLUME]\n\nCreate a volume\n\n"
                "  -d, --driver local|nbd        where the data lives (default local: a sparse ext4\n"
                "                                image under the state root)\n"
                "  -o, --opt size=SIZE           the local driver's size (default 10g)\n"
                "  -o, --opt uri=nbd://HOST:PORT/EXPORT\n"
                "                                the nbd driver's export (formatted ext4 when it holds none)\n"
                "      --from-snapshot [VOLUME/]SNAPSHOT\n"
                "                                start as a copy of a snapshot\n");
    return 0;
  }
  if (words->size() > 1 || (words->size() == 1 && vm.count("name")))
    return report("\"hyper volume create\" takes at most 1 argument: VOLUME", 125);
  volume::VolumeRequest request;
  request.driver = vm["driver"].as<std::string>();
  if (!words->empty()) request.name = words->front();
  if (vm.count("name")) request.name = vm["name"].as<std::string>();
  auto options = parse_options(vm.count("opt") ? vm["opt"].as<std::vector<std::string>>() : std::vector<std::string>{});
  if (!options.ok()) return report(options.error().message, 125);
  request.options = *options;
  if (vm.count("from-snapshot")) request.from_snapshot = vm["from-snapshot"].as<std::string>();
  auto stores = open_stores(global);
  if (!stores.ok()) return report(stores.error().message, 125);
  auto created = stores->volumes.create(request);
  if (!created.ok()) return report(created.error().message, 125);
  std::printf("%s\n", created->name.c_str());
  return 0;
}

int volume_ls(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  bool quiet = false;
  desc.add_options()("quiet,q", po::bool_switch(&quiet));
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok() || !words->empty())
    return report((words.ok() ? "\"hyper volume ls\" accepts no arguments" : words.error().message) +
                      "\nSee 'hyper volume ls --help'.", 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper volume ls [OPTIONS]\n\nList volumes\n\n  -q, --quiet   only display volume names\n");
    return 0;
  }
  auto stores = open_stores(global);
  if (!stores.ok()) return report(stores.error().message, 125);
  auto volumes = stores->volumes.list();
  if (!volumes.ok()) return report(volumes.error().message, 125);
  std::vector<TableRow> rows;
  if (!quiet) rows.push_back({"DRIVER", "VOLUME NAME", "SIZE"});
  for (const auto& v : *volumes) {
    if (quiet) rows.push_back({v.name});
    else rows.push_back({v.driver, v.name, v.driver == volume::kNbdDriver ? v.uri : human_size(v.size_bytes)});
  }
  print_table(rows);
  return 0;
}

int volume_inspect(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper volume inspect VOLUME [VOLUME...]\n\nDisplay detailed information on volumes\n");
    return 0;
  }
  if (words->empty()) return report("\"hyper volume inspect\" requires at least 1 argument: VOLUME", 125);
  auto stores = open_stores(global);
  if (!stores.ok()) return report(stores.error().message, 125);
  auto all = stores->containers.list();
  if (!all.ok()) return report(all.error().message, 125);
  Json out = Json::array();
  int status = 0;
  for (const auto& name : *words) {
    auto v = stores->volumes.find(name);
    if (!v.ok()) {
      status = report("Error: " + v.error().message, 1);
      continue;
    }
    out.push_back(runtime::api::volume_json(stores->volumes, *v, *all));
  }
  std::printf("%s\n", out.dump(4).c_str());
  return status;
}

int volume_rm(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  bool force = false;
  desc.add_options()("force,f", po::bool_switch(&force));
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper volume rm [-f] VOLUME [VOLUME...]\n\nRemove volumes that no container refers to\n\n"
                "  -f, --force   no error for a volume that does not exist\n");
    return 0;
  }
  if (words->empty()) return report("\"hyper volume rm\" requires at least 1 argument: VOLUME", 125);
  auto stores = open_stores(global);
  if (!stores.ok()) return report(stores.error().message, 125);
  int status = 0;
  for (const auto& name : *words) {
    auto v = stores->volumes.find(name);
    if (!v.ok() && force && v.error().code == Errc::not_found) continue;
    Status removed = v.ok() ? volume::remove_volume(stores->volumes, stores->containers, *v) : Status(std::move(v).error());
    if (removed.ok()) std::printf("%s\n", name.c_str());
    else status = report("Error response: " + removed.error().message, 1);
  }
  return status;
}

int volume_prune(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  bool force = false, all = false;
  desc.add_options()("force,f", po::bool_switch(&force))("all,a", po::bool_switch(&all));
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper volume prune [-a] [-f]\n\nRemove anonymous volumes no container refers to\n\n"
                "  -a, --all     named ones too\n  -f, --force   do not ask\n");
    return 0;
  }
  if (!force && ::isatty(STDIN_FILENO)) {
    std::printf("WARNING! This will remove %s volumes not used by at least one container.\n"
                "Are you sure you want to continue? [y/N] ", all ? "all local" : "anonymous local");
    std::fflush(stdout);
    char answer[16] = {};
    if (!std::fgets(answer, sizeof answer, stdin) || (answer[0] != 'y' && answer[0] != 'Y')) return 0;
  }
  auto stores = open_stores(global);
  if (!stores.ok()) return report(stores.error().message, 125);
  auto volumes = stores->volumes.list();
  if (!volumes.ok()) return report(volumes.error().message, 125);
  std::vector<std::string> deleted;
  uint64_t reclaimed = 0;
  for (const auto& v : *volumes) {
    if (!all && !v.anonymous) continue;
    const uint64_t bytes = disk_usage(v.disk());
    if (volume::remove_volume(stores->volumes, stores->containers, v).ok()) deleted.push_back(v.name), reclaimed += bytes;
  }
  if (!deleted.empty()) {
    std::printf("Deleted Volumes:\n");
    for (const auto& name : deleted) std::printf("%s\n", name.c_str());
    std::printf("\n");
  }
  std::printf("Total reclaimed space: %s\n", human_size(reclaimed).c_str());
  return 0;
}

int snapshot_create(const Stores& stores, const std::vector<std::string>& words) {
  if (words.empty() || words.size() > 2)
    return report("\"hyper volume snapshot create\" requires VOLUME [NAME]", 125);
  auto v = stores.volumes.find(words[0]);
  if (!v.ok()) return report(v.error().message, 125);
  const std::optional<std::string> name = words.size() == 2 ? std::optional(words[1]) : std::nullopt;
  auto snapshot = volume::take_snapshot(stores.volumes, stores.containers, *v, name);
  if (!snapshot.ok()) return report(snapshot.error().message, 125);
  std::printf("%s\n", snapshot->name.c_str());
  return 0;
}

int snapshot_ls(const Stores& stores, const std::vector<std::string>& words, bool quiet) {
  if (words.size() != 1) return report("\"hyper volume snapshot ls\" requires exactly 1 argument: VOLUME", 125);
  auto v = stores.volumes.find(words[0]);
  if (!v.ok()) return report(v.error().message, 125);
  auto snapshots = stores.volumes.snapshots(*v);
  if (!snapshots.ok()) return report(snapshots.error().message, 125);
  std::vector<TableRow> rows;
  if (!quiet) rows.push_back({"SNAPSHOT", "CREATED", "SIZE", "METHOD"});
  for (const auto& s : *snapshots) {
    if (quiet) rows.push_back({s.name});
    else rows.push_back({s.name, s.created.substr(0, 19), human_size(s.size_bytes), s.method});
  }
  print_table(rows);
  return 0;
}

int snapshot_rm(const Stores& stores, const std::vector<std::string>& words) {
  if (words.size() < 2) return report("\"hyper volume snapshot rm\" requires VOLUME SNAPSHOT [SNAPSHOT...]", 125);
  int status = 0;
  for (size_t i = 1; i < words.size(); ++i) {
    auto snapshot = stores.volumes.find_snapshot(words[0] + "/" + words[i]);
    Status removed = [&]() -> Status {
      if (!snapshot.ok()) return snapshot.error();
      auto held = HYPER_TRY(stores.volumes.lock());
      return stores.volumes.remove_snapshot_locked(*snapshot);
    }();
    if (removed.ok()) std::printf("%s\n", words[i].c_str());
    else status = report("Error: " + removed.error().message, 1);
  }
  return status;
}

int volume_snapshot(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage =
      "Usage: hyper volume snapshot COMMAND\n\nManage a volume's snapshots\n\nCommands:\n"
      "  create VOLUME [NAME]            a consistent copy (a running writer's file system\n"
      "                                  is frozen for it; a reflink where the host can)\n"
      "  ls VOLUME                       list its snapshots\n"
      "  rm VOLUME SNAPSHOT [SNAPSHOT...] remove snapshots\n\n"
      "A new volume starts from one with: hyper volume create --from-snapshot VOLUME/SNAPSHOT NEW\n";
  if (args.empty() || args.front() == "--help") {
    std::printf("%s", kUsage);
    return args.empty() ? 125 : 0;
  }
  po::options_description desc;
  po::variables_map vm;
  bool quiet = false;
  desc.add_options()("quiet,q", po::bool_switch(&quiet));
  auto words = parse_command_line(std::vector<std::string>(args.begin() + 1, args.end()), desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  auto stores = open_stores(global);
  if (!stores.ok()) return report(stores.error().message, 125);
  const std::string& sub = args.front();
  if (sub == "create") return snapshot_create(*stores, *words);
  if (sub == "ls" || sub == "list") return snapshot_ls(*stores, *words, quiet);
  if (sub == "rm" || sub == "remove") return snapshot_rm(*stores, *words);
  return report("'volume snapshot " + sub + "' is not a hyper command.\nSee 'hyper volume snapshot --help'", 1);
}

}  // namespace

int cmd_volume(const GlobalOptions& global, const std::vector<std::string>& args) {
  struct Sub {
    const char* name;
    Command run;
  };
  static constexpr Sub kSubcommands[] = {
      {"create", volume_create}, {"ls", volume_ls},       {"list", volume_ls},         {"inspect", volume_inspect},
      {"rm", volume_rm},         {"remove", volume_rm},   {"prune", volume_prune},     {"snapshot", volume_snapshot},
  };
  if (args.empty() || args.front() == "--help") {
    std::printf("Usage:  hyper volume COMMAND\n\nManage volumes\n\nCommands:\n  create    Create a volume\n"
                "  inspect   Display detailed information on volumes\n  ls        List volumes\n"
                "  prune     Remove unused anonymous volumes (-a: all unused)\n  rm        Remove volumes\n"
                "  snapshot  Manage a volume's snapshots (create, ls, rm)\n");
    return args.empty() ? 125 : 0;
  }
  for (const auto& sub : kSubcommands)
    if (args.front() == sub.name) return sub.run(global, std::vector<std::string>(args.begin() + 1, args.end()));
  return report("'volume " + args.front() + "' is not a hyper command.\nSee 'hyper volume --help'", 1);
}

}  // namespace hyper::cli
