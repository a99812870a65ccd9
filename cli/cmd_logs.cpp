// hyper logs: a container's output from its log, stdout records to our stdout and stderr
// records to our stderr, optionally following a running container to its end.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cli/commands.hpp"
#include "cli/container_args.hpp"
#include "runtime/log_file.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::cli {
namespace {

namespace po = boost::program_options;
using runtime::LogRecord;
using runtime::Stream;

constexpr auto kFollowInterval = std::chrono::milliseconds(75);
constexpr const char* kLogFile = "container.log";

constexpr const char* kUsage =
    "Usage: hyper logs [OPTIONS] CONTAINER\n\nFetch the logs of a container\n\n"
    "  -f, --follow       follow log output until the container stops\n"
    "  -t, --timestamps   show timestamps\n"
    "  -n, --tail N       number of lines to show from the end of the logs (default \"all\")\n";

// Writes records to the terminal; with timestamps, each line gets its record's time,
// including lines a record continues from an earlier one of the same stream.
class Printer {
 public:
  explicit Printer(bool timestamps) : timestamps_(timestamps) {}

  void print(const LogRecord& record) { print(record.stream, record.time, record.bytes); }

  void print(Stream stream, const std::string& time, std::string_view bytes) {
    const int fd = stream == Stream::err ? STDERR_FILENO : STDOUT_FILENO;
    bool& at_line_start = at_line_start_[stream == Stream::err ? 1 : 0];
    while (!bytes.empty()) {
      const size_t newline = bytes.find('\n');
      const size_t length = newline == std::string_view::npos ? bytes.size() : newline + 1;
      std::string out;
      if (timestamps_ && at_line_start) out = time + " ";
      out.append(bytes.substr(0, length));
      // A closed pipe ("logs | head") ends us by SIGPIPE; other errors lose only output.
      (void)write_all(fd, out.data(), out.size(), "the output");
      at_line_start = newline != std::string_view::npos;
      bytes.remove_prefix(length);
    }
  }

 private:
  bool timestamps_;
  bool at_line_start_[2] = {true, true};
};

Result<uint64_t> print_existing(const std::filesystem::path& log, std::optional<uint64_t> tail, Printer& printer) {
  if (!tail) return runtime::read_log(log, 0, [&](const LogRecord& record) { printer.print(record); });
  std::vector<LogRecord> records;
  const uint64_t offset = HYPER_TRY(runtime::read_log(log, 0, [&](const LogRecord& record) { records.push_back(record); }));
  const auto [first, skip] = runtime::tail_start(records, *tail);
  for (size_t r = first; r < records.size(); ++r) {
    const std::string_view bytes = records[r].bytes;
    printer.print(records[r].stream, records[r].time, r == first ? bytes.substr(std::min(skip, bytes.size())) : bytes);
  }
  return offset;
}

// Until the container is not running: the state is read before the log, so the read
// after the container ended catches everything it wrote. The log is read through an
// open descriptor once it exists, so a --rm container's last output is not lost when
// its directory goes away.
Status follow(const runtime::ContainerStore& store, const std::string& id, const std::filesystem::path& log,
              uint64_t offset, Printer& printer) {
  UniqueFd held;
  for (;;) {
    auto container = store.find(id);
    const bool running = container.ok() && container->state.status == runtime::ContainerStatus::running;
    if (!held.valid()) held.reset(::open(log.c_str(), O_RDONLY | O_CLOEXEC));
    const std::filesystem::path source = held.valid() ? std::filesystem::path("/proc/self/fd/" + std::to_string(held.get())) : log;
    offset = HYPER_TRY(runtime::read_log(source, offset, [&](const LogRecord& record) { printer.print(record); }));
    if (!running) return {};
    std::this_thread::sleep_for(kFollowInterval);
  }
}

}  // namespace

int cmd_logs(const GlobalOptions& global, const std::vector<std::string>& args) {
  bool follow_flag = false, timestamps = false;
  std::string tail_text = "all";
  po::options_description desc;
  desc.add_options()("follow,f", po::bool_switch(&follow_flag))("timestamps,t", po::bool_switch(&timestamps))(
      "tail,n", po::value<std::string>(&tail_text));
  po::variables_map vm;
  auto refs = parse_command_line(args, desc, vm);
  if (!refs.ok()) return report(refs.error().message + "\nSee 'hyper logs --help'.", 125);
  if (help_requested(vm)) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (refs->size() != 1) return report("\"hyper logs\" requires exactly 1 argument.\nSee 'hyper logs --help'.", 125);
  auto tail = runtime::parse_tail(tail_text);
  if (!tail.ok()) return report(tail.error().message, 125);
  auto store = open_container_store(global);
  if (!store.ok()) return report(store.error().message, 125);
  auto container = store->find(refs->front());
  if (!container.ok()) return report(container.error().message, 1);

  const auto log = container->dir / kLogFile;
  Printer printer(timestamps);
  auto offset = print_existing(log, *tail, printer);
  if (!offset.ok()) return report(offset.error().message, 1);
  if (follow_flag) {
    if (auto followed = follow(*store, container->id, log, *offset, printer); !followed.ok())
      return report(followed.error().message, 1);
  }
  return 0;
}

}  // namespace hyper::cli
