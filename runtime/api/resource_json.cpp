#include "runtime/api/resource_json.hpp"

#include "runtime/volume/volume_users.hpp"

namespace hyper::runtime::api {

OrderedJson network_json(const net::NetworkStore& store, const net::Network& network) {
  OrderedJson containers = OrderedJson::object();
  if (auto endpoints = store.endpoints(network); endpoints.ok())
    for (const auto& endpoint : *endpoints)
      containers[endpoint.container_id] = {
          {"Name", endpoint.container_name},
          {"MacAddress", endpoint.mac},
          {"IPv4Address", net::address_text(endpoint.address) + "/" + std::to_string(network.subnet.prefix)},
          {"Aliases", endpoint.aliases}};
  return {{"Name", network.name},
          {"Id", network.id},
          {"Created", network.created},
          {"Scope", "local"},
          {"Driver", network.driver},
          {"EnableIPv6", false},
          {"IPAM",
           {{"Driver", "default"},
            {"Config", OrderedJson::array({{{"Subnet", network.subnet.text()}, {"Gateway", net::address_text(network.gateway)}}})}}},
          {"Internal", false},
          {"Containers", containers},
          {"Options", {{"com.docker.network.bridge.name", network.bridge}}}};
}

OrderedJson volume_json(const volume::VolumeStore& volumes, const volume::Volume& v, const std::vector<Container>& all) {
  OrderedJson users = OrderedJson::array();
  for (const auto& container : volume::containers_using(all, v.name)) users.push_back(container.id);
  OrderedJson snapshots = OrderedJson::array();
  if (auto list = volumes.snapshots(v); list.ok())
    for (const auto& s : *list) snapshots.push_back({{"Name", s.name}, {"CreatedAt", s.created}, {"Method", s.method}});
  OrderedJson options = OrderedJson::object();
  if (v.driver == volume::kNbdDriver) options["uri"] = v.uri;
  else options["size"] = std::to_string(v.size_bytes);
  return {{"CreatedAt", v.created},
          {"Driver", v.driver},
          {"Labels", OrderedJson::object()},
          {"Mountpoint", v.device()},
          {"Name", v.name},
          {"Options", options},
          {"Scope", "local"},
          {"Status", {{"SizeBytes", v.size_bytes}, {"Anonymous", v.anonymous}, {"UsedBy", users}, {"Snapshots", snapshots}}}};
}

}  // namespace hyper::runtime::api
