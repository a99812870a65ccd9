// hyper inspect: containers as JSON in the shape (and the indentation) of `docker
// inspect`, so tools and scripts that read Docker's fields find them here.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "runtime/api/container_json.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using Json = runtime::api::OrderedJson;

constexpr const char* kUsage =
    "Usage: hyper inspect CONTAINER [CONTAINER...]\n\nReturn low-level information on containers\n";

}  // namespace

int cmd_inspect(const GlobalOptions& global, const std::vector<std::string>& args) {
  po::options_description desc;
  po::variables_map vm;
  auto refs = parse_command_line(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nSee 'hyper inspect --help'.", 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (refs->empty()) return report("\"hyper inspect\" requires at least 1 argument.\nSee 'hyper inspect --help'.", 125);
  auto store = open_container_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  Json out = Json::array();
  int status = 0;
  for (const auto& ref : *refs) {
    auto container = store->find(ref);
    if (container.ok()) {
      out.push_back(runtime::api::container_json(*container));
    } else {
      status = report(container.error().code == Errc::not_found ? "No such object: " + ref : container.error().message, 1);
    }
  }
  // Arguments and environment are bytes; what is not UTF-8 is shown as U+FFFD.
  std::printf("%s\n", out.dump(4, ' ', false, Json::error_handler_t::replace).c_str());
  return status;
}

}  // namespace hyper::cli
