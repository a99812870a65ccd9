#include "runtime/network/network_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <system_error>

#include "runtime/container_store.hpp"
#include "runtime/file_lock.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/json_record.hpp"
#include "runtime/network/nat_rules.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime::net {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char* kLockFile = "lock";
constexpr const char* kNetworkFile = "network.json";
constexpr const char* kEndpointsDir = "endpoints";
constexpr size_t kIdHexDigits = 64;
constexpr size_t kBridgeIdDigits = 9;  // "hyper-" + 9 = 15, the longest interface name

bool is_hex_id(const std::string& text) {
  return text.size() == kIdHexDigits &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Error corrupt(const fs::path& path, const std::string& why) { return corrupt_record(path, why); }

Json network_json(const Network& network) {
  return {{"id", network.id},         {"name", network.name},
          {"driver", network.driver}, {"created", network.created},
          {"bridge", network.bridge}, {"subnet", network.subnet.text()},
          {"gateway", address_text(network.gateway)}};
}

Result<Json> read_json(const fs::path& path) { return read_json_record(path); }

Result<std::string> string_field(const fs::path& path, const Json& json, const char* key) {
  const auto it = json.find(key);
  if (it == json.end() || !it->is_string()) return corrupt(path, std::string("no string \"") + key + "\"");
  return it->get<std::string>();
}

Result<Network> parse_network(const fs::path& path, const Json& json) {
  Network network;
  network.id = HYPER_TRY(string_field(path, json, "id"));
  network.name = HYPER_TRY(string_field(path, json, "name"));
  network.driver = HYPER_TRY(string_field(path, json, "driver"));
  network.created = HYPER_TRY(string_field(path, json, "created"));
  network.bridge = HYPER_TRY(string_field(path, json, "bridge"));
  const std::string subnet_text = HYPER_TRY(string_field(path, json, "subnet"));
  const std::string gateway_text = HYPER_TRY(string_field(path, json, "gateway"));
  auto subnet = parse_subnet(subnet_text);
  auto gateway = parse_address(gateway_text);
  if (!subnet.ok() || !gateway.ok()) return corrupt(path, "a bad subnet or gateway");
  network.subnet = *subnet;
  network.gateway = *gateway;
  network.dir = path.parent_path();
  return network;
}

Json endpoint_json(const Endpoint& endpoint) {
  return {{"container_id", endpoint.container_id}, {"container_name", endpoint.container_name},
          {"aliases", endpoint.aliases},           {"address", address_text(endpoint.address)},
          {"mac", endpoint.mac},                   {"dns", endpoint.dns},
          {"monitor_pid", endpoint.monitor_pid},   {"monitor_start_ticks", endpoint.monitor_start_ticks}};
}

Result<Endpoint> parse_endpoint(const fs::path& path, const Json& json) {
  Endpoint endpoint;
  endpoint.container_id = HYPER_TRY(string_field(path, json, "container_id"));
  endpoint.container_name = HYPER_TRY(string_field(path, json, "container_name"));
  endpoint.mac = HYPER_TRY(string_field(path, json, "mac"));
  const std::string address_field = HYPER_TRY(string_field(path, json, "address"));
  auto address = parse_address(address_field);
  if (!address.ok()) return corrupt(path, "a bad address");
  endpoint.address = *address;
  for (const char* key : {"aliases", "dns"}) {
    const auto it = json.find(key);
    if (it == json.end() || !it->is_array()) return corrupt(path, std::string("no list \"") + key + "\"");
    auto& out = std::string(key) == "aliases" ? endpoint.aliases : endpoint.dns;
    for (const auto& item : *it) {
      if (!item.is_string()) return corrupt(path, std::string("a non-string in \"") + key + "\"");
      out.push_back(item.get<std::string>());
    }
  }
  const auto pid = json.find("monitor_pid");
  const auto ticks = json.find("monitor_start_ticks");
  if (pid == json.end() || !pid->is_number_integer() || ticks == json.end() || !ticks->is_number_unsigned())
    return corrupt(path, "no monitor");
  endpoint.monitor_pid = pid->get<pid_t>();
  endpoint.monitor_start_ticks = ticks->get<uint64_t>();
  return endpoint;
}

bool endpoint_live(const Endpoint& endpoint) { return process_alive(endpoint.monitor_pid, endpoint.monitor_start_ticks); }

// Every lease on file, live or stale.
Result<std::vector<Endpoint>> all_endpoints(const Network& network) {
  std::vector<Endpoint> endpoints;
  std::error_code ec;
  const fs::path dir = network.dir / kEndpointsDir;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (!file.ends_with(".json") || !is_hex_id(file.substr(0, file.size() - 5))) continue;  // temporaries
    auto json = read_json(it->path());
    if (!json.ok() && json.error().code == Errc::not_found) continue;  // released meanwhile
    const Json record = HYPER_TRY(std::move(json));
    endpoints.push_back(HYPER_TRY(parse_endpoint(it->path(), record)));
  }
  if (ec && ec != std::errc::no_such_file_or_directory) return Error::from_errno("list " + dir.string(), ec.value());
  return endpoints;
}

