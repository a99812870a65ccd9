// hyper port CONTAINER [PORT[/PROTO]]: the host ports a running container's ports are
// published on, in `docker port`'s words.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"

namespace hyper::cli {

int cmd_port(const GlobalOptions& global, const std::vector<std::string>& args) {
  namespace po = boost::program_options;
  po::options_description desc;
  po::variables_map vm;
  auto words = parse_command_line(args, desc, vm);
  if (!words.ok()) return report(words.error().message + "\nSee 'hyper port --help'.", 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper port CONTAINER [PRIVATE_PORT[/PROTO]]\n\nList port mappings or a specific mapping for the container\n");
    return 0;
  }
  if (words->empty() || words->size() > 2)
    return report("\"hyper port\" requires 1 or 2 arguments: CONTAINER [PRIVATE_PORT[/PROTO]]", 125);
  auto store = open_container_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto container = store->find(words->front());
  if (!container.ok()) return report("Error: " + container.error().message, 1);
  std::vector<runtime::net::PortMapping> ports;
  if (container->state.status == runtime::ContainerStatus::running && container->state.endpoint)
    ports = container->state.endpoint->ports;
  std::optional<runtime::net::PortMapping> wanted;
  if (words->size() == 2) {
    auto parsed = runtime::net::exposed_port_mapping((*words)[1]);
    if (!parsed.ok()) return report(parsed.error().message, 125);
    wanted = *parsed;
  }
  bool found = false;
  for (const auto& port : ports) {
    const std::string host = (port.host_ip.empty() ? "0.0.0.0" : port.host_ip) + ":" + std::to_string(port.host_port);
    if (!wanted) {
      std::printf("%u/%s -> %s\n", port.container_port, port.proto.c_str(), host.c_str());
    } else if (port.container_port == wanted->container_port && port.proto == wanted->proto) {
      std::printf("%s\n", host.c_str());
      found = true;
    }
  }
  if (wanted && !found)
    return report("Error: No public port '" + std::to_string(wanted->container_port) + "/" + wanted->proto +
                      "' published for " + container->name, 1);
  return 0;
}

}  // namespace hyper::cli
