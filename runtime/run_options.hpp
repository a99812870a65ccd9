// `hyper run`'s flags turned into a container's configuration: Docker's rules for how the
// image's entrypoint, command, environment, user and working directory combine with the
// flags. The CLI parses a command line into RunFlags; hyperd fills them from the Engine
// API's container-create body, so both get the same checks. Pure functions, so the unit
// tests cover them without a VM.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/container_store.hpp"
#include "runtime/image_store.hpp"
#include "vmm/result.hpp"

namespace hyper::runtime {

struct RunFlags {
  bool detach = false, interactive = false, tty = false, remove = false;
  std::optional<std::string> name;
  std::vector<std::string> env, env_files;
  std::optional<std::string> workdir, user, hostname;
  std::optional<std::vector<std::string>> entrypoint;  // empty: none, not the image's
  std::optional<std::string> tap;
  std::optional<std::string> network, mac_address;
  std::vector<std::string> network_aliases, publish, links, dns, dns_search, add_hosts;
  std::vector<std::string> volumes, mounts, tmpfs;  // -v, --mount, --tmpfs
  bool publish_all = false;
  std::string cpus = "1";
  std::string memory;
  bool seccomp = true;  // --security-opt seccomp=unconfined turns the VMM's filters off
  bool from_template = false;  // --template
  std::string image;
  std::vector<std::string> command;
};

// Splits `hyper run` arguments at the image: flags before it, the command after it.
Result<RunFlags> parse_run_flags(const std::vector<std::string>& args);

// --tap NAME,ip=CIDR[,gw=IP][,mac=M][,dns=IP]...: the container's eth0 on a tap.
Result<TapNetwork> parse_tap(const std::string& spec);

// "512m", "1g", "268435456" -> MiB; at least 64 MiB (a VM needs room for its kernel).
Result<uint64_t> parse_memory(const std::string& text);
// "1", "2", "1.5" (rounded up) -> vCPUs, 1..64.
Result<uint32_t> parse_cpus(const std::string& text);

// Applies -e/--env-file over the image's environment, as Docker does: later wins, "KEY"
// alone copies the variable from our environment (or drops it when unset).
Result<std::vector<std::string>> merge_env(const std::vector<std::string>& image_env,
                                           const std::vector<std::string>& env_files,
                                           const std::vector<std::string>& env_flags);

// --network, -p, -P, --link, --dns, --dns-search, --add-host, --network-alias, --mac-address.
Result<net::NetworkConfig> network_config(const RunFlags& flags, const Image& image);

// -v, --mount, --tmpfs, checked (the host paths and volumes are looked at by `run`).
Result<std::vector<volume::Mount>> mounts_config(const RunFlags& flags);

Result<ContainerConfig> container_config(const RunFlags& flags, const Image& image);

}  // namespace hyper::runtime