// Docker's automatic pools, narrowed to ranges home and cloud networks rarely use.
std::vector<Subnet> automatic_subnets() {
  std::vector<Subnet> candidates;
  for (uint32_t second = 30; second >= 18; --second) candidates.push_back(Subnet{(172u << 24) | (second << 16), 16});
  for (uint32_t third = 0; third < 256; ++third) candidates.push_back(Subnet{(10u << 24) | (201u << 16) | (third << 8), 24});
  return candidates;
}

Result<Subnet> choose_subnet(const NetworkRequest& request, const std::vector<Network>& existing,
                             const std::vector<Subnet>& host_routes) {
  const auto overlapping = [&](const Subnet& subnet) -> const Network* {
    for (const auto& network : existing)
      if (network.subnet.overlaps(subnet)) return &network;
    return nullptr;
  };
  if (request.subnet) {
    const Subnet subnet = HYPER_TRY(parse_subnet(*request.subnet));
    if (const Network* other = overlapping(subnet))
      return make_error(Errc::invalid_argument, "invalid --subnet " + subnet.text() + ": it overlaps network \"" +
                                                    other->name + "\" (" + other->subnet.text() + ")");
    return subnet;
  }
  for (const Subnet& candidate : automatic_subnets()) {
    const bool routed = std::any_of(host_routes.begin(), host_routes.end(),
                                    [&](const Subnet& route) { return route.overlaps(candidate); });
    if (!routed && overlapping(candidate) == nullptr) return candidate;
  }
  return make_error(Errc::invalid_argument, "no free subnet is left for a new network: give one with --subnet");
}

Result<uint32_t> choose_gateway(const NetworkRequest& request, const Subnet& subnet) {
  if (!request.gateway) return subnet.base + 1;
  const uint32_t gateway = HYPER_TRY(parse_address(*request.gateway));
  if (!subnet.contains(gateway) || gateway == subnet.base || gateway == subnet.broadcast())
    return make_error(Errc::invalid_argument, "invalid --gateway " + *request.gateway + ": not a host address of " + subnet.text());
  return gateway;
}

Status write_network(const Network& network) {
  std::error_code ec;
  fs::create_directories(network.dir / kEndpointsDir, ec);
  if (ec) return Error::from_errno("create " + network.dir.string(), ec.value());
  return blobs::replace_file(network.dir / kNetworkFile, network_json(network).dump(2) + "\n");
}

}  // namespace

Result<NetworkStore> NetworkStore::open(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error::from_errno("create " + dir.string(), ec.value());
  NetworkStore store(dir);
  auto found = store.find(kDefaultNetwork);
  if (found.ok()) return store;
  if (found.error().code != Errc::not_found) return std::move(found).error();
  const FileLock lock = HYPER_TRY(FileLock::acquire(dir / kLockFile));
  if (store.find(kDefaultNetwork).ok()) return store;  // made meanwhile
  Network network;
  network.id = HYPER_TRY(blobs::random_hex(32));
  network.name = kDefaultNetwork;
  network.created = now_rfc3339();
  network.bridge = kDefaultBridge;
  network.subnet = HYPER_TRY(parse_subnet(kDefaultSubnet));
  network.gateway = network.subnet.base + 1;
  network.dir = dir / network.id;
  HYPER_CHECK(write_network(network));
  return store;
}

Result<std::vector<std::string>> NetworkStore::ids() const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_hex_id(name) && ::access((it->path() / kNetworkFile).c_str(), F_OK) == 0) ids.push_back(name);
  }
  if (ec) return Error::from_errno("list " + dir_.string(), ec.value());
  return ids;
}

Result<Network> NetworkStore::load(const std::string& id) const {
  const fs::path path = dir_ / id / kNetworkFile;
  const Json record = HYPER_TRY(read_json(path));
  return parse_network(path, record);
}

Result<std::vector<Network>> NetworkStore::list() const {
  std::vector<Network> networks;
  for (const auto& id : HYPER_TRY(ids())) {
    auto network = load(id);
    if (!network.ok() && network.error().code == Errc::not_found) continue;  // removed meanwhile
    networks.push_back(HYPER_TRY(std::move(network)));
  }
  std::sort(networks.begin(), networks.end(), [](const Network& a, const Network& b) {
    if (a.is_default() != b.is_default()) return a.is_default();
    return a.name < b.name;
  });
  return networks;
}

