// hyper save: images to one tar that is both an OCI layout and a docker-archive
// (runtime/image_save.hpp).
#include <boost/program_options.hpp>

#include <unistd.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "runtime/image_save.hpp"
#include "runtime/image_store.hpp"
#include "runtime/paths.hpp"

namespace hyper::cli {

int cmd_save(const GlobalOptions& global, const std::vector<std::string>& args) {
  namespace po = boost::program_options;
  std::string output;
  po::options_description desc;
  desc.add_options()("output,o", po::value<std::string>(&output));
  po::variables_map vm;
  auto names = parse_command_line(args, desc, vm);
  if (!names.ok()) return report(names.error().message + "\nSee 'hyper save --help'.", 125);
  if (help_requested(vm)) {
    std::printf("Usage: hyper save [OPTIONS] IMAGE [IMAGE...]\n\n"
                "Save one or more images to a tar archive (streamed to STDOUT by default): an OCI image\n"
                "layout and a docker-archive at once, as Docker writes them\n\n"
                "  -o, --output FILE   write to a file instead of STDOUT\n");
    return 0;
  }
  if (names->empty()) return report("\"hyper save\" requires at least 1 argument.\nSee 'hyper save --help'.", 125);
  if (output.empty() && ::isatty(STDOUT_FILENO))
    return report("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1);
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = runtime::ImageStore::open(paths->images());
  if (!store.ok()) return report(store.error().message, 125);
  auto items = runtime::resolve_save_names(*store, *names);
  if (!items.ok()) return report(items.error().message, 1);
  const Status saved = output.empty() ? runtime::write_save_archive(*store, *items, STDOUT_FILENO)
                                      : runtime::save_to_file(*store, *items, output);
  if (!saved.ok()) return report(saved.error().message, 1);
  return 0;
}

}  // namespace hyper::cli
