// hyper fip allocate|ls|attach|detach|release: floating addresses, as hyper.sh had them
// (runtime/network/floating_ips.hpp).
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "cli/human.hpp"
#include "runtime/network/floating_ips.hpp"

namespace hyper::cli {
namespace {

namespace net = runtime::net;

constexpr const char* kUsage =
    "Usage:  hyper fip COMMAND\n\nManage floating IPs (a pool in <root>/config.json)\n\nCommands:\n"
    "  allocate [IP]        take an address from the pool (the lowest free one, or IP)\n"
    "  ls                   list allocated addresses and their containers\n"
    "  attach FIP CONTAINER map FIP 1:1 to CONTAINER (moving it from another one)\n"
    "  detach FIP           unmap FIP from its container\n"
    "  release FIP          give FIP back to the pool\n";

// The container's address while it runs, for an attach that takes effect at once.
std::optional<net::FloatingTarget> running_target(const runtime::Container& container) {
  const auto& endpoint = container.state.endpoint;
  if (container.state.status != runtime::ContainerStatus::running || !endpoint) return std::nullopt;
  return net::FloatingTarget{container.id, endpoint->address.substr(0, endpoint->address.find('/')), endpoint->bridge};
}

int fip_ls(const net::FloatingIps& ips, const GlobalOptions& global) {
  auto list = ips.list();
  if (!list.ok()) return report(list.error().message, 1);
  auto store = open_container_store(global);
  std::vector<TableRow> rows = {{"FLOATING IP", "CONTAINER"}};
  for (const auto& ip : *list) {
    std::string shown = ip.container_id.substr(0, 12);
    if (store.ok() && !ip.container_id.empty())
      if (auto container = store->find(ip.container_id); container.ok()) shown = container->name;
    rows.push_back({ip.address, shown});
  }
  print_table(rows);
  return 0;
}

}  // namespace

int cmd_fip(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (args.empty() || args.front() == "--help") {
    std::printf("%s", kUsage);
    return args.empty() ? 125 : 0;
  }
  const std::string& sub = args.front();
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  const auto arity = [&](size_t min, size_t max, const char* what) -> bool {
    if (rest.size() >= min && rest.size() <= max) return true;
    report(std::string("\"hyper fip ") + sub + "\" requires " + what, 125);
    return false;
  };
  if (sub != "allocate" && sub != "ls" && sub != "attach" && sub != "detach" && sub != "release")
    return report("'fip " + sub + "' is not a hyper command.\nSee 'hyper fip --help'", 1);
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto ips = net::FloatingIps::open(*paths);
  if (!ips.ok()) return report(ips.error().message, 125);
  if (sub == "ls") return arity(0, 0, "no arguments") ? fip_ls(*ips, global) : 125;
  if (sub == "allocate") {
    if (!arity(0, 1, "at most 1 argument: [IP]")) return 125;
    auto address = ips->allocate(rest.empty() ? std::nullopt : std::optional<std::string>(rest[0]));
    if (!address.ok()) return report(address.error().message, 1);
    std::printf("%s\n", address->c_str());
    return 0;
  }
  if (sub == "attach") {
    if (!arity(2, 2, "exactly 2 arguments: FIP CONTAINER")) return 125;
    auto store = open_container_store(global);
    if (!store.ok()) return report(store.error().message, 125);
    auto container = store->find(rest[1]);
    if (!container.ok()) return report("Error: " + container.error().message, 1);
    if (container->config.net.none() || container->config.network)
      return report("container " + rest[1] + " is on no network of hyper's: a floating IP needs one", 1);
    auto attached = ips->attach(rest[0], container->id, running_target(*container));
    return attached.ok() ? 0 : report(attached.error().message, 1);
  }
  if (!arity(1, 1, "exactly 1 argument: FIP")) return 125;
  auto done = sub == "detach" ? ips->detach(rest[0]) : ips->release(rest[0]);
  return done.ok() ? 0 : report(done.error().message, 1);
}

}  // namespace hyper::cli
