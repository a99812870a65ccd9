// hyper ps: the containers, newest first, in Docker's columns and wording, so scripts
// (and eyes) used to `docker ps` read it the same way.
#include <time.h>

#include <cmath>
#include <cstdio>
#include <optional>

#include "cli/commands.hpp"
#include "cli/human.hpp"
#include "runtime/api/container_json.hpp"
#include "cli/container_args.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using runtime::Container;
using runtime::ContainerStatus;

constexpr size_t kShortId = 12;
constexpr size_t kCommandWidth = 20;

constexpr const char* kUsage =
    "Usage: hyper ps [OPTIONS]\n\nList containers\n\n"
    "  -a, --all        show all containers (default shows just running)\n"
    "  -q, --quiet      only display container IDs\n"
    "      --no-trunc   don't truncate output\n";

// Docker's ellipsis: at most `width` columns, the last one "…" when something was cut.
std::string ellipsis(const std::string& text, size_t width) {
  if (display_width(text) <= width) return text;
  size_t columns = 0, end = 0;
  for (; end < text.size(); ++end) {
    if (utf8_continuation(text[end])) continue;
    if (columns == width - 1) break;
    ++columns;
  }
  return text.substr(0, end) + "\u2026";
}

// Like Go's strconv.Quote, which Docker uses for the COMMAND column.
std::string quote(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string command_text(const Container& container, bool truncate) {
  std::string command;
  for (const auto* part : {&container.config.entrypoint, &container.config.cmd}) {
    for (const auto& word : *part) command += (command.empty() ? "" : " ") + word;
  }
  return quote(truncate ? ellipsis(command, kCommandWidth) : command);
}


// "0.0.0.0:8080->80/tcp, 0.0.0.0:5353->53/udp" while it runs.
std::string ports_text(const Container& container) {
  std::string text;
  if (container.state.status != ContainerStatus::running || !container.state.endpoint) return text;
  for (const auto& port : container.state.endpoint->ports) text += (text.empty() ? "" : ", ") + runtime::net::port_text(port);
  return text;
}

TableRow row_of(const Container& container, bool truncate) {
  return {truncate ? container.id.substr(0, kShortId) : container.id,
          container.config.image,
          command_text(container, truncate),
          ago(container.created),
          runtime::api::status_text(container),
          ports_text(container),
          container.name};
}

}  // namespace

int cmd_ps(const GlobalOptions& global, const std::vector<std::string>& args) {
  bool all = false, quiet = false, no_trunc = false;
  po::options_description desc;
  desc.add_options()("all,a", po::bool_switch(&all))("quiet,q", po::bool_switch(&quiet))(
      "no-trunc", po::bool_switch(&no_trunc));
  po::variables_map vm;
  auto extra = parse_command_line(args, desc, vm);
  if (!extra.ok()) return report(extra.error().message + "\nSee 'hyper ps --help'.", 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!extra->empty()) return report("\"hyper ps\" accepts no arguments.\nSee 'hyper ps --help'.", 125);
  auto store = open_container_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto containers = store->list();
  if (!containers.ok()) return report(containers.error().message, 1);

  std::vector<TableRow> rows;
  if (!quiet) rows.push_back({"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"});
  for (const auto& container : *containers) {
    if (!all && container.state.status != ContainerStatus::running) continue;
    if (quiet) {
      std::printf("%s\n", no_trunc ? container.id.c_str() : container.id.substr(0, kShortId).c_str());
      continue;
    }
    rows.push_back(row_of(container, !no_trunc));
  }
  print_table(rows);
  return 0;
}

}  // namespace hyper::cli
