// What the commands share: their flag parsing and the way to the container and image stores.
#pragma once

#include <boost/program_options.hpp>

#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "runtime/container_store.hpp"
#include "runtime/image_store.hpp"
#include "runtime/paths.hpp"
#include "vmm/result.hpp"

namespace hyper::cli {

// Parses `args` against `desc` (plus --help); the words that are not flags are returned.
// Docker never abbreviates flags, so guessing is off: `--no` must not mean `--no-trunc`.
inline Result<std::vector<std::string>> parse_command_line(const std::vector<std::string>& args,
                                                           boost::program_options::options_description& desc,
                                                           boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  desc.add_options()("help", po::bool_switch())("hyper-positional", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("hyper-positional", -1);
  const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(positional).style(style).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return make_error(Errc::invalid_argument, e.what());
  }
  if (!vm.count("hyper-positional")) return std::vector<std::string>{};
  return vm["hyper-positional"].as<std::vector<std::string>>();
}

inline bool help_requested(const boost::program_options::variables_map& vm) {
  return vm.count("help") && vm["help"].as<bool>();
}

inline Result<runtime::ImageStore> open_image_store(const GlobalOptions& global) {
  const runtime::Paths paths = HYPER_TRY(runtime::resolve_paths(global.root));
  return runtime::ImageStore::open(paths.images());
}

inline Result<runtime::ContainerStore> open_container_store(const GlobalOptions& global) {
  const runtime::Paths paths = HYPER_TRY(runtime::resolve_paths(global.root));
  return runtime::ContainerStore::open(paths.containers());
}

}  // namespace hyper::cli
