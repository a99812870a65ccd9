#include "runtime/run_options.hpp"

#include <arpa/inet.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/network/network_store.hpp"
#include "virtio/net.hpp"

namespace hyper::runtime {
namespace {

namespace po = boost::program_options;

const std::set<std::string> kValueFlags = {"-e", "--env", "--env-file", "-w", "--workdir", "-u", "--user",
                                           "--entrypoint", "--cpus", "-m", "--memory", "--name", "-h", "--hostname",
                                           "--tap", "--security-opt", "-p", "--publish", "--network", "--net",
                                           "--network-alias", "--net-alias", "--link", "--dns", "--dns-search",
                                           "--add-host", "--mac-address", "-v", "--volume", "--mount", "--tmpfs"};
const std::set<char> kShortValueFlags = {'e', 'w', 'u', 'm', 'h', 'p', 'v'};

// Where the image name is: the first word that is neither a flag nor a flag's value.
Result<size_t> find_image(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") return i + 1 < args.size() ? Result<size_t>(i + 1) : make_error(Errc::invalid_argument, "");
    if (arg.size() < 2 || arg[0] != '-') return i;
    if (arg.rfind("--", 0) == 0) {
      if (arg.find('=') == std::string::npos && kValueFlags.count(arg)) ++i;
      continue;
    }
    // A cluster such as -it or -de: only its last letter may take the next word as value.
    for (size_t c = 1; c < arg.size(); ++c) {
      if (!kShortValueFlags.count(arg[c])) continue;
      if (c + 1 == arg.size()) ++i;
      break;
    }
  }
  return make_error(Errc::invalid_argument, "");
}

bool is_ipv4(const std::string& text) {
  in_addr address{};
  return ::inet_pton(AF_INET, text.c_str(), &address) == 1;
}

std::string trim(const std::string& text) {
  const auto start = text.find_first_not_of(" \t\r");
  if (start == std::string::npos) return "";
  return text.substr(start, text.find_last_not_of(" \t\r") - start + 1);
}

void set_variable(std::vector<std::string>& env, const std::string& entry) {
  const auto eq = entry.find('=');
  std::string assignment = entry;
  const std::string key = entry.substr(0, eq);
  if (eq == std::string::npos) {
    const char* value = std::getenv(key.c_str());
    if (value == nullptr) {
      std::erase_if(env, [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
      return;
    }
    assignment = key + "=" + value;
  }
  for (auto& existing : env) {
    if (existing.substr(0, existing.find('=')) == key) {
      existing = assignment;
      return;
    }
  }
  env.push_back(assignment);
}

}  // namespace

Result<RunFlags> parse_run_flags(const std::vector<std::string>& args) {
  auto image_at = find_image(args);
  if (!image_at.ok()) return make_error(Errc::invalid_argument, "\"hyper run\" requires at least 1 argument: IMAGE [COMMAND] [ARG...]");
  const size_t split = *image_at;
  std::vector<std::string> flags(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(split));
  if (!flags.empty() && flags.back() == "--") flags.pop_back();

  RunFlags out;
  po::options_description desc;
  desc.add_options()
      ("detach,d", po::bool_switch(&out.detach))
      ("interactive,i", po::bool_switch(&out.interactive))
      ("tty,t", po::bool_switch(&out.tty))
      ("rm", po::bool_switch(&out.remove))
      ("template", po::bool_switch(&out.from_template))
      ("name", po::value<std::string>())
      ("env,e", po::value<std::vector<std::string>>(&out.env)->composing())
      ("env-file", po::value<std::vector<std::string>>(&out.env_files)->composing())
      ("workdir,w", po::value<std::string>())
      ("user,u", po::value<std::string>())
      ("entrypoint", po::value<std::string>())
      ("hostname,h", po::value<std::string>())
      ("tap", po::value<std::string>())
      ("cpus", po::value<std::string>(&out.cpus))
      ("memory,m", po::value<std::string>(&out.memory))
      ("security-opt", po::value<std::vector<std::string>>()->composing())
      ("network", po::value<std::string>())
      ("net", po::value<std::string>())
      ("network-alias", po::value<std::vector<std::string>>(&out.network_aliases)->composing())
      ("net-alias", po::value<std::vector<std::string>>(&out.network_aliases)->composing())
      ("publish,p", po::value<std::vector<std::string>>(&out.publish)->composing())
      ("publish-all,P", po::bool_switch(&out.publish_all))
      ("link", po::value<std::vector<std::string>>(&out.links)->composing())
      ("dns", po::value<std::vector<std::string>>(&out.dns)->composing())
      ("dns-search", po::value<std::vector<std::string>>(&out.dns_search)->composing())
      ("add-host", po::value<std::vector<std::string>>(&out.add_hosts)->composing())
      ("mac-address", po::value<std::string>())
      ("volume,v", po::value<std::vector<std::string>>(&out.volumes)->composing())
      ("mount", po::value<std::vector<std::string>>(&out.mounts)->composing())
      ("tmpfs", po::value<std::vector<std::string>>(&out.tmpfs)->composing());
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(flags).options(desc).style(po::command_line_style::default_style &
                                                                  ~po::command_line_style::allow_guessing).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return make_error(Errc::invalid_argument, e.what());
  }
  auto optional = [&](const char* key) -> std::optional<std::string> {
    if (!vm.count(key)) return std::nullopt;
    return vm[key].as<std::string>();
  };
  out.name = optional("name");
  out.workdir = optional("workdir");
  out.user = optional("user");
  // "" clears the image's entrypoint.
  if (auto entrypoint = optional("entrypoint"))
    out.entrypoint = entrypoint->empty() ? std::vector<std::string>{} : std::vector<std::string>{*entrypoint};
  out.hostname = optional("hostname");
  out.tap = optional("tap");
  out.network = optional("network");
  if (!out.network) out.network = optional("net");
  out.mac_address = optional("mac-address");
  out.image = args[split];
  out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(split) + 1, args.end());
  if (out.workdir && (out.workdir->empty() || (*out.workdir)[0] != '/'))
    return make_error(Errc::invalid_argument, "the working directory '" + *out.workdir + "' is invalid, it needs to be an absolute path");
  if (out.hostname && (out.hostname->empty() || out.hostname->size() > 64))
    return make_error(Errc::invalid_argument, "invalid hostname \"" + *out.hostname + "\": 1 to 64 characters");
  if (vm.count("security-opt")) {
    for (const auto& opt : vm["security-opt"].as<std::vector<std::string>>()) {
      if (opt != "seccomp=unconfined")
        return make_error(Errc::invalid_argument, "invalid --security-opt \"" + opt +
                                                      "\": only seccomp=unconfined is supported (it turns off the "
                                                      "VMM's own seccomp filters)");
      out.seccomp = false;
    }
  }
  return out;
}

