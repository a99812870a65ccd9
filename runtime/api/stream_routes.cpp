// The calls that last as long as a container runs: attach, logs and wait. Output comes
// from the container's log (the monitor writes every chunk there, with its stream), so
// a hyperd that restarts loses nothing and any number of clients can follow one
// container; input for the main process goes to its monitor's input socket.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "runtime/agent_client.hpp"
#include "runtime/api/daemon.hpp"
#include "runtime/log_file.hpp"
#include "vmm/file_io.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::api {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(10);
constexpr const char* kLogFile = "container.log";

// One run of a container, watched to its end: the one going on, or else the next one.
class RunWatch {
 public:
  RunWatch(ContainerStore store, const Container& container)
      : store_(std::move(store)), id_(container.id), finished_at_(container.state.finished_at),
        running_(container.state.status == ContainerStatus::running) {
    if (running_) hold(container);
  }

  // Whether the run is over; its exit status then. A container removed before its exit
  // was seen counts as over with `exit_code` unknown (-1).
  bool over(int& exit_code) {
    auto container = store_.find(id_);
    if (!container.ok()) {
      exit_code = last_exit_;
      return true;
    }
    const auto& state = container->state;
    if (state.status == ContainerStatus::running) {
      running_ = true;
      if (!lock_) hold(*container);
      return false;
    }
    const bool ended = state.status == ContainerStatus::exited && (running_ || state.finished_at != finished_at_);
    if (ended) {
      exit_code = last_exit_ = state.exit_code;
      lock_.reset();  // seen: a --rm container's monitor may remove it now
    }
    return ended;
  }

  [[nodiscard]] const std::string& id() const { return id_; }
  [[nodiscard]] bool ran() const { return running_; }
  [[nodiscard]] ContainerStore& store() { return store_; }

 private:
  // Only while it runs: a watcher of a stopped container must not hold up its removal.
  void hold(const Container& container) {
    if (auto lock = store_.watch_exit(container); lock.ok()) lock_ = std::move(lock).value();
  }

  ContainerStore store_;
  std::string id_, finished_at_;
  bool running_;
  int last_exit_ = -1;
  std::optional<FileLock> lock_;
};

// The log through an open descriptor, so a --rm container's last lines are still read
// after its directory is gone.
class LogCursor {
 public:
  LogCursor(const Container& container, bool from_start) {
    fd_.reset(::open((container.dir / kLogFile).c_str(), O_RDONLY | O_CLOEXEC));
    if (fd_.valid() && !from_start) offset_ = static_cast<uint64_t>(::lseek(fd_.get(), 0, SEEK_END));
  }

  // Calls `sink` for each record written since the last call.
  Status read(const std::function<void(const LogRecord&)>& sink) {
    if (!fd_.valid()) return {};
    offset_ = HYPER_TRY(read_log("/proc/self/fd/" + std::to_string(fd_.get()), offset_, sink));
    return {};
  }

 private:
  UniqueFd fd_;
  uint64_t offset_ = 0;
};

// Input from the attached client to the main process: raw bytes become stdin frames,
// the client's end of input a stdin-eof frame.
class InputForwarder {
 public:
  InputForwarder(const Container& container, std::string pending) : dir_(container.dir), pending_(std::move(pending)) {}

  // Returns false once the client's input has ended.
  bool forward(Transport& client, bool running) {
    char buf[agent::kMaxDataChunk];
    const long n = client.read(buf, sizeof buf);
    if (n <= 0) {
      ended_ = true;
    } else {
      pending_.append(buf, static_cast<size_t>(n));
    }
    flush(running);
    return !ended_;
  }

  // Sends what is buffered once the container runs (its input socket exists then).
  void flush(bool running) {
    if (!running) return;
    if (!input_) {
      auto dialed = AgentConnection::dial_input(dir_);
      if (!dialed.ok()) return;
      input_ = std::move(dialed).value();
    }
    for (size_t at = 0; at < pending_.size(); at += agent::kMaxDataChunk)
      (void)input_->send(agent::Kind::stdin_data, std::string_view(pending_).substr(at, agent::kMaxDataChunk));
    pending_.clear();
    if (ended_ && !eof_sent_) eof_sent_ = input_->send(agent::Kind::stdin_eof, "").ok();
  }

 private:
  std::filesystem::path dir_;
  std::string pending_;
  std::optional<AgentConnection> input_;
  bool ended_ = false, eof_sent_ = false;
};

bool wanted(const Request& request, Stream stream) {
  return request.flag(stream == Stream::err ? "stderr" : "stdout");
}

