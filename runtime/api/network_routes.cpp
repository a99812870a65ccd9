// Networks and volumes, as `hyper network` and `hyper volume` have them (issues 7 and 8).
#include "runtime/api/daemon.hpp"
#include "runtime/api/resource_json.hpp"
#include "runtime/network/container_network.hpp"
#include "runtime/volume/volume_users.hpp"

namespace hyper::runtime::api {
namespace {

Result<net::NetworkStore> networks(const Daemon& daemon) { return net::NetworkStore::open(daemon.paths().networks()); }
Result<volume::VolumeStore> volumes(const Daemon& daemon) { return volume::VolumeStore::open(daemon.paths().volumes()); }

void network_list(const Daemon& daemon, const Request&, Exchange& exchange) {
  const auto store = networks(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  const auto all = store->list();
  if (!all.ok()) return exchange.send_error(all.error());
  Json out = Json::array();
  for (const auto& network : *all) out.push_back(network_json(*store, network));
  exchange.send_json(http::status::ok, out);
}

void network_inspect(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto store = networks(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  const auto network = store->find(request.param("id"));
  if (!network.ok()) return exchange.send_error(http::status::not_found, "network " + request.param("id") + " not found");
  exchange.send_json(http::status::ok, network_json(*store, *network));
}

void network_create(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto body = request.json_body();
  if (!body.ok()) return exchange.send_error(body.error());
  net::NetworkRequest wanted{body->value("Name", std::string()), std::nullopt, std::nullopt};
  if (wanted.name.empty()) return exchange.send_error(http::status::bad_request, "network name must not be empty");
  const std::string driver = body->value("Driver", std::string("bridge"));
  if (driver != "bridge" && !driver.empty())
    return exchange.send_error(http::status::not_found, "plugin \"" + driver + "\" not found: hyper networks use the bridge driver");
  if (const auto ipam = body->value("IPAM", Json::object()); ipam.contains("Config") && ipam["Config"].is_array() &&
                                                             !ipam["Config"].empty()) {
    const Json& config = ipam["Config"][0];
    if (config.contains("Subnet")) wanted.subnet = config["Subnet"].get<std::string>();
    if (config.contains("Gateway")) wanted.gateway = config["Gateway"].get<std::string>();
  }
  auto store = networks(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  if (store->find(wanted.name).ok())
    return exchange.send_error(http::status::conflict, "network with name " + wanted.name + " already exists");
  const auto network = net::create_network(daemon.paths(), *store, wanted);
  if (!network.ok()) return exchange.send_error(network.error());
  exchange.send_json(http::status::created, Json{{"Id", network->id}, {"Warning", ""}});
}

void network_remove(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto store = networks(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  const auto network = store->find(request.param("id"));
  if (!network.ok()) return exchange.send_error(http::status::not_found, "network " + request.param("id") + " not found");
  if (auto removed = net::remove_network(*store, *network); !removed.ok())
    return exchange.send_error(http::status::conflict, removed.error().message);
  exchange.send_empty(http::status::no_content);
}

Result<std::vector<Container>> all_containers(const Daemon& daemon) {
  const auto store = HYPER_TRY(daemon.containers());
  return store.list();
}

void volume_list(const Daemon& daemon, const Request&, Exchange& exchange) {
  const auto store = volumes(daemon);
  const auto containers = all_containers(daemon);
  if (!store.ok() || !containers.ok()) return exchange.send_error(!store.ok() ? store.error() : containers.error());
  const auto all = store->list();
  if (!all.ok()) return exchange.send_error(all.error());
  Json list = Json::array();
  for (const auto& v : *all) list.push_back(volume_json(*store, v, *containers));
  exchange.send_json(http::status::ok, Json{{"Volumes", list}, {"Warnings", Json::array()}});
}

void volume_inspect(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto store = volumes(daemon);
  const auto containers = all_containers(daemon);
  if (!store.ok() || !containers.ok()) return exchange.send_error(!store.ok() ? store.error() : containers.error());
  const auto v = store->find(request.param("name"));
  if (!v.ok()) return exchange.send_error(http::status::not_found, "get " + request.param("name") + ": no such volume");
  exchange.send_json(http::status::ok, volume_json(*store, *v, *containers));
}

void volume_create(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto body = request.json_body();
  if (!body.ok()) return exchange.send_error(body.error());
  volume::VolumeRequest wanted;
  if (const std::string name = body->value("Name", std::string()); !name.empty()) wanted.name = name;
  wanted.driver = body->value("Driver", std::string(volume::kLocalDriver));
  if (wanted.driver.empty()) wanted.driver = volume::kLocalDriver;
  if (const auto options = body->find("DriverOpts"); options != body->end() && options->is_object())
    for (const auto& [key, value] : options->items()) wanted.options[key] = value.get<std::string>();
  const auto store = volumes(daemon);
  const auto containers = all_containers(daemon);
  if (!store.ok() || !containers.ok()) return exchange.send_error(!store.ok() ? store.error() : containers.error());
  const auto created = store->create(wanted);
  if (!created.ok()) return exchange.send_error(created.error());
  exchange.send_json(http::status::created, volume_json(*store, *created, *containers));
}

void volume_remove(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto store = volumes(daemon);
  const auto containers = daemon.containers();
  if (!store.ok() || !containers.ok()) return exchange.send_error(!store.ok() ? store.error() : containers.error());
  const auto v = store->find(request.param("name"));
  if (!v.ok()) {
    if (request.flag("force")) return exchange.send_empty(http::status::no_content);
    return exchange.send_error(http::status::not_found, "get " + request.param("name") + ": no such volume");
  }
  if (auto removed = volume::remove_volume(*store, *containers, *v); !removed.ok())
    return exchange.send_error(http::status::conflict, removed.error().message);
  exchange.send_empty(http::status::no_content);
}

}  // namespace

void add_network_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::get, "/networks", bound(daemon, network_list));
  router.add(verb::post, "/networks/create", bound(daemon, network_create));
  router.add(verb::get, "/networks/{id}", bound(daemon, network_inspect));
  router.add(verb::delete_, "/networks/{id}", bound(daemon, network_remove));
}

void add_volume_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::get, "/volumes", bound(daemon, volume_list));
  router.add(verb::post, "/volumes/create", bound(daemon, volume_create));
  router.add(verb::get, "/volumes/{name}", bound(daemon, volume_inspect));
  router.add(verb::delete_, "/volumes/{name}", bound(daemon, volume_remove));
}

}  // namespace hyper::runtime::api
