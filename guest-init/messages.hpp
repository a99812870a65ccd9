// The agent protocol's requests as the agent reads them (docs/agent-protocol.md). Every
// field is type-checked and bounded here, so the rest of the agent works on plain
// structures and a malformed request becomes one error reply.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "guest-init/container.hpp"
#include "guest-init/process.hpp"
#include "vmm/result.hpp"

namespace hyper::guest {

using Json = nlohmann::json;

// Parses a request payload; the result is always an object with a string "op".
Result<Json> parse_request(std::string_view payload);

Result<ProcessSpec> parse_process_spec(const Json& process);
// An rlimit's name as the protocol spells it ("nofile": RLIMIT_NOFILE) to its resource.
Result<int> rlimit_resource(const std::string& name);
Result<ContainerSpec> parse_container_spec(const Json& start);

struct LayerSpan {
  uint64_t offset = 0;
  uint64_t size = 0;
};
struct BuildSpec {
  std::string source_device;  // the layers, one uncompressed tar after another
  std::vector<LayerSpan> layers;
  std::string target_device;  // an empty ext4 filesystem to apply them onto
};
Result<BuildSpec> parse_build_spec(const Json& build);

// `export_disk`: the stopped container's scratch disk ("writable", a /dev/vdX).
Result<std::string> parse_export_disk_spec(const Json& request);

std::string error_reply(const Error& error, int exit_code = 0);
std::string ok_reply(Json fields = Json::object());

}  // namespace hyper::guest