Result<Network> NetworkStore::find(const std::string& reference) const {
  const std::vector<Network> networks = HYPER_TRY(list());
  std::vector<const Network*> by_prefix;
  for (const auto& network : networks) {
    if (network.name == reference || network.id == reference) return network;
    if (!reference.empty() && network.id.rfind(reference, 0) == 0) by_prefix.push_back(&network);
  }
  if (by_prefix.size() == 1) return *by_prefix.front();
  if (by_prefix.size() > 1)
    return make_error(Errc::invalid_argument, "network " + reference + " is ambiguous (" + std::to_string(by_prefix.size()) +
                                                  " matches found based on ID prefix)");
  return make_error(Errc::not_found, "network " + reference + " not found");
}

Result<Network> NetworkStore::create(const NetworkRequest& request, const std::vector<Subnet>& host_routes) {
  if (request.name == "host" || request.name == "none" || request.name == kDefaultNetwork)
    return make_error(Errc::invalid_argument, "network name \"" + request.name + "\" is reserved (" + kDefaultNetwork +
                                                  ", host and none are predefined)");
  // One-letter names too: Docker allows them for networks.
  if (!valid_name(request.name) && !(request.name.size() == 1 && valid_name(request.name + "0")))
    return make_error(Errc::invalid_argument, "invalid network name \"" + request.name +
                                                  "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  const FileLock lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
  const std::vector<Network> existing = HYPER_TRY(list());
  for (const auto& network : existing)
    if (network.name == request.name)
      return make_error(Errc::invalid_argument, "network with name " + request.name + " already exists");
  Network network;
  network.subnet = HYPER_TRY(choose_subnet(request, existing, host_routes));
  network.gateway = HYPER_TRY(choose_gateway(request, network.subnet));
  network.id = HYPER_TRY(blobs::random_hex(32));
  network.name = request.name;
  network.created = now_rfc3339();
  network.bridge = std::string(kBridgePrefix) + "-" + network.id.substr(0, kBridgeIdDigits);
  network.dir = dir_ / network.id;
  if (Status written = write_network(network); !written.ok()) {
    std::error_code ec;
    fs::remove_all(network.dir, ec);
    return std::move(written).error();
  }
  return network;
}

Status NetworkStore::remove(const Network& network) const {
  if (network.is_default())
    return make_error(Errc::invalid_argument, std::string(kDefaultNetwork) + " is a pre-defined network and cannot be removed");
  const FileLock lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
  const std::vector<Endpoint> live = HYPER_TRY(endpoints(network));
  if (!live.empty())
    return make_error(Errc::invalid_argument, "error while removing network: network " + network.name + " id " + network.id +
                                                  " has active endpoints (" + live.front().container_name + ")");
  // Renamed away first, so that a crash half-way leaves no half-removed network listed.
  const fs::path doomed = dir_ / (".removing-" + network.id);
  if (::rename(network.dir.c_str(), doomed.c_str()) != 0) return Error::from_errno("remove " + network.dir.string());
  std::error_code ec;
  fs::remove_all(doomed, ec);
  return {};
}

Result<std::vector<Endpoint>> NetworkStore::endpoints(const Network& network) const {
  std::vector<Endpoint> endpoints = HYPER_TRY(all_endpoints(network));
  std::erase_if(endpoints, [](const Endpoint& endpoint) { return !endpoint_live(endpoint); });
  return endpoints;
}

Result<Endpoint> NetworkStore::attach(const Network& network, Endpoint endpoint) const {
  if (!is_hex_id(endpoint.container_id))
    return make_error(Errc::invalid_argument, "not a container id: " + endpoint.container_id);
  const FileLock lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
  std::vector<uint32_t> taken = {network.gateway};
  for (const auto& other : HYPER_TRY(all_endpoints(network)))
    if (other.container_id != endpoint.container_id && endpoint_live(other)) taken.push_back(other.address);
  const auto address = first_free_host(network.subnet, taken);
  if (!address) return make_error(Errc::invalid_argument, "no address is left in network " + network.name + " (" + network.subnet.text() + ")");
  endpoint.address = *address;
  const fs::path path = network.dir / kEndpointsDir / (endpoint.container_id + ".json");
  HYPER_CHECK(blobs::replace_file(path, endpoint_json(endpoint).dump(2) + "\n"));
  return endpoint;
}

Status NetworkStore::detach_everywhere(const std::string& container_id) const {
  if (!is_hex_id(container_id)) return make_error(Errc::invalid_argument, "not a container id: " + container_id);
  const FileLock lock = HYPER_TRY(FileLock::acquire(dir_ / kLockFile));
  for (const auto& id : HYPER_TRY(ids())) {
    const fs::path path = dir_ / id / kEndpointsDir / (container_id + ".json");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::from_errno("remove " + path.string());
  }
  return {};
}

std::vector<Subnet> host_routes() {
  auto text = read_text_file("/proc/net/route");
  return text.ok() ? parse_proc_net_route(*text) : std::vector<Subnet>{};
}

}  // namespace hyper::runtime::net
