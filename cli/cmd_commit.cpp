// hyper commit / hyper import: new images from a container's changes (running or stopped)
// or from a root filesystem tar (runtime/image_commit.hpp does the work).
#include <boost/program_options.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "runtime/image_changes.hpp"
#include "runtime/image_commit.hpp"
#include "runtime/image_store.hpp"
#include "runtime/paths.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;

struct NewImageFlags {
  runtime::NewImage image;
  std::vector<std::string> positional;
  bool help = false;
};

// The flags commit and import share (-c, -m), plus commit's own when `commit` is set.
Result<NewImageFlags> parse_new_image_flags(std::vector<std::string> args, bool commit) {
  NewImageFlags out;
  po::options_description desc;
  desc.add_options()("change,c", po::value<std::vector<std::string>>(&out.image.changes)->composing())(
      "message,m", po::value<std::string>(&out.image.comment));
  if (commit) {
    // Docker pauses the container during a commit; a microVM cannot be paused (yet), so
    // -p, --pause and --pause=BOOL are taken for compatibility and do nothing.
    std::erase_if(args, [](const std::string& arg) { return arg.rfind("--pause=", 0) == 0 || arg.rfind("-p=", 0) == 0; });
    desc.add_options()("author,a", po::value<std::string>(&out.image.author))("pause,p", po::bool_switch());
  }
  po::variables_map vm;
  out.positional = HYPER_TRY(parse_command_line(args, desc, vm));
  out.help = help_requested(vm);
  HYPER_CHECK(runtime::changes::validate(out.image.changes));
  return out;
}

// REPOSITORY[:TAG] as the new image's name; none when absent.
Result<std::vector<std::string>> tags_of(const std::vector<std::string>& positional, size_t at) {
  if (positional.size() <= at) return std::vector<std::string>{};
  const auto normalized = HYPER_TRY(runtime::normalize_reference(positional[at]));
  if (normalized.find('@') != std::string::npos)
    return make_error(Errc::invalid_argument, "refusing to create a tag with a digest reference");
  return std::vector<std::string>{normalized};
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : " ") + word;
  return out;
}

// A running container's layer is read live by its agent. A stopped one's is read from its
// scratch disk in a VM of its own, under the container's VM claim so that no `hyper
// start` boots it meanwhile. A claim held elsewhere is a monitor starting the container
// (it is then running, and read live) or another commit of it.
Result<runtime::Image> commit(const runtime::ContainerStore& containers, const runtime::Container& found,
                              runtime::ImageStore& store, const runtime::Image& base, const runtime::NewImage& image) {
  if (found.state.status == runtime::ContainerStatus::running)
    return runtime::commit_container(store, found, base, image);
  const auto claim = HYPER_TRY(containers.claim_vm(found));
  if (claim) return runtime::commit_stopped_container(store, found, *claim, base, image);
  const runtime::Container current = HYPER_TRY(containers.find(found.id));
  if (current.state.status == runtime::ContainerStatus::running)
    return runtime::commit_container(store, current, base, image);
  return make_error(Errc::invalid_argument, "container " + found.id.substr(0, 12) +
                                                " is busy: another hyper command is starting or committing it");
}

}  // namespace

int cmd_commit(const GlobalOptions& global, const std::vector<std::string>& args) {
  auto flags = parse_new_image_flags(args, true);
  if (!flags.ok()) return report(flags.error().message + "\nSee 'hyper commit --help'.", 125);
  if (flags->help) {
    std::printf("Usage: hyper commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]\n\n"
                "Create a new image from a container's changes (running or stopped)\n\n"
                "  -a, --author STRING    author (e.g. \"Jane Doe <jane@example.com>\")\n"
                "  -c, --change LIST      apply a Dockerfile instruction to the image (repeatable):\n"
                "                         CMD ENTRYPOINT ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR\n"
                "  -m, --message STRING   commit message\n"
                "  -p, --pause            accepted for compatibility: the container is not paused\n"
                "                         (files it writes during the commit may be caught half-written)\n");
    return 0;
  }
  if (flags->positional.empty() || flags->positional.size() > 2)
    return report("\"hyper commit\" requires at least 1 and at most 2 arguments: CONTAINER [REPOSITORY[:TAG]]\n"
                  "See 'hyper commit --help'.",
                  125);
  auto tags = tags_of(flags->positional, 1);
  if (!tags.ok()) return report(tags.error().message, 125);
  auto containers = open_container_store(global);
  if (!containers.ok()) return report(containers.error().message, 125);
  auto container = containers->find(flags->positional[0]);
  if (!container.ok()) return report(container.error().message, 1);
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto base = store->find(container->config.image_id);
  if (!base.ok()) return report("the container's image " + container->config.image_id + ": " + base.error().message, 1);

  runtime::NewImage& image = flags->image;
  image.container = container->id;
  image.run_config = runtime::run_config_of(container->config);
  std::vector<std::string> command = container->config.entrypoint;
  command.insert(command.end(), container->config.cmd.begin(), container->config.cmd.end());
  image.created_by = joined(command);
  image.tags = std::move(tags).value();
  auto committed = commit(*containers, *container, *store, *base, image);
  if (!committed.ok()) return report(committed.error().message, 1);
  std::printf("%s\n", committed->id.c_str());
  return 0;
}

int cmd_import(const GlobalOptions& global, const std::vector<std::string>& args) {
  auto flags = parse_new_image_flags(args, false);
  if (!flags.ok()) return report(flags.error().message + "\nSee 'hyper import --help'.", 125);
  if (flags->help) {
    std::printf("Usage: hyper import [OPTIONS] FILE|- [REPOSITORY[:TAG]]\n\n"
                "Import the contents from a tarball (plain, gzip or zstd) to create a filesystem image\n\n"
                "  -c, --change LIST      apply a Dockerfile instruction to the image (repeatable):\n"
                "                         CMD ENTRYPOINT ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR\n"
                "  -m, --message STRING   commit message (default: \"Imported from -\")\n");
    return 0;
  }
  if (flags->positional.empty() || flags->positional.size() > 2)
    return report("\"hyper import\" requires at least 1 and at most 2 arguments: FILE|- [REPOSITORY[:TAG]]\n"
                  "See 'hyper import --help'.",
                  125);
  const std::string& source = flags->positional[0];
  if (source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0)
    return report("importing from a URL is not supported: download it first, then hyper import FILE", 125);
  auto tags = tags_of(flags->positional, 1);
  if (!tags.ok()) return report(tags.error().message, 125);
  UniqueFd file;
  if (source != "-") {
    file = UniqueFd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.valid()) return report(Error::from_errno("open " + source).message, 1);
  }
  auto store = open_image_store(global);
  if (!store.ok()) return report(store.error().message, 125);

  runtime::NewImage& image = flags->image;
  // Docker names the source "-" whether the tar came from a file or from stdin.
  if (image.comment.empty()) image.comment = "Imported from -";
  image.tags = std::move(tags).value();
  auto imported = runtime::import_image(*store, file.valid() ? file.get() : STDIN_FILENO, image);
  if (!imported.ok()) return report(imported.error().message, 1);
  std::printf("%s\n", imported->id.c_str());
  return 0;
}

}  // namespace hyper::cli
