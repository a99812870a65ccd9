// hyper load / hyper images.
#include <unistd.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "cli/human.hpp"
#include "runtime/image_store.hpp"
#include "runtime/paths.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;

}  // namespace

int cmd_load(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper load [OPTIONS]";
  std::string input;
  bool quiet = false;
  po::options_description desc;
  desc.add_options()("input,i", po::value(&input))("quiet,q", po::bool_switch(&quiet));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nLoad images from a docker-archive tar, an OCI layout tar or an OCI layout\n"
                "directory, and verify them. (A container's root filesystem is built from the\n"
                "layers at its image's first run.)\n\n"
                "Options:\n  -i, --input string   the archive (default: standard input)\n"
                "  -q, --quiet          print nothing but errors\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return report(words.error().message + "\n" + kUsage, 125);
  if (!words->empty()) return report(std::string("\"hyper load\" accepts no arguments.\n") + kUsage, 125);
  if (input.empty() || input == "-") {
    if (::isatty(STDIN_FILENO) == 1)
      return report("requested load from stdin, but stdin is empty (give -i ARCHIVE or redirect stdin)", 125);
    input = "/dev/stdin";
  }
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto loaded = store->load(input);
  if (!loaded.ok()) return report(loaded.error().message, 1);
  if (quiet) return 0;
  for (const auto& image : *loaded) {
    if (image.tags.empty()) std::printf("Loaded image ID: %s\n", image.id.c_str());
    for (const auto& tag : image.tags) std::printf("Loaded image: %s\n", runtime::familiar_name(tag).c_str());
  }
  return 0;
}

namespace {

struct Row {
  std::string repository, tag, digest, id, created, size;
};

// "REPOSITORY[:TAG]" as `docker images` filters: the repository, and the tag if given.
bool matches(const std::string& filter, const std::string& repository, const std::string& tag) {
  if (filter.empty()) return true;
  const size_t colon = filter.rfind(':');
  const bool has_tag = colon != std::string::npos && colon > filter.rfind('/');
  const std::string want_repository = has_tag ? filter.substr(0, colon) : filter;
  if (want_repository != repository && runtime::familiar_name(want_repository + ":x") != repository + ":x") return false;
  return !has_tag || filter.substr(colon + 1) == tag;
}

std::vector<Row> rows_of(const runtime::Image& image, bool no_trunc) {
  Row base;
  base.id = no_trunc ? image.id : image.id.substr(image.id.find(':') + 1, 12);
  base.created = image.created.empty() ? "N/A" : ago(image.created);
  base.size = human_size(image.size);
  std::vector<Row> rows;
  for (const auto& tag : image.tags) {
    const std::string name = runtime::familiar_name(tag);
    const size_t colon = name.rfind(':');
    Row row = base;
    row.repository = name.substr(0, colon);
    row.tag = name.substr(colon + 1);
    for (const auto& digest : image.repo_digests) {
      const std::string familiar = runtime::familiar_name(digest);
      if (familiar.substr(0, familiar.find('@')) == row.repository) row.digest = familiar.substr(familiar.find('@') + 1);
    }
    rows.push_back(row);
  }
  if (rows.empty()) {
    Row row = base;
    row.repository = row.tag = "<none>";
    rows.push_back(row);
  }
  for (auto& row : rows)
    if (row.digest.empty()) row.digest = "<none>";
  return rows;
}

}  // namespace

int cmd_images(const GlobalOptions& global, const std::vector<std::string>& args) {
  constexpr const char* kUsage = "Usage:  hyper images [OPTIONS] [REPOSITORY[:TAG]]";
  bool quiet = false, digests = false, no_trunc = false, all = false;
  po::options_description desc;
  desc.add_options()("quiet,q", po::bool_switch(&quiet))("digests", po::bool_switch(&digests))(
      "no-trunc", po::bool_switch(&no_trunc))("all,a", po::bool_switch(&all));
  po::variables_map vm;
  const auto words = parse_command_line(args, desc, vm);
  if (help_requested(vm)) {
    std::printf("%s\n\nList images\n\nOptions:\n"
                "  -a, --all        show all images (there are no intermediate images: the same list)\n"
                "      --digests    show digests\n"
                "      --no-trunc   don't truncate output\n"
                "  -q, --quiet      only show image IDs\n",
                kUsage);
    return 0;
  }
  if (!words.ok()) return report(words.error().message + "\n" + kUsage, 125);
  if (words->size() > 1) return report(std::string("\"hyper images\" requires at most 1 argument.\n") + kUsage, 125);
  const std::string filter = words->empty() ? std::string() : words->front();
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto images = store->list();
  if (!images.ok()) return report(images.error().message, 125);

  std::vector<Row> rows;
  for (const auto& image : *images)
    for (auto& row : rows_of(image, no_trunc))
      if (matches(filter, row.repository, row.tag)) rows.push_back(std::move(row));
  if (quiet) {
    std::vector<std::string> seen;
    for (const auto& row : rows) {
      if (std::find(seen.begin(), seen.end(), row.id) != seen.end()) continue;
      seen.push_back(row.id);
      std::printf("%s\n", row.id.c_str());
    }
    return 0;
  }
  size_t repository_width = 10, tag_width = 3, digest_width = 6, id_width = 8, created_width = 7;
  for (const auto& row : rows) {
    repository_width = std::max(repository_width, row.repository.size());
    tag_width = std::max(tag_width, row.tag.size());
    digest_width = std::max(digest_width, row.digest.size());
    id_width = std::max(id_width, row.id.size());
    created_width = std::max(created_width, row.created.size());
  }
  const auto print = [&](const Row& row) {
    std::printf("%-*s   %-*s   ", static_cast<int>(repository_width), row.repository.c_str(), static_cast<int>(tag_width),
                row.tag.c_str());
    if (digests) std::printf("%-*s   ", static_cast<int>(digest_width), row.digest.c_str());
    std::printf("%-*s   %-*s   %s\n", static_cast<int>(id_width), row.id.c_str(), static_cast<int>(created_width),
                row.created.c_str(), row.size.c_str());
  };
  print({"REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"});
  for (const auto& row : rows) print(row);
  return 0;
}

}  // namespace hyper::cli
