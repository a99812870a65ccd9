// hyper load / hyper images: until registries arrive, images come from archives.
#include <boost/program_options.hpp>

#include <cstdio>

#include "cli/commands.hpp"
#include "runtime/disk_images.hpp"
#include "runtime/image_store.hpp"
#include "runtime/paths.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;

}  // namespace

int cmd_load(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::printf("Usage: hyper load -i ARCHIVE [-q]\n\nLoad images from a docker-archive tar, an OCI layout tar or an "
                "OCI layout directory,\nverify them and build their root filesystems\n\n"
                "  -i, --input ARCHIVE   the archive\n  -q, --quiet           print nothing but errors\n");
    return 0;
  }
  std::string input;
  bool quiet = false;
  po::options_description desc;
  desc.add_options()("input,i", po::value<std::string>(&input), "docker-archive tar, OCI layout tar or directory")(
      "quiet,q", po::bool_switch(&quiet), "print nothing but errors");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return report(std::string(e.what()) + "\nUsage: hyper load -i ARCHIVE", 125);
  }
  if (input.empty()) return report("hyper load needs -i ARCHIVE (reading stdin is not supported)", 125);
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = runtime::ImageStore::open(paths->images());
  if (!store.ok()) return report(store.error().message, 125);
  auto loaded = store->load(input);
  if (!loaded.ok()) return report(loaded.error().message, 1);
  for (const auto& image : *loaded) {
    if (!quiet) {
      if (image.tags.empty()) std::printf("Loaded image ID: %s\n", image.id.c_str());
      for (const auto& tag : image.tags) std::printf("Loaded image: %s\n", runtime::familiar_name(tag).c_str());
      std::fflush(stdout);
    }
    // Build the flattened root filesystem now, so the first `run` does not wait for it.
    auto rootfs = runtime::ensure_rootfs(*store, image, [&](const std::string& line) {
      if (!quiet) std::fprintf(stderr, "%s\n", line.c_str());
    });
    if (!rootfs.ok()) return report(rootfs.error().message, 1);
  }
  return 0;
}

int cmd_images(const GlobalOptions& global, const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::printf("Usage: hyper images [-q]\n\nList images\n\n  -q, --quiet   only the image IDs\n");
    return 0;
  }
  bool quiet = false;
  po::options_description desc;
  desc.add_options()("quiet,q", po::bool_switch(&quiet), "only IDs");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return report(std::string(e.what()) + "\nUsage: hyper images [-q]", 125);
  }
  auto paths = runtime::resolve_paths(global.root);
  if (!paths.ok()) return report(paths.error().message, 125);
  auto store = runtime::ImageStore::open(paths->images());
  if (!store.ok()) return report(store.error().message, 125);
  auto images = store->list();
  if (!images.ok()) return report(images.error().message, 125);
  if (!quiet) std::printf("%-40s %-12s %-14s\n", "REPOSITORY", "TAG", "IMAGE ID");
  for (const auto& image : *images) {
    const std::string short_id = image.id.substr(image.id.find(':') + 1, 12);
    if (quiet) {
      std::printf("%s\n", short_id.c_str());
      continue;
    }
    if (image.tags.empty()) std::printf("%-40s %-12s %-14s\n", "<none>", "<none>", short_id.c_str());
    for (const auto& tag : image.tags) {
      const std::string name = runtime::familiar_name(tag);
      const auto colon = name.rfind(':');
      std::printf("%-40s %-12s %-14s\n", name.substr(0, colon).c_str(), name.substr(colon + 1).c_str(), short_id.c_str());
    }
  }
  return 0;
}

}  // namespace hyper::cli
