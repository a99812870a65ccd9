// Images: list, inspect, pull (create) with Docker's JSON progress stream, tag, remove,
// prune.
#include "runtime/api/daemon.hpp"
#include "runtime/api/image_json.hpp"
#include "runtime/container_control.hpp"
#include "runtime/image_pull.hpp"

namespace hyper::runtime::api {
namespace {

Result<ImageStore> images(const Daemon& daemon) { return ImageStore::open(daemon.paths().images()); }

void list(const Daemon& daemon, const Request&, Exchange& exchange) {
  const auto store = images(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  const auto all = store->list();
  if (!all.ok()) return exchange.send_error(all.error());
  Json out = Json::array();
  for (const auto& image : *all) out.push_back(image_summary_json(image));
  exchange.send_json(http::status::ok, out);
}

void inspect(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto store = images(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  const auto image = store->find(request.param("name"));
  if (!image.ok()) return exchange.send_error(http::status::not_found, "No such image: " + request.param("name"));
  const auto json = image_json(*store, *image);
  if (!json.ok()) return exchange.send_error(json.error());
  exchange.send_json(http::status::ok, *json);
}

// Docker's progress messages: {"status": ..., "id": ..., "progressDetail": {...}}.
Json progress_json(const ProgressEvent& event) {
  Json line = {{"status", event.status}};
  if (!event.id.empty()) line["id"] = event.id;
  if (event.total) {
    line["progressDetail"] = {{"current", event.current}, {"total", event.total}};
  } else {
    line["progressDetail"] = Json::object();
  }
  return line;
}

void pull(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto from = request.arg("fromImage");
  if (!from || from->empty())
    return exchange.send_error(http::status::bad_request, "importing images (fromSrc) is not supported; pull with fromImage");
  std::string reference = *from;
  if (const auto tag = request.arg("tag"); tag && !tag->empty())
    reference += (tag->starts_with("sha256:") ? "@" : ":") + *tag;
  auto store = images(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  auto registry = configured_registry_options(daemon.paths(), daemon.config().insecure_registries);
  if (!registry.ok()) return exchange.send_error(registry.error());
  PullOptions options;
  options.registry = *registry;
  if (const auto platform = request.arg("platform"); platform && !platform->empty()) {
    auto parsed = parse_platform(*platform);
    if (!parsed.ok()) return exchange.send_error(parsed.error());
    options.platform = *parsed;
  }
  exchange.begin_stream(http::status::ok, "application/json");
  options.progress = [&](const ProgressEvent& event) { (void)exchange.write_chunk(progress_json(event).dump() + "\r\n"); };
  const auto pulled = pull_image(*store, reference, options);
  if (!pulled.ok()) {
    const Json error = {{"errorDetail", {{"message", pulled.error().message}}}, {"error", pulled.error().message}};
    (void)exchange.write_chunk(error.dump() + "\r\n");
  } else {
    const std::string name = familiar_name(pulled->reference);
    (void)exchange.write_chunk(Json{{"status", "Digest: " + pulled->digest}}.dump() + "\r\n");
    const std::string status = pulled->up_to_date ? "Status: Image is up to date for " + name
                                                  : "Status: Downloaded newer image for " + name;
    (void)exchange.write_chunk(Json{{"status", status}}.dump() + "\r\n");
  }
  exchange.end_stream();
}

void tag(const Daemon& daemon, const Request& request, Exchange& exchange) {
  auto store = images(daemon);
  if (!store.ok()) return exchange.send_error(store.error());
  const auto image = store->find(request.param("name"));
  if (!image.ok()) return exchange.send_error(http::status::not_found, "No such image: " + request.param("name"));
  const auto repo = request.arg("repo");
  if (!repo || repo->empty()) return exchange.send_error(http::status::bad_request, "repository name must have at least one component");
  const std::string tag_name = request.arg("tag").value_or("");
  const auto normalized = normalize_reference(*repo + ":" + (tag_name.empty() ? "latest" : tag_name));
  if (!normalized.ok()) return exchange.send_error(normalized.error());
  if (auto tagged = store->tag(*image, *normalized); !tagged.ok()) return exchange.send_error(tagged.error());
  exchange.send_empty(http::status::created);
}

Json removal_json(const RemovalReport& report) {
  Json out = Json::array();
  for (const auto& tag : report.untagged) out.push_back({{"Untagged", familiar_name(tag)}});
  for (const auto& id : report.deleted) out.push_back({{"Deleted", id}});
  return out;
}

void remove(const Daemon& daemon, const Request& request, Exchange& exchange) {
  auto store = images(daemon);
  const auto containers = daemon.containers();
  if (!store.ok() || !containers.ok()) return exchange.send_error(!store.ok() ? store.error() : containers.error());
  const auto in_use = image_use(*containers);
  if (!in_use.ok()) return exchange.send_error(in_use.error());
  const auto removed = store->remove(request.param("name"), request.flag("force"), *in_use);
  if (!removed.ok()) {
    if (removed.error().code == Errc::not_found) return exchange.send_error(http::status::not_found, "No such image: " + request.param("name"));
    return exchange.send_error(http::status::conflict, removed.error().message);
  }
  exchange.send_json(http::status::ok, removal_json(*removed));
}

void prune(const Daemon& daemon, const Request& request, Exchange& exchange) {
  auto store = images(daemon);
  const auto containers = daemon.containers();
  if (!store.ok() || !containers.ok()) return exchange.send_error(!store.ok() ? store.error() : containers.error());
  const auto in_use = image_use(*containers);
  if (!in_use.ok()) return exchange.send_error(in_use.error());
  // filters={"dangling":["false"]} is `docker image prune -a`.
  const bool all = request.arg("filters").value_or("").find("\"false\"") != std::string::npos;
  const auto removed = store->prune(all, *in_use);
  if (!removed.ok()) return exchange.send_error(removed.error());
  exchange.send_json(http::status::ok, Json{{"ImagesDeleted", removal_json(*removed)}, {"SpaceReclaimed", 0}});
}

}  // namespace

void add_image_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::get, "/images/json", bound(daemon, list));
  router.add(verb::post, "/images/create", bound(daemon, pull));
  router.add(verb::post, "/images/prune", bound(daemon, prune));
  router.add(verb::get, "/images/{name*}/json", bound(daemon, inspect));
  router.add(verb::post, "/images/{name*}/tag", bound(daemon, tag));
  router.add(verb::delete_, "/images/{name*}", bound(daemon, remove));
}

}  // namespace hyper::runtime::api
