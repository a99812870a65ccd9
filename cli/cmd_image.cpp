// hyper tag / rmi / image SUBCOMMAND (ls, pull, push, rm, tag, inspect, prune, save,
// load, import): the commands that manage stored images.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "runtime/api/image_json.hpp"
#include "runtime/container_control.hpp"
#include "cli/container_args.hpp"
#include "cli/human.hpp"
#include "runtime/image_blobs.hpp"
#include "runtime/image_formats.hpp"
#include "runtime/image_store.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using Json = nlohmann::ordered_json;

// Whether any container, running or not, was created from the image: such an image is
// kept, so that the container can start again.
Result<std::function<bool(const std::string&)>> image_use(const GlobalOptions& global) {
  return runtime::image_use(HYPER_TRY(open_container_store(global)));
}

void print_removal(const runtime::RemovalReport& report) {
  for (const auto& tag : report.untagged) std::printf("Untagged: %s\n", runtime::familiar_name(tag).c_str());
  for (const auto& id : report.deleted) std::printf("Deleted: %s\n", id.c_str());
}

int simple_usage_error(const std::string& message, const char* usage) { return report(message + "\n" + usage, 125); }

}  // namespace

int cmd_tag(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]";
  po::options_description desc;
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nCreate a tag TARGET_IMAGE that refers to SOURCE_IMAGE\n", kUsage);
    return 0;
  }
  if (!words.ok()) return simple_usage_error(words.error().message, kUsage);
  if (words->size() != 2) return simple_usage_error("\"hyper tag\" requires exactly 2 arguments.", kUsage);
  const auto target = runtime::normalize_reference((*words)[1]);
  if (!target.ok()) return report(target.error().message, 125);
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  const auto image = store->find((*words)[0]);
  if (!image.ok()) return report(image.error().message, 1);
  if (auto tagged = store->tag(*image, *target); !tagged.ok()) return report(tagged.error().message, 1);
  return 0;
}

int cmd_rmi(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper rmi [OPTIONS] IMAGE [IMAGE...]";
  bool force = false;
  po::options_description desc;
  desc.add_options()("force,f", po::bool_switch(&force));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nRemove one or more images. Naming a tag removes the tag, and the image with its\n"
                "last tag; blobs no image needs any more are deleted. An image a container was\n"
                "created from is kept (-f only untags it).\n\n"
                "Options:\n  -f, --force   remove an image with several tags by id; untag one in use\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return simple_usage_error(words.error().message, kUsage);
  if (words->empty()) return simple_usage_error("\"hyper rmi\" requires at least 1 argument.", kUsage);
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  const auto in_use = image_use(global);
  if (!in_use.ok()) return report(in_use.error().message, 125);
  int status = 0;
  for (const auto& reference : *words) {
    const auto removed = store->remove(reference, force, *in_use);
    if (!removed.ok()) {
      status = report(removed.error().message, 1);
      continue;
    }
    print_removal(*removed);
  }
  return status;
}


int cmd_image_inspect(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper image inspect IMAGE [IMAGE...]";
  po::options_description desc;
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nDisplay detailed information on one or more images, as JSON\n", kUsage);
    return 0;
  }
  if (!words.ok()) return simple_usage_error(words.error().message, kUsage);
  if (words->empty()) return simple_usage_error("\"hyper image inspect\" requires at least 1 argument.", kUsage);
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  Json out = Json::array();
  int status = 0;
  for (const auto& reference : *words) {
    const auto image = store->find(reference);
    auto json = image.ok() ? runtime::api::image_json(*store, *image) : Result<Json>(image.error());
    if (!json.ok()) {
      status = 1;
      std::fprintf(stderr, "hyper: %s\n", json.error().message.c_str());
      continue;
    }
    out.push_back(std::move(*json));
  }
  std::printf("%s\n", out.dump(4, ' ', false, Json::error_handler_t::replace).c_str());
  return status;
}

int cmd_image_prune(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper image prune [OPTIONS]";
  bool all = false, force = false;
  po::options_description desc;
  desc.add_options()("all,a", po::bool_switch(&all))("force,f", po::bool_switch(&force));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nRemove untagged images (all images no container uses, with -a), then every\n"
                "blob, partial download and cached root filesystem no image needs\n\n"
                "Options:\n  -a, --all     remove all images no container uses, not just untagged ones\n"
                "  -f, --force   do not ask for confirmation\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return simple_usage_error(words.error().message, kUsage);
  if (!words->empty()) return simple_usage_error("\"hyper image prune\" accepts no arguments.", kUsage);
  if (!force) {
    if (::isatty(STDIN_FILENO) != 1) return report("refusing to prune without confirmation: stdin is not a terminal (use -f)", 1);
    std::printf("WARNING! This will remove all %s images no container uses.\nAre you sure you want to continue? [y/N] ",
                all ? "" : "dangling");
    std::fflush(stdout);
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y")) return 0;
  }
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  const auto in_use = image_use(global);
  if (!in_use.ok()) return report(in_use.error().message, 125);
  const auto pruned = store->prune(all, *in_use);
  if (!pruned.ok()) return report(pruned.error().message, 1);
  if (!pruned->untagged.empty() || !pruned->deleted.empty()) {
    std::printf("Deleted Images:\n");
    print_removal(*pruned);
    std::printf("\n");
  }
  std::printf("Total reclaimed space: %s\n", human_size(pruned->reclaimed_bytes).c_str());
  return 0;
}

int cmd_image(const GlobalOptions& global, const std::vector<std::string>& args) {
  struct Sub {
    const char* name;
    Command run;
  };
  static constexpr Sub kSubcommands[] = {
      {"ls", cmd_images},        {"list", cmd_images},   {"pull", cmd_pull},     {"push", cmd_push},
      {"rm", cmd_rmi},           {"remove", cmd_rmi},    {"tag", cmd_tag},       {"inspect", cmd_image_inspect},
      {"prune", cmd_image_prune}, {"save", cmd_save},    {"load", cmd_load},     {"import", cmd_import},
  };
  if (args.empty() || args.front() == "--help" || args.front() == "-h") {
    std::printf("Usage:  hyper image COMMAND\n\nManage images\n\nCommands:\n");
    for (const auto& sub : kSubcommands) std::printf("  %s\n", sub.name);
    return args.empty() ? 125 : 0;
  }
  for (const auto& sub : kSubcommands)
    if (args.front() == sub.name) return sub.run(global, std::vector<std::string>(args.begin() + 1, args.end()));
  return report("'image " + args.front() + "' is not a hyper command.\nSee 'hyper image --help'", 1);
}

}  // namespace hyper::cli