Result<runtime::TapNetwork> parse_tap(const std::string& spec) {
  const auto bad = [&](const std::string& why) {
    return make_error(Errc::invalid_argument, "invalid --tap \"" + spec + "\": " + why +
                                                  " (want NAME,ip=ADDRESS/PREFIX[,gw=IP][,mac=MAC][,dns=IP])");
  };
  runtime::TapNetwork net;
  std::stringstream parts(spec);
  std::string part;
  for (bool first = true; std::getline(parts, part, ','); first = false) {
    const auto eq = part.find('=');
    const std::string key = part.substr(0, eq), value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (first && eq == std::string::npos) net.tap = part;
    else if (key == "ip") net.address = value;
    else if (key == "gw") net.gateway = value;
    else if (key == "mac") net.mac = value;
    else if (key == "dns") net.dns.push_back(value);
    else return bad("unknown part \"" + part + "\"");
  }
  if (net.tap.empty() || net.tap.size() >= 16) return bad("the tap's name must come first, 1 to 15 characters");
  const auto slash = net.address.find('/');
  if (slash == std::string::npos || !is_ipv4(net.address.substr(0, slash)) ||
      net.address.find_first_not_of("0123456789", slash + 1) != std::string::npos || net.address.size() == slash + 1 ||
      std::stoi(net.address.substr(slash + 1, 3)) > 32)
    return bad("ip= must be an IPv4 address with a prefix length");
  if (!net.gateway.empty() && !is_ipv4(net.gateway)) return bad("gw= must be an IPv4 address");
  for (const auto& server : net.dns)
    if (!is_ipv4(server)) return bad("dns= must be an IPv4 address");
  if (!net.mac.empty() && !virtio::parse_mac(net.mac)) return bad("mac= must be a unicast MAC address");
  return net;
}

