#include "runtime/network/floating_ips.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "guest-init/ipv4.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/network/host_link.hpp"
#include "runtime/network/nat_rules.hpp"
#include "runtime/network/nft.hpp"

namespace hyper::runtime::net {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char* kStateFile = "floating_ips.json";
constexpr const char* kLockFile = "floating_ips.lock";
constexpr uint64_t kMaxStateBytes = 4 << 20;

std::string rule_tag(const std::string& address) { return "hyper:fip:" + address; }

Result<Json> read_state(const fs::path& path) {
  auto text = blobs::read_small_file(path, kMaxStateBytes);
  if (!text.ok() && text.error().code == Errc::not_found) return Json::object();
  Json json = Json::parse(HYPER_TRY(std::move(text)), nullptr, false);
  if (!json.is_object()) return make_error(Errc::io, path.string() + " is corrupt; remove it by hand");
  for (auto& [address, entry] : json.items())
    if (!entry.is_object() || !entry.value("container", Json()).is_string())
      return make_error(Errc::io, path.string() + " is corrupt at " + address + "; remove it by hand");
  return json;
}

Status write_state(const fs::path& path, const Json& json) { return blobs::replace_file(path, json.dump(2) + "\n"); }

Status install(const std::string& address, const FloatingTarget& target) {
  Nft nft = HYPER_TRY(Nft::open());
  HYPER_CHECK(ensure_table(nft));
  HYPER_CHECK(delete_rules(nft, rule_tag(address)));
  return add_rules(nft, rule_tag(address), HYPER_TRY(floating_ip_rules(address, target.address, target.bridge)));
}

Status uninstall(const std::string& address) {
  Nft nft = HYPER_TRY(Nft::open());
  return delete_rules(nft, rule_tag(address));
}

// Runs `change` on the state under the lock and writes it back when it succeeded.
template <class F>
Status change_state(const fs::path& dir, F&& change) {
  const FileLock lock = HYPER_TRY(FileLock::acquire(dir / kLockFile));
  Json state = HYPER_TRY(read_state(dir / kStateFile));
  HYPER_CHECK(change(state));
  return write_state(dir / kStateFile, state);
}

// Every address of a /31 or /32 pool is usable; larger pools skip network and broadcast.
std::optional<uint32_t> first_free_address(const Subnet& pool, const std::vector<uint32_t>& taken) {
  if (pool.prefix < 31) return first_free_host(pool, taken);
  for (uint32_t address = pool.base;; ++address) {
    if (std::find(taken.begin(), taken.end(), address) == taken.end()) return address;
    if (address == pool.broadcast()) return std::nullopt;
  }
}

Status require_allocated(const Json& state, const std::string& address) {
  if (state.contains(address)) return {};
  return make_error(Errc::not_found, "floating IP " + address + " is not allocated (see 'hyper fip ls')");
}

}  // namespace

Result<FloatingIpPool> read_floating_pool(const Paths& paths) {
  const std::string how = "configure a pool in " + paths.config().string() +
                          " as {\"floating_ips\": {\"pool\": \"CIDR\", \"interface\": \"UPLINK\"}}";
  auto text = blobs::read_small_file(paths.config(), kMaxStateBytes);
  if (!text.ok() && text.error().code == Errc::not_found) return make_error(Errc::not_found, "no floating IP pool: " + how);
  const Json config = Json::parse(HYPER_TRY(std::move(text)), nullptr, false);
  if (config.is_discarded()) return make_error(Errc::invalid_argument, paths.config().string() + ": not valid JSON");
  const Json* section = config.is_object() && config.contains("floating_ips") ? &config["floating_ips"] : nullptr;
  if (section == nullptr) return make_error(Errc::not_found, "no floating IP pool: " + how);
  if (!section->is_object() || !section->value("pool", Json()).is_string() ||
      !section->value("interface", Json("")).is_string())
    return make_error(Errc::invalid_argument, paths.config().string() + ": bad \"floating_ips\": " + how);
  FloatingIpPool pool;
  // A pool may be as small as one address, unlike a network.
  const auto [address_be, prefix] = HYPER_TRY(guest::parse_ipv4_cidr((*section)["pool"].get<std::string>()));
  pool.pool = Subnet{ntohl(address_be), prefix};
  if ((pool.pool.base & pool.pool.mask()) != pool.pool.base)
    return make_error(Errc::invalid_argument, paths.config().string() + ": the floating IP pool " +
                                                  (*section)["pool"].get<std::string>() + " has host bits set");
  pool.interface = section->value("interface", "");
  return pool;
}

Result<FloatingIps> FloatingIps::open(const Paths& paths) {
  FloatingIpPool pool = HYPER_TRY(read_floating_pool(paths));
  std::error_code ec;
  fs::create_directories(paths.networks(), ec);
  if (ec) return Error::from_errno("create " + paths.networks().string(), ec.value());
  return FloatingIps(paths.networks(), std::move(pool));
}

