// hyper network create|ls|inspect|rm|prune: bridge networks, as `docker network` has them.
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "runtime/api/resource_json.hpp"
#include "cli/container_args.hpp"
#include "cli/human.hpp"
#include "runtime/network/container_network.hpp"
#include "runtime/network/network_store.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
namespace net = runtime::net;
using Json = nlohmann::ordered_json;

constexpr size_t kShortId = 12;

Result<net::NetworkStore> open_network_store(const GlobalOptions& global) {
  const runtime::Paths paths = HYPER_TRY(runtime::resolve_paths(global.root));
  return net::NetworkStore::open(paths.networks());
}

int network_create(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  desc.add_options()("driver,d", po::value<std::string>()->default_value("bridge"))("subnet", po::value<std::string>())(
      "gateway", po::value<std::string>());
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message + "\nSee 'hyper network create --help'.", 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper network create [OPTIONS] NETWORK\n\nCreate a network\n\n"
                "  -d, --driver bridge    the driver (only bridge)\n"
                "      --subnet CIDR      the network's IPv4 subnet (chosen when absent)\n"
                "      --gateway IP       the bridge's address (the subnet's first when absent)\n");
    return 0;
  }
  if (words->size() != 1) return report("\"hyper network create\" requires exactly 1 argument: NETWORK", 125);
  if (vm["driver"].as<std::string>() != "bridge")
    return report("plugin \"" + vm["driver"].as<std::string>() + "\" not found: hyper networks use the bridge driver", 125);
  if (vm.count("gateway") && !vm.count("subnet")) return report("--gateway needs --subnet", 125);
  net::NetworkRequest request{words->front(), std::nullopt, std::nullopt};
  if (vm.count("subnet")) request.subnet = vm["subnet"].as<std::string>();
  if (vm.count("gateway")) request.gateway = vm["gateway"].as<std::string>();
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = net::NetworkStore::open(paths->networks());
  if (!store.ok()) return report(store.error().message, 125);
  auto network = net::create_network(*paths, *store, request);
  if (!network.ok()) return report(network.error().message, 125);
  std::printf("%s\n", network->id.c_str());
  return 0;
}

int network_ls(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  bool quiet = false, no_trunc = false;
  desc.add_options()("quiet,q", po::bool_switch(&quiet))("no-trunc", po::bool_switch(&no_trunc));
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok() || !words->empty())
    return report((words.ok() ? "\"hyper network ls\" accepts no arguments" : words.error().message) +
                      "\nSee 'hyper network ls --help'.", 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper network ls [OPTIONS]\n\nList networks\n\n  -q, --quiet      only display network IDs\n"
                "      --no-trunc   do not truncate the output\n");
    return 0;
  }
  auto store = open_network_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto networks = store->list();
  if (!networks.ok()) return report(networks.error().message, 125);
  std::vector<TableRow> rows;
  if (!quiet) rows.push_back({"NETWORK ID", "NAME", "DRIVER", "SCOPE"});
  for (const auto& network : *networks) {
    const std::string id = no_trunc ? network.id : network.id.substr(0, kShortId);
    if (quiet) rows.push_back({id});
    else rows.push_back({id, network.name, network.driver, "local"});
  }
  print_table(rows);
  return 0;
}

int network_inspect(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper network inspect NETWORK [NETWORK...]\n\nDisplay detailed information on networks\n");
    return 0;
  }
  if (words->empty()) return report("\"hyper network inspect\" requires at least 1 argument: NETWORK", 125);
  auto store = open_network_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  Json out = Json::array();
  int status = 0;
  for (const auto& ref : *words) {
    auto network = store->find(ref);
    if (!network.ok()) {
      status = report("Error: " + network.error().message, 1);
      continue;
    }
    out.push_back(runtime::api::network_json(*store, *network));
  }
  std::printf("%s\n", out.dump(4).c_str());
  return status;
}

int network_rm(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper network rm NETWORK [NETWORK...]\n\nRemove networks that no running container is on\n");
    return 0;
  }
  if (words->empty()) return report("\"hyper network rm\" requires at least 1 argument: NETWORK", 125);
  auto store = open_network_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  int status = 0;
  for (const auto& ref : *words) {
    auto network = store->find(ref);
    Status removed = network.ok() ? net::remove_network(*store, *network) : Status(std::move(network).error());
    if (removed.ok()) std::printf("%s\n", ref.c_str());
    else status = report("Error response: " + removed.error().message, 1);
  }
  return status;
}

int network_prune(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  bool force = false;
  desc.add_options()("force,f", po::bool_switch(&force));
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message, 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper network prune [-f]\n\nRemove all networks no running container is on\n");
    return 0;
  }
  if (!force && ::isatty(STDIN_FILENO)) {
    std::printf("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
    std::fflush(stdout);
    char answer[16] = {};
    if (!std::fgets(answer, sizeof answer, stdin) || (answer[0] != 'y' && answer[0] != 'Y')) return 0;
  }
  auto store = open_network_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto networks = store->list();
  if (!networks.ok()) return report(networks.error().message, 125);
  std::vector<std::string> deleted;
  for (const auto& network : *networks) {
    if (network.is_default()) continue;
    auto live = store->endpoints(network);
    if (!live.ok() || !live->empty()) continue;
    if (remove_network(*store, network).ok()) deleted.push_back(network.name);
  }
  if (!deleted.empty()) {
    std::printf("Deleted Networks:\n");
    for (const auto& name : deleted) std::printf("%s\n", name.c_str());
  }
  return 0;
}

}  // namespace

int cmd_network(const GlobalOptions& global, const std::vector<std::string>& args) {
  struct Sub {
    const char* name;
    Command run;
  };
  static constexpr Sub kSubcommands[] = {
      {"create", network_create}, {"ls", network_ls},     {"list", network_ls},       {"inspect", network_inspect},
      {"rm", network_rm},         {"remove", network_rm}, {"prune", network_prune},
  };
  if (args.empty() || args.front() == "--help") {
    std::printf("Usage:  hyper network COMMAND\n\nManage networks\n\nCommands:\n  create   Create a network\n"
                "  inspect  Display detailed information on networks\n  ls       List networks\n"
                "  prune    Remove all unused networks\n  rm       Remove networks\n");
    return args.empty() ? 125 : 0;
  }
  for (const auto& sub : kSubcommands)
    if (args.front() == sub.name) return sub.run(global, std::vector<std::string>(args.begin() + 1, args.end()));
  return report("'network " + args.front() + "' is not a hyper command.\nSee 'hyper network --help'", 1);
}

}  // namespace hyper::cli