Result<uint64_t> parse_memory(const std::string& text) {
  const std::string bad = "invalid memory size \"" + text + "\": use a number with an optional unit b, k, m or g (\"512m\")";
  if (text.empty()) return make_error(Errc::invalid_argument, bad);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == text.c_str() || !(value > 0) || !std::isfinite(value)) return make_error(Errc::invalid_argument, bad);
  const std::string unit = end;
  double bytes = value;
  if (unit == "" || unit == "b" || unit == "B") bytes = value;
  else if (unit == "k" || unit == "K" || unit == "kb" || unit == "KB") bytes = value * 1024;
  else if (unit == "m" || unit == "M" || unit == "mb" || unit == "MB") bytes = value * 1024 * 1024;
  else if (unit == "g" || unit == "G" || unit == "gb" || unit == "GB") bytes = value * 1024 * 1024 * 1024;
  else return make_error(Errc::invalid_argument, bad);
  const double mib = std::ceil(bytes / (1024.0 * 1024.0));
  if (mib < 64) return make_error(Errc::invalid_argument, "memory \"" + text + "\" is too small: a container VM needs at least 64m");
  if (mib > 1024.0 * 1024.0) return make_error(Errc::invalid_argument, "memory \"" + text + "\" is too large (at most 1024g)");
  return static_cast<uint64_t>(mib);
}

Result<uint32_t> parse_cpus(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || errno != 0 || *end != '\0' || !(value > 0) || value > 64)
    return make_error(Errc::invalid_argument, "invalid --cpus \"" + text + "\": a number of CPUs between 0.01 and 64");
  return static_cast<uint32_t>(std::ceil(value));
}

Result<std::vector<std::string>> merge_env(const std::vector<std::string>& image_env,
                                           const std::vector<std::string>& env_files,
                                           const std::vector<std::string>& env_flags) {
  std::vector<std::string> env = image_env;
  for (const auto& file : env_files) {
    std::ifstream in(file);
    if (!in) return make_error(Errc::not_found, "open env file " + file + ": " + std::strerror(errno));
    std::string line;
    while (std::getline(in, line)) {
      line = trim(line);
      if (line.empty() || line[0] == '#') continue;
      if (line[0] == '=') return make_error(Errc::invalid_argument, "invalid environment variable in " + file + ": " + line);
      set_variable(env, line);
    }
  }
  for (const auto& entry : env_flags) {
    if (entry.empty() || entry[0] == '=') return make_error(Errc::invalid_argument, "invalid environment variable: \"" + entry + "\"");
    set_variable(env, entry);
  }
  return env;
}