Result<std::vector<FloatingIp>> FloatingIps::list() const {
  const FileLock lock = HYPER_TRY(FileLock::acquire_shared(state_ / kLockFile));
  const Json state = HYPER_TRY(read_state(state_ / kStateFile));
  std::vector<FloatingIp> out;
  for (const auto& [address, entry] : state.items()) out.push_back(FloatingIp{address, entry["container"].get<std::string>()});
  return out;
}

Result<std::string> FloatingIps::allocate(const std::optional<std::string>& wanted) const {
  std::string chosen;
  const Status allocated = change_state(state_, [&](Json& state) -> Status {
    std::vector<uint32_t> taken;
    for (const auto& [address, entry] : state.items())
      if (auto parsed = parse_address(address); parsed.ok()) taken.push_back(*parsed);
    uint32_t address = 0;
    if (wanted) {
      address = HYPER_TRY(parse_address(*wanted));
      if (!pool_.pool.contains(address))
        return make_error(Errc::invalid_argument, *wanted + " is not in the floating IP pool " + pool_.pool.text());
      if (state.contains(address_text(address))) return make_error(Errc::invalid_argument, *wanted + " is already allocated");
    } else {
      if (const auto free = first_free_address(pool_.pool, taken)) address = *free;
      if (!address) return make_error(Errc::invalid_argument, "the floating IP pool " + pool_.pool.text() + " is exhausted");
    }
    chosen = address_text(address);
    if (!pool_.interface.empty()) HYPER_CHECK(add_host_address(pool_.interface, htonl(address), 32));
    state[chosen] = {{"container", ""}};
    return {};
  });
  if (!allocated.ok()) return allocated.error();
  return chosen;
}

Status FloatingIps::attach(const std::string& address, const std::string& container_id,
                           const std::optional<FloatingTarget>& running) const {
  return change_state(state_, [&](Json& state) -> Status {
    HYPER_CHECK(require_allocated(state, address));
    for (auto& [other, entry] : state.items())
      if (other != address && entry["container"] == container_id)
        return make_error(Errc::invalid_argument, "container " + container_id.substr(0, 12) + " already has floating IP " + other);
    if (running) HYPER_CHECK(install(address, *running));
    else HYPER_CHECK(uninstall(address));
    state[address]["container"] = container_id;
    return {};
  });
}

Status FloatingIps::detach(const std::string& address) const {
  return change_state(state_, [&](Json& state) -> Status {
    HYPER_CHECK(require_allocated(state, address));
    HYPER_CHECK(uninstall(address));
    state[address]["container"] = "";
    return {};
  });
}

Status FloatingIps::release(const std::string& address) const {
  return change_state(state_, [&](Json& state) -> Status {
    HYPER_CHECK(require_allocated(state, address));
    HYPER_CHECK(uninstall(address));
    if (!pool_.interface.empty()) {
      const uint32_t parsed = HYPER_TRY(parse_address(address));
      HYPER_CHECK(remove_host_address(pool_.interface, htonl(parsed), 32));
    }
    state.erase(address);
    return {};
  });
}

Status FloatingIps::container_started(const FloatingTarget& target) const {
  return change_state(state_, [&](Json& state) -> Status {
    for (const auto& [address, entry] : state.items())
      if (entry["container"] == target.container_id) HYPER_CHECK(install(address, target));
    return {};
  });
}

Status FloatingIps::container_stopped(const std::string& container_id) const {
  return change_state(state_, [&](Json& state) -> Status {
    for (const auto& [address, entry] : state.items())
      if (entry["container"] == container_id) HYPER_CHECK(uninstall(address));
    return {};
  });
}

Status FloatingIps::container_removed(const std::string& container_id) const {
  return change_state(state_, [&](Json& state) -> Status {
    for (auto& [address, entry] : state.items())
      if (entry["container"] == container_id) {
        HYPER_CHECK(uninstall(address));
        entry["container"] = "";
      }
    return {};
  });
}

namespace {
template <class F>
Status with_pool(const Paths& paths, F&& f) {
  auto ips = FloatingIps::open(paths);
  if (!ips.ok() && ips.error().code == Errc::not_found) return {};
  return f(HYPER_TRY(std::move(ips)));
}
}  // namespace

Status floating_ips_started(const Paths& paths, const FloatingTarget& target) {
  return with_pool(paths, [&](const FloatingIps& ips) { return ips.container_started(target); });
}
Status floating_ips_stopped(const Paths& paths, const std::string& container_id) {
  return with_pool(paths, [&](const FloatingIps& ips) { return ips.container_stopped(container_id); });
}
Status floating_ips_removed(const Paths& paths, const std::string& container_id) {
  return with_pool(paths, [&](const FloatingIps& ips) { return ips.container_removed(container_id); });
}

}  // namespace hyper::runtime::net
