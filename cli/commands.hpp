// The `hyper` subcommands. Each takes the words after its name and returns the process's
// exit status, following Docker's: the container's own status where there is one, 125 for
// the runtime's own errors (bad flags, no such image), 126/127 for a command that cannot
// be executed or is not found, 1 for a failed operation on an existing container.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace hyper::cli {

struct GlobalOptions {
  std::optional<std::string> root;  // --root: the state directory (see runtime/paths.hpp)
  // --insecure-registry HOST[:PORT]: spoken to over plain HTTP (see docs/images.md)
  std::vector<std::string> insecure_registries;
};

using Command = int (*)(const GlobalOptions&, const std::vector<std::string>&);

int cmd_run(const GlobalOptions&, const std::vector<std::string>&);
int cmd_start(const GlobalOptions&, const std::vector<std::string>&);
int cmd_exec(const GlobalOptions&, const std::vector<std::string>&);
int cmd_stop(const GlobalOptions&, const std::vector<std::string>&);
int cmd_kill(const GlobalOptions&, const std::vector<std::string>&);
int cmd_wait(const GlobalOptions&, const std::vector<std::string>&);
int cmd_ps(const GlobalOptions&, const std::vector<std::string>&);
int cmd_logs(const GlobalOptions&, const std::vector<std::string>&);
int cmd_rm(const GlobalOptions&, const std::vector<std::string>&);
int cmd_inspect(const GlobalOptions&, const std::vector<std::string>&);
int cmd_load(const GlobalOptions&, const std::vector<std::string>&);
int cmd_images(const GlobalOptions&, const std::vector<std::string>&);
int cmd_pull(const GlobalOptions&, const std::vector<std::string>&);
int cmd_push(const GlobalOptions&, const std::vector<std::string>&);
int cmd_login(const GlobalOptions&, const std::vector<std::string>&);
int cmd_logout(const GlobalOptions&, const std::vector<std::string>&);
int cmd_tag(const GlobalOptions&, const std::vector<std::string>&);
int cmd_rmi(const GlobalOptions&, const std::vector<std::string>&);
int cmd_image(const GlobalOptions&, const std::vector<std::string>&);  // "image SUBCOMMAND"
int cmd_image_inspect(const GlobalOptions&, const std::vector<std::string>&);
int cmd_image_prune(const GlobalOptions&, const std::vector<std::string>&);
int cmd_save(const GlobalOptions&, const std::vector<std::string>&);
int cmd_import(const GlobalOptions&, const std::vector<std::string>&);
int cmd_commit(const GlobalOptions&, const std::vector<std::string>&);
int cmd_network(const GlobalOptions&, const std::vector<std::string>&);  // "network SUBCOMMAND"
int cmd_port(const GlobalOptions&, const std::vector<std::string>&);
int cmd_fip(const GlobalOptions&, const std::vector<std::string>&);  // "fip SUBCOMMAND"
int cmd_volume(const GlobalOptions&, const std::vector<std::string>&);  // "volume SUBCOMMAND"
int cmd_usage(const GlobalOptions&, const std::vector<std::string>&);

// Whether a command without a trailing command line of its own was asked for --help.
inline bool wants_help(const std::vector<std::string>& args) {
  for (const auto& arg : args)
    if (arg == "--help") return true;
  return false;
}

// "hyper: MESSAGE" on stderr; returns `code`.
int report(const std::string& message, int code);

}  // namespace hyper::cli