Result<runtime::net::NetworkConfig> network_config(const RunFlags& flags, const runtime::Image& image) {
  namespace net = runtime::net;
  net::NetworkConfig config;
  if (flags.tap && flags.network)
    return make_error(Errc::invalid_argument, "conflicting options: --tap and --network (a tap is its own network)");
  config.network = flags.tap ? "none" : flags.network.value_or(net::kDefaultNetwork);
  if (config.network == "host")
    return make_error(Errc::invalid_argument, "--network host is not supported: each container is a VM with its own kernel");
  if (config.network.empty()) return make_error(Errc::invalid_argument, "--network needs a network's name or id, or none");
  const bool none = config.none() && !flags.tap;
  if (none && (!flags.publish.empty() || flags.publish_all))
    return make_error(Errc::invalid_argument, "conflicting options: port publishing and --network none");
  if (none && !flags.links.empty()) return make_error(Errc::invalid_argument, "conflicting options: --link and --network none");
  if (!flags.network_aliases.empty() && (config.none() || config.network == net::kDefaultNetwork))
    return make_error(Errc::invalid_argument, "network-scoped aliases are supported only for containers in user-defined networks");
  config.aliases = flags.network_aliases;
  for (const auto& spec : flags.publish) {
    auto mappings = HYPER_TRY(net::parse_publish(spec));
    config.ports.insert(config.ports.end(), mappings.begin(), mappings.end());
  }
  if (flags.publish_all) {
    for (const auto& key : image.config.exposed_ports) {
      const net::PortMapping exposed = HYPER_TRY(net::exposed_port_mapping(key));
      const bool mapped = std::any_of(config.ports.begin(), config.ports.end(), [&](const net::PortMapping& port) {
        return port.container_port == exposed.container_port && port.proto == exposed.proto;
      });
      if (!mapped) config.ports.push_back(exposed);
    }
  }
  for (const auto& spec : flags.links) config.links.push_back(HYPER_TRY(net::parse_link(spec)));
  for (const auto& server : flags.dns) {
    if (!is_ipv4(server)) return make_error(Errc::invalid_argument, "invalid --dns \"" + server + "\": an IPv4 address");
    config.dns.push_back(server);
  }
  for (const auto& domain : flags.dns_search) {
    if (domain.empty() || domain.size() > 253 || domain.find_first_of(" \t\n") != std::string::npos)
      return make_error(Errc::invalid_argument, "invalid --dns-search \"" + domain + "\"");
    config.dns_search.push_back(domain);
  }
  for (const auto& spec : flags.add_hosts) config.extra_hosts.push_back(HYPER_TRY(net::parse_add_host(spec)));
  if (flags.mac_address) {
    if (!virtio::parse_mac(*flags.mac_address))
      return make_error(Errc::invalid_argument, "invalid --mac-address \"" + *flags.mac_address + "\": a unicast MAC address");
    config.mac = *flags.mac_address;
  }
  return config;
}

Result<std::vector<runtime::volume::Mount>> mounts_config(const RunFlags& flags) {
  namespace volume = runtime::volume;
  std::vector<volume::Mount> mounts;
  for (const auto& spec : flags.volumes) mounts.push_back(HYPER_TRY(volume::parse_volume_flag(spec)));
  for (const auto& spec : flags.mounts) mounts.push_back(HYPER_TRY(volume::parse_mount_flag(spec)));
  for (const auto& spec : flags.tmpfs) mounts.push_back(HYPER_TRY(volume::parse_tmpfs_flag(spec)));
  HYPER_CHECK(volume::check_mounts(mounts));
  return mounts;
}

Result<runtime::ContainerConfig> container_config(const RunFlags& flags, const runtime::Image& image) {
  runtime::ContainerConfig config;
  config.image = flags.image;
  config.image_id = image.id;
  if (flags.entrypoint) {
    // Docker: a new entrypoint drops the image's command too.
    config.entrypoint = *flags.entrypoint;
    config.cmd = flags.command;
  } else {
    config.entrypoint = image.config.entrypoint;
    config.cmd = flags.command.empty() ? image.config.cmd : flags.command;
  }
  if (config.entrypoint.empty() && config.cmd.empty())
    return make_error(Errc::invalid_argument, "no command specified");
  config.env = HYPER_TRY(merge_env(image.config.env, flags.env_files, flags.env));
  config.working_dir = flags.workdir.value_or(image.config.working_dir);
  config.user = flags.user.value_or(image.config.user);
  config.hostname = flags.hostname.value_or("");
  config.tty = flags.tty;
  config.open_stdin = flags.interactive;
  config.auto_remove = flags.remove;
  config.cpus = HYPER_TRY(parse_cpus(flags.cpus));
  config.memory_mib = flags.memory.empty() ? 256 : HYPER_TRY(parse_memory(flags.memory));
  config.stop_signal = image.config.stop_signal;
  config.seccomp = flags.seccomp;
  config.from_template = flags.from_template;
  if (flags.tap) config.network = HYPER_TRY(parse_tap(*flags.tap));
  config.net = HYPER_TRY(network_config(flags, image));
  config.mounts = HYPER_TRY(mounts_config(flags));
  return config;
}

}  // namespace hyper::runtime