void attach(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  const bool tty = container->config.tty;
  const bool input = request.flag("stdin") && container->config.open_stdin;
  RunWatch watch(*daemon.containers(), *container);
  LogCursor log(*container, request.flag("logs"));
  if (!exchange.upgrade(tty ? kRawStream : kMultiplexedStream).ok()) return;
  InputForwarder forwarder(*container, input ? exchange.take_buffered() : std::string());
  Transport& client = exchange.transport();
  bool input_open = input;
  const auto send = [&](const LogRecord& record) {
    if (!wanted(request, record.stream)) return;
    (void)client.write(stream_frame(record.stream == Stream::err, record.bytes, tty));
  };
  for (int exit_code = 0;;) {
    const bool over = watch.over(exit_code);
    if (input_open && client.readable()) input_open = forwarder.forward(client, !over);
    else if (input) forwarder.flush(!over);
    if (!log.read(send).ok() || over) break;
    if (client.hung_up()) return;
    std::this_thread::sleep_for(kPollInterval);
  }
  client.shutdown_write();
}

void logs(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  if (!request.flag("stdout") && !request.flag("stderr"))
    return exchange.send_error(http::status::bad_request, "Bad parameters: you must choose at least one stream");
  const std::string tail_text = request.arg("tail").value_or("all");
  const auto tail = parse_tail(tail_text.empty() ? "all" : tail_text);
  if (!tail.ok()) return exchange.send_error(tail.error());
  const bool tty = container->config.tty, timestamps = request.flag("timestamps");
  std::vector<LogRecord> records;
  LogCursor log(*container, true);
  (void)log.read([&](const LogRecord& record) { records.push_back(record); });
  exchange.begin_stream(http::status::ok, tty ? kRawStream : kMultiplexedStream);
  const auto send = [&](const LogRecord& record, std::string_view bytes) {
    if (!wanted(request, record.stream) || bytes.empty()) return true;
    const std::string line = timestamps ? record.time + " " + std::string(bytes) : std::string(bytes);
    return exchange.write_chunk(stream_frame(record.stream == Stream::err, line, tty));
  };
  const auto [first, skip] = *tail ? tail_start(records, **tail) : std::pair<size_t, size_t>{0, 0};
  for (size_t r = first; r < records.size(); ++r)
    if (!send(records[r], std::string_view(records[r].bytes).substr(r == first ? std::min(skip, records[r].bytes.size()) : 0)))
      return;
  if (request.flag("follow") && container->state.status == ContainerStatus::running) {
    RunWatch watch(*daemon.containers(), *container);
    bool gone = false;
    for (int exit_code = 0; !gone;) {
      const bool over = watch.over(exit_code);
      (void)log.read([&](const LogRecord& record) { gone = gone || !send(record, record.bytes); });
      if (over) break;
      std::this_thread::sleep_for(kPollInterval);
      gone = gone || exchange.transport().hung_up();
    }
  }
  exchange.end_stream();
}

void wait(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  const std::string condition = request.arg("condition").value_or("not-running");
  if (condition != "not-running" && condition != "next-exit" && condition != "removed")
    return exchange.send_error(http::status::bad_request, "invalid condition: \"" + condition + "\"");
  RunWatch watch(*daemon.containers(), *container);
  const bool now = condition == "not-running" && container->state.status != ContainerStatus::running;
  // Docker sends the head at once: the client knows the wait is in place before it starts the container.
  exchange.begin_stream(http::status::ok, "application/json");
  int exit_code = container->state.exit_code;
  while (!now && !watch.over(exit_code)) {
    if (exchange.transport().hung_up()) return;
    std::this_thread::sleep_for(kPollInterval);
  }
  while (condition == "removed" && watch.store().find(watch.id()).ok()) {
    if (exchange.transport().hung_up()) return;
    std::this_thread::sleep_for(kPollInterval);
  }
  // A container removed before it ever ran (a failed start of a --rm one) has no status to lose.
  Json body = {{"StatusCode", exit_code >= 0 ? exit_code : watch.ran() ? 137 : 125}};
  if (exit_code < 0 && watch.ran()) body["Error"] = {{"Message", "the container was removed before its exit status was seen"}};
  (void)exchange.write_chunk(body.dump() + "\n");
  exchange.end_stream();
}

}  // namespace

void add_stream_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::post, "/containers/{id}/attach", bound(daemon, attach));
  router.add(verb::get, "/containers/{id}/logs", bound(daemon, logs));
  router.add(verb::post, "/containers/{id}/wait", bound(daemon, wait));
}

}  // namespace hyper::runtime::api
