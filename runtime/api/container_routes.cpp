// Containers: create, start, stop, kill, restart, remove, list, inspect, resize.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>

#include "runtime/agent_client.hpp"
#include "runtime/api/container_json.hpp"
#include "runtime/api/create_body.hpp"
#include "runtime/api/daemon.hpp"
#include "runtime/container_control.hpp"
#include "runtime/image_store.hpp"
#include "runtime/run_options.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::api {
namespace {

void create(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto body = request.json_body();
  if (!body.ok()) return exchange.send_error(body.error());
  auto flags = create_flags(*body, request.arg("name"));
  if (!flags.ok()) return exchange.send_error(flags.error());
  auto images = ImageStore::open(daemon.paths().images());
  if (!images.ok()) return exchange.send_error(images.error());
  auto image = images->find(flags->image);
  if (!image.ok()) return exchange.send_error(http::status::not_found, "No such image: " + flags->image);
  auto config = container_config(*flags, *image);
  if (!config.ok()) return exchange.send_error(config.error());
  Json warnings = Json::array();
  if (!flags->network && ::geteuid() != 0) {
    config->net.network = "none";
    warnings.push_back("hyperd runs as uid " + std::to_string(::geteuid()) + ", and networks need root: the container runs with --network none");
  }
  auto store = daemon.containers();
  if (!store.ok()) return exchange.send_error(store.error());
  auto container = create_container(daemon.paths(), *store, *config, flags->name);
  if (!container.ok()) {
    if (container.error().message.find("already in use") != std::string::npos)
      return exchange.send_error(http::status::conflict, container.error().message);
    return exchange.send_error(container.error());
  }
  // There before the first start, so an attach made before it reads the log from its first line.
  UniqueFd log(::open((container->dir / "container.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  exchange.send_json(http::status::created, Json{{"Id", container->id}, {"Warnings", warnings}});
}

// The container named in the path, or a 404 already sent.

// Its monitor, which may still be winding the VM down, removes it itself (after its
// watchers saw the exit); what is left once it is gone (a start that failed before any
// VM) goes here.
void remove_after_failed_start(const Daemon& daemon, const Container& container) {
  const auto store = daemon.containers();
  if (!store.ok()) return;
  const auto after = wait_until_exited(*store, container.id, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  if (after.ok()) (void)remove_container(daemon.paths(), *store, container.id, true, true);
}

void start(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  if (container->state.status == ContainerStatus::running) return exchange.send_empty(http::status::not_modified);
  if (auto started = start_container(daemon, *container); !started.ok()) {
    // As dockerd does: an auto-removed container that cannot start goes (its client waits
    // for that before it reports the error).
    if (container->config.auto_remove) remove_after_failed_start(daemon, *container);
    return exchange.send_error(http::status::internal_server_error, started.error().message);
  }
  exchange.send_empty(http::status::no_content);
}

int timeout_seconds(const Request& request) {
  const auto value = request.arg("t");
  if (!value || value->empty()) return 10;
  return std::max(0, std::atoi(value->c_str()));
}

void stop(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  if (container->state.status != ContainerStatus::running) return exchange.send_empty(http::status::not_modified);
  const auto store = daemon.containers();
  if (auto stopped = stop_container(*store, *container, timeout_seconds(request)); !stopped.ok())
    return exchange.send_error(stopped.error());
  exchange.send_empty(http::status::no_content);
}

void restart(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  const auto store = daemon.containers();
  if (auto stopped = stop_container(*store, *container, timeout_seconds(request)); !stopped.ok())
    return exchange.send_error(stopped.error());
  const auto stopped = store->find(container->id);
  if (!stopped.ok()) return exchange.send_error(stopped.error());
  if (auto started = start_container(daemon, *stopped); !started.ok())
    return exchange.send_error(http::status::internal_server_error, started.error().message);
  exchange.send_empty(http::status::no_content);
}

void kill(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  const auto sig = parse_signal(request.arg("signal").value_or("KILL"));
  if (!sig.ok()) return exchange.send_error(sig.error());
  if (container->state.status != ContainerStatus::running)
    return exchange.send_error(http::status::conflict, "Cannot kill container: " + request.param("id") + ": container " +
                                                           container->id + " is not running");
  if (auto sent = signal_container(*container, *sig); !sent.ok()) return exchange.send_error(sent.error());
  exchange.send_empty(http::status::no_content);
}

void remove(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  const bool force = request.flag("force");
  if (container->state.status == ContainerStatus::running && !force)
    return exchange.send_error(http::status::conflict, "You cannot remove a running container " + container->id +
                                                           ". Stop the container before attempting removal or force remove");
  const auto store = daemon.containers();
  if (auto removed = remove_container(daemon.paths(), *store, container->id, force, request.flag("v")); !removed.ok())
    return exchange.send_error(removed.error());
  exchange.send_empty(http::status::no_content);
}

void inspect(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  exchange.send_json(http::status::ok, container_json(*container));
}

// `filters` as Docker encodes it: {"status": ["exited"]} (or {"status": {"exited": true}}).
std::map<std::string, std::vector<std::string>> parse_filters(const std::string& text) {
  std::map<std::string, std::vector<std::string>> out;
  const auto json = Json::parse(text, nullptr, false);
  if (!json.is_object()) return out;
  for (const auto& [key, values] : json.items()) {
    if (values.is_array()) {
      for (const auto& value : values)
        if (value.is_string()) out[key].push_back(value.get<std::string>());
    } else if (values.is_object()) {
      for (const auto& [value, on] : values.items())
        if (on.is_boolean() && on.get<bool>()) out[key].push_back(value);
    }
  }
  return out;
}

bool passes(const Container& container, const std::map<std::string, std::vector<std::string>>& filters) {
  const auto any = [](const std::vector<std::string>& values, auto test) {
    return std::any_of(values.begin(), values.end(), test);
  };
  for (const auto& [key, values] : filters) {
    if (key == "status" && !any(values, [&](const std::string& v) { return v == status_name(container.state.status); }))
      return false;
    if (key == "name" && !any(values, [&](const std::string& v) { return container.name.find(v) != std::string::npos; }))
      return false;
    if (key == "id" && !any(values, [&](const std::string& v) { return container.id.starts_with(v); })) return false;
    if (key == "ancestor" && !any(values, [&](const std::string& v) { return container.config.image == v; })) return false;
  }
  return true;
}

void list(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto store = daemon.containers();
  if (!store.ok()) return exchange.send_error(store.error());
  const auto all = store->list();
  if (!all.ok()) return exchange.send_error(all.error());
  const std::string filters_text = request.arg("filters").value_or("{}");
  if (!Json::parse(filters_text, nullptr, false).is_object())
    return exchange.send_error(http::status::bad_request, "invalid filter: \"filters\" is not a JSON object: " + filters_text);
  const auto filters = parse_filters(filters_text);
  const bool everything = request.flag("all") || filters.contains("status");
  const int limit = std::atoi(request.arg("limit").value_or("-1").c_str());
  Json out = Json::array();
  for (const auto& container : *all) {
    if (!everything && container.state.status != ContainerStatus::running) continue;
    if (!passes(container, filters)) continue;
    if (limit > 0 && out.size() >= static_cast<size_t>(limit)) break;
    out.push_back(container_summary_json(container));
  }
  exchange.send_json(http::status::ok, out);
}

// The main process's terminal size, through the monitor's input socket.
void resize(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  if (container->state.status != ContainerStatus::running)
    return exchange.send_error(http::status::conflict, "Container " + container->id + " is not running");
  const int rows = std::atoi(request.arg("h").value_or("0").c_str()), cols = std::atoi(request.arg("w").value_or("0").c_str());
  if (rows <= 0 || cols <= 0 || rows > 0xffff || cols > 0xffff)
    return exchange.send_error(http::status::bad_request, "h and w must be terminal sizes");
  if (!container->config.tty) return exchange.send_empty(http::status::ok);
  auto input = AgentConnection::dial_input(container->dir);
  if (!input.ok()) return exchange.send_error(input.error());
  if (auto sent = input->send(agent::Kind::resize, Json{{"rows", rows}, {"cols", cols}}.dump()); !sent.ok())
    return exchange.send_error(sent.error());
  exchange.send_empty(http::status::ok);
}

}  // namespace

std::optional<Container> find_container(const Daemon& daemon, const Request& request, Exchange& exchange) {
  auto store = daemon.containers();
  if (!store.ok()) {
    exchange.send_error(store.error());
    return std::nullopt;
  }
  auto container = store->find(request.param("id"));
  if (!container.ok()) {
    exchange.send_error(container.error().code == Errc::not_found
                            ? Error{Errc::not_found, "No such container: " + request.param("id")}
                            : container.error());
    return std::nullopt;
  }
  return std::move(container).value();
}

Status start_container(const Daemon& daemon, const Container& container) {
  const StartOutcome outcome = daemon.launcher().start(container.id);
  // The API has no place for warnings (limits not enforced, no jail): hyperd's log has them.
  for (const auto& warning : outcome.warnings)
    std::fprintf(stderr, "hyperd: container %s: warning: %s\n", container.id.substr(0, 12).c_str(), warning.c_str());
  if (outcome.code == 0) return {};
  return make_error(Errc::io, outcome.error.empty() ? "the container did not start" : outcome.error);
}

void add_container_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::post, "/containers/create", bound(daemon, create));
  router.add(verb::get, "/containers/json", bound(daemon, list));
  router.add(verb::get, "/containers/{id}/json", bound(daemon, inspect));
  router.add(verb::post, "/containers/{id}/start", bound(daemon, start));
  router.add(verb::post, "/containers/{id}/stop", bound(daemon, stop));
  router.add(verb::post, "/containers/{id}/restart", bound(daemon, restart));
  router.add(verb::post, "/containers/{id}/kill", bound(daemon, kill));
  router.add(verb::post, "/containers/{id}/resize", bound(daemon, resize));
  router.add(verb::delete_, "/containers/{id}", bound(daemon, remove));
}

}  // namespace hyper::runtime::api
