#include "runtime/network/container_network.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "runtime/image_store.hpp"
#include "runtime/network/dns_message.hpp"
#include "runtime/network/dns_server.hpp"
#include "runtime/network/floating_ips.hpp"
#include "runtime/network/host_link.hpp"
#include "runtime/network/nat_rules.hpp"
#include "runtime/network/nft.hpp"
#include "virtio/net.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime::net {
namespace {

using Json = nlohmann::json;

constexpr const char* kHostLock = "host.lock";
constexpr uint16_t kDnsPort = 53;
constexpr size_t kTapIdDigits = 12;  // "hyt" + 12 = 15, the longest interface name

std::string tap_name(const std::string& container_id) { return "hyt" + container_id.substr(0, kTapIdDigits); }

// Docker's scheme: 02:42 then the IPv4 address, so a MAC names its container's address.
std::string mac_for(uint32_t address) {
  const virtio::MacAddress mac = {0x02, 0x42, static_cast<uint8_t>(address >> 24), static_cast<uint8_t>(address >> 16),
                                  static_cast<uint8_t>(address >> 8), static_cast<uint8_t>(address)};
  return virtio::format_mac(mac);
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// ALIAS -> the prefix of its link variables: "db-1" -> "DB_1".
std::string link_prefix(const std::string& alias) {
  std::string out;
  for (unsigned char c : alias) out += std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
  return out;
}

sockaddr_in inet_address(uint32_t address, uint16_t port) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  out.sin_addr.s_addr = htonl(address);
  out.sin_port = htons(port);
  return out;
}

// A bound socket that is never read: it keeps the host port from any other binder (our
// other containers included) while the DNAT rules carry the traffic past it.
Result<UniqueFd> reserve_port(PortMapping& port) {
  const uint32_t host = port.host_ip.empty() ? INADDR_ANY : HYPER_TRY(parse_address(port.host_ip));
  UniqueFd fd(::socket(AF_INET, (port.proto == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("socket");
  sockaddr_in address = inet_address(host, port.host_port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const std::string where = (port.host_ip.empty() ? "0.0.0.0" : port.host_ip) + ":" + std::to_string(port.host_port);
    if (errno == EADDRINUSE)
      return make_error(Errc::invalid_argument, "Bind for " + where + "/" + port.proto + " failed: port is already allocated");
    return Error::from_errno("bind " + where);
  }
  socklen_t length = sizeof address;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) return Error::from_errno("getsockname");
  port.host_port = ntohs(address.sin_port);
  return fd;
}

std::vector<PublishedPort> published(const std::vector<PortMapping>& ports) {
  std::vector<PublishedPort> out;
  for (const auto& port : ports) out.push_back(PublishedPort{port.host_ip, port.host_port, port.container_port, port.proto});
  return out;
}

std::vector<uint32_t> host_nameservers() {
  auto text = read_text_file("/etc/resolv.conf");
  return text.ok() ? resolv_conf_nameservers(*text) : std::vector<uint32_t>{};
}

// Where a lookup that is not for one of the network's names goes: the asking container's
// --dns servers, else the host's own. Never back to a resolver of ours (a loop).
std::vector<sockaddr_in> upstreams_for(const std::vector<Endpoint>& endpoints, uint32_t client, const Network& network,
                                       const std::vector<uint32_t>& host_servers) {
  std::vector<uint32_t> servers;
  for (const auto& endpoint : endpoints)
    if (endpoint.address == client)
      for (const auto& text : endpoint.dns)
        if (auto server = parse_address(text); server.ok()) servers.push_back(*server);
  if (servers.empty())
    for (uint32_t be : host_servers) servers.push_back(ntohl(be));
  std::vector<sockaddr_in> out;
  for (uint32_t server : servers)
    if (server != network.gateway) out.push_back(inet_address(server, kDnsPort));
  return out;
}

DnsAnswer resolve(const NetworkStore& store, const Network& network, const std::vector<uint32_t>& host_servers,
                  uint32_t client_be, const std::string& name) {
  auto endpoints = store.endpoints(network);
  const std::vector<Endpoint> live = endpoints.ok() ? std::move(endpoints).value() : std::vector<Endpoint>{};
  // Docker's rule: containers find each other by name on user-defined networks only.
  if (!network.is_default()) {
    std::string wanted = name;
    const std::string suffix = "." + lower(network.name);
    if (wanted.size() > suffix.size() && wanted.ends_with(suffix)) wanted.resize(wanted.size() - suffix.size());
    DnsAnswer ours{DnsAnswer::Kind::addresses, {}, {}};
    for (const auto& endpoint : live) {
      bool match = lower(endpoint.container_name) == wanted || endpoint.container_id.substr(0, 12) == wanted;
      for (const auto& alias : endpoint.aliases) match = match || lower(alias) == wanted;
      if (match) ours.ipv4s_be.push_back(htonl(endpoint.address));
    }
    if (!ours.ipv4s_be.empty()) return ours;
  }
  return DnsAnswer{DnsAnswer::Kind::forward, {}, upstreams_for(live, ntohl(client_be), network, host_servers)};
}

}  // namespace

std::string container_rule_tag(const std::string& container_id) { return "hyper:ctr:" + container_id; }

Status ensure_network_on_host(const Paths& paths, const Network& network) {
  // One process at a time checks and adds the rules, so they are never added twice.
  const FileLock lock = HYPER_TRY(FileLock::acquire(paths.networks() / kHostLock));
  HYPER_CHECK(ensure_bridge(BridgeSpec{network.bridge, htonl(network.gateway), network.subnet.prefix}));
  Nft nft = HYPER_TRY(Nft::open());
  HYPER_CHECK(ensure_table(nft));
  if (!HYPER_TRY(rule_tags(nft, network.rule_tag())).empty()) return {};
  return add_rules(nft, network.rule_tag(), HYPER_TRY(network_rules(network.bridge, network.subnet.text())));
}

Status remove_network_from_host(const Network& network) {
  Nft nft = HYPER_TRY(Nft::open());
  HYPER_CHECK(delete_rules(nft, network.rule_tag()));
  return delete_link(network.bridge);
}

Status release_container_network(const Paths& paths, const std::string& container_id, bool removed) {
  Status status;
  auto keep_first = [&](Status next) {
    if (status.ok() && !next.ok()) status = std::move(next);
  };
  if (auto store = NetworkStore::open(paths.networks()); store.ok()) keep_first(store->detach_everywhere(container_id));
  else keep_first(std::move(store).error());
  // Without nftables there can be no rules of ours to remove.
  if (auto nft = Nft::open(); nft.ok()) keep_first(delete_rules(*nft, container_rule_tag(container_id)));
  keep_first(removed ? floating_ips_removed(paths, container_id) : floating_ips_stopped(paths, container_id));
  return status;
}

Json guest_network_without_interface(const NetworkConfig& config) {
  return {{"interfaces", Json::array()}, {"dns", config.dns}, {"dns_search", config.dns_search}, {"hosts", config.extra_hosts}};
}

ContainerNetwork::ContainerNetwork(Paths paths, const Container& container)
    : paths_(std::move(paths)), container_(container) {}

Result<std::unique_ptr<ContainerNetwork>> ContainerNetwork::attach(const Paths& paths, const ContainerStore& containers,
                                                                   const Container& container) {
  std::unique_ptr<ContainerNetwork> network(new ContainerNetwork(paths, container));
  HYPER_CHECK(network->set_up(containers));
  return network;
}

Status ContainerNetwork::set_up(const ContainerStore& containers) {
  const NetworkConfig& config = container_.config.net;
  const NetworkStore store = HYPER_TRY(NetworkStore::open(paths_.networks()));
  network_ = HYPER_TRY(store.find(config.network));
  HYPER_CHECK(ensure_network_on_host(paths_, network_));
  // What a killed monitor of an earlier run left.
  HYPER_CHECK(release_container_network(paths_, container_.id, false));

  Endpoint wanted;
  wanted.container_id = container_.id;
  wanted.container_name = container_.name;
  wanted.aliases = config.aliases;
  wanted.dns = config.dns;
  wanted.monitor_pid = ::getpid();
  wanted.monitor_start_ticks = HYPER_TRY(process_start_ticks(::getpid()));
  endpoint_ = HYPER_TRY(store.attach(network_, wanted));
  leased_ = true;

  state_.network_id = network_.id;
  state_.network_name = network_.name;
  state_.address = address_text(endpoint_.address) + "/" + std::to_string(network_.subnet.prefix);
  state_.gateway = address_text(network_.gateway);
  state_.mac = config.mac.empty() ? mac_for(endpoint_.address) : config.mac;
  state_.tap = tap_name(container_.id);
  state_.bridge = network_.bridge;
  tap_ = HYPER_TRY(create_bridged_tap(state_.tap, network_.bridge));
  HYPER_CHECK(reserve_ports());
  HYPER_CHECK(resolve_links(containers));
  HYPER_CHECK(floating_ips_started(paths_, FloatingTarget{container_.id, address_text(endpoint_.address), network_.bridge}));
  floating_started_ = true;
  return {};
}

Status ContainerNetwork::reserve_ports() {
  for (PortMapping port : container_.config.net.ports) {
    reservations_.push_back(HYPER_TRY(reserve_port(port)));
    state_.ports.push_back(port);
  }
  if (state_.ports.empty()) return {};
  const auto rules = HYPER_TRY(port_rules(address_text(endpoint_.address), published(state_.ports)));
  Nft nft = HYPER_TRY(Nft::open());
  ports_forwarded_ = true;
  return add_rules(nft, container_rule_tag(container_.id), rules);
}

Status ContainerNetwork::resolve_links(const ContainerStore& containers) {
  auto images = ImageStore::open(paths_.images());
  for (const auto& link : container_.config.net.links) {
    const std::string what = "/" + link.name + " AS /" + container_.name + "/" + link.alias;
    auto found = containers.find(link.name);
    if (!found.ok()) return make_error(Errc::not_found, "Could not get container for " + link.name + " (link " + what + ")");
    const Container& target = *found;
    if (target.state.status != ContainerStatus::running || !target.state.endpoint)
      return make_error(Errc::invalid_argument, "Cannot link to a non running container: " + what);
    const std::string ip = target.state.endpoint->address.substr(0, target.state.endpoint->address.find('/'));
    hosts_.push_back(ip + " " + link.alias + " " + target.id.substr(0, 12) + " " + target.name);

    const std::string prefix = link_prefix(link.alias);
    link_env_.push_back(prefix + "_NAME=/" + container_.name + "/" + link.alias);
    std::set<std::pair<uint16_t, std::string>> ports;
    if (images.ok())
      if (auto image = images->find(target.config.image_id); image.ok())
        for (const auto& key : image->config.exposed_ports)
          if (auto mapping = exposed_port_mapping(key); mapping.ok()) ports.emplace(mapping->container_port, mapping->proto);
    for (const auto& port : target.config.net.ports) ports.emplace(port.container_port, port.proto);
    bool lowest = true;
    for (const auto& [number, proto] : ports) {
      const std::string var = prefix + "_PORT_" + std::to_string(number) + "_" + link_prefix(proto);
      const std::string url = proto + "://" + ip + ":" + std::to_string(number);
      if (std::exchange(lowest, false)) link_env_.push_back(prefix + "_PORT=" + url);
      link_env_.push_back(var + "=" + url);
      link_env_.push_back(var + "_ADDR=" + ip);
      link_env_.push_back(var + "_PORT=" + std::to_string(number));
      link_env_.push_back(var + "_PROTO=" + proto);
    }
    for (const auto& entry : target.config.env) {
      const std::string key = entry.substr(0, entry.find('='));
      if (key != "PATH" && key != "HOME" && key != "HOSTNAME") link_env_.push_back(prefix + "_ENV_" + entry);
    }
  }
  return {};
}

Json ContainerNetwork::guest_network() const {
  // The MAC too: a VM restored from a template has the template's until told.
  Json interface = {{"name", "eth0"}, {"address", state_.address}, {"gateway", state_.gateway}, {"mac", state_.mac}};
  std::vector<std::string> hosts = hosts_;
  hosts.insert(hosts.end(), container_.config.net.extra_hosts.begin(), container_.config.net.extra_hosts.end());
  return {{"interfaces", Json::array({interface})},
          {"dns", Json::array({state_.gateway})},
          {"dns_search", container_.config.net.dns_search},
          {"hosts", hosts}};
}

Status ContainerNetwork::start_resolver() {
  const NetworkStore store = HYPER_TRY(NetworkStore::open(paths_.networks()));
  const std::vector<uint32_t> host_servers = host_nameservers();
  auto answer = [store, network = network_, host_servers](uint32_t client_be, const std::string& name, uint16_t) {
    return resolve(store, network, host_servers, client_be, name);
  };
  dns_ = HYPER_TRY(DnsServer::start(inet_address(network_.gateway, kDnsPort), true, std::move(answer)));
  return {};
}

ContainerNetwork::~ContainerNetwork() {
  dns_.reset();
  if (floating_started_) (void)floating_ips_stopped(paths_, container_.id);
  if (ports_forwarded_)
    if (auto nft = Nft::open(); nft.ok()) (void)delete_rules(*nft, container_rule_tag(container_.id));
  reservations_.clear();
  tap_.reset();
  if (leased_)
    if (auto store = NetworkStore::open(paths_.networks()); store.ok()) (void)store->detach_everywhere(container_.id);
}

Result<Network> create_network(const Paths& paths, NetworkStore& store, const NetworkRequest& request) {
  auto network = HYPER_TRY(store.create(request, host_routes()));
  if (::geteuid() != 0) return network;
  if (auto host = ensure_network_on_host(paths, network); !host.ok()) {
    (void)remove_network_from_host(network);
    (void)store.remove(network);
    return make_error(host.error().code, "network " + network.name + ": " + host.error().message);
  }
  return network;
}

Status remove_network(const NetworkStore& store, const Network& network) {
  HYPER_CHECK(store.remove(network));
  if (::geteuid() != 0) return {};
  return remove_network_from_host(network);
}

}  // namespace hyper::runtime::net
