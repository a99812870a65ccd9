#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "cli/runtime_cli.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/oci/bundle.hpp"
#include "vmm/file_io.hpp"

namespace hyper::cli::oci {
namespace {

Error bad(const std::string& message) { return make_error(Errc::invalid_argument, message); }

const FlagSpec* find_flag(std::span<const FlagSpec> spec, const std::string& name, char short_name) {
  const auto it = std::find_if(spec.begin(), spec.end(), [&](const FlagSpec& flag) {
    return short_name ? flag.short_name == short_name : name == flag.name;
  });
  return it == spec.end() ? nullptr : &*it;
}

}  // namespace

std::optional<std::string> Flags::last(const std::string& name) const {
  const auto it = values.find(name);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Flags::all(const std::string& name) const {
  const auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

Result<Flags> parse_flags(const std::vector<std::string>& args, std::span<const FlagSpec> spec) {
  Flags out;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;
    const bool is_long = arg[1] == '-';
    const std::string body = arg.substr(is_long ? 2 : 1);
    const auto equals = body.find('=');
    const std::string name = body.substr(0, equals);
    if (!is_long && name.size() != 1) return bad("unknown flag " + arg);
    const FlagSpec* flag = find_flag(spec, name, is_long ? 0 : name[0]);
    if (!flag) return bad("unknown flag " + arg);
    std::string value;
    if (equals != std::string::npos) {
      value = body.substr(equals + 1);
    } else if (flag->takes_value) {
      if (i + 1 == args.size()) return bad("flag --" + std::string(flag->name) + " needs a value");
      value = args[++i];
    } else {
      value = "true";
    }
    if (!flag->takes_value && value != "true" && value != "false") return bad("flag --" + std::string(flag->name) + " takes no value");
    if (!flag->takes_value && value == "false") continue;
    out.values[flag->name].push_back(value);
  }
  out.positional.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  return out;
}

Result<Context> open_container(const Global& global, const std::string& id) {
  HYPER_CHECK(runtime::oci::check_container_id(id));
  auto state = HYPER_TRY(runtime::oci::StateDir::open(global.root));
  auto record = HYPER_TRY(state.load(id));
  auto store = HYPER_TRY(runtime::ContainerStore::open(state.vm_paths().containers()));
  return Context{std::move(state), std::move(store), std::move(record)};
}

std::string status_of(const Context& context) {
  if (context.record.pid == 0) return "creating";
  const auto container = context.store.find(context.record.container_id);
  if (!container.ok()) return "stopped";
  // find() has reconciled a monitor that died: "running" means it runs.
  if (container->state.status == runtime::ContainerStatus::running) return "running";
  if (container->state.status == runtime::ContainerStatus::exited) return "stopped";
  return runtime::process_alive(context.record.pid, context.record.pid_start_ticks) ? "created" : "stopped";
}

Status write_pid_file(const std::string& path, pid_t pid) {
  // Replaced whole: conmon and containerd's shim read it as soon as we exit.
  return runtime::blobs::replace_file(std::filesystem::absolute(path), std::to_string(pid));
}

}  // namespace hyper::cli::oci
