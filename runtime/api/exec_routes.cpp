// Exec instances: created with a container's process settings, started over a hijacked
// connection that hyperd relays to the agent itself (an exec is a connection to the
// agent, not something the monitor keeps), inspected for the exit code afterwards.
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <thread>

#include "runtime/agent_client.hpp"
#include "runtime/api/daemon.hpp"
#include "runtime/run_options.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime::api {

struct ExecSession {
  std::string id, container_id;
  Json process;  // the agent's exec "process"
  bool attach_stdin = false, attach_stdout = true, attach_stderr = true, tty = false;
  std::mutex mutex;
  bool running = false;
  std::optional<int> exit_code;
  AgentConnection* conn = nullptr;  // while attached; every send to it holds `mutex`
};

std::shared_ptr<ExecSession> Daemon::add_exec(std::shared_ptr<ExecSession> session) const {
  std::lock_guard lock(mutex_);
  execs_[session->id] = session;
  return session;
}

std::shared_ptr<ExecSession> Daemon::find_exec(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = execs_.find(id);
  return it == execs_.end() ? nullptr : it->second;
}

namespace {

std::string random_id() {
  unsigned char bytes[32];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) id += {kHex[b >> 4], kHex[b & 15]};
  return id;
}

std::vector<std::string> words(const Json& body, const char* key) {
  std::vector<std::string> out;
  if (const auto it = body.find(key); it != body.end() && it->is_array())
    for (const auto& word : *it) out.push_back(word.get<std::string>());
  return out;
}

void create(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  if (container->state.status != ContainerStatus::running)
    return exchange.send_error(http::status::conflict, "Container " + container->id + " is not running");
  const auto body = request.json_body();
  if (!body.ok()) return exchange.send_error(body.error());
  const auto command = words(*body, "Cmd");
  if (command.empty()) return exchange.send_error(http::status::bad_request, "No exec command specified");
  const auto env = merge_env(container->config.env, {}, words(*body, "Env"));
  if (!env.ok()) return exchange.send_error(env.error());
  auto session = std::make_shared<ExecSession>();
  session->id = random_id();
  session->container_id = container->id;
  session->tty = body->value("Tty", false);
  session->attach_stdin = body->value("AttachStdin", false);
  session->attach_stdout = body->value("AttachStdout", false);
  session->attach_stderr = body->value("AttachStderr", false);
  const std::string workdir = body->value("WorkingDir", std::string());
  const std::string user = body->value("User", std::string());
  session->process = {{"args", command},
                      {"env", *env},
                      {"cwd", !workdir.empty() ? workdir : container->config.working_dir.empty() ? "/" : container->config.working_dir},
                      {"user", !user.empty() ? user : container->config.user},
                      {"tty", session->tty},
                      {"stdin", session->attach_stdin}};
  if (const auto size = body->find("ConsoleSize"); size != body->end() && size->is_array() && size->size() == 2 &&
                                                    (*size)[0].get<int>() > 0 && (*size)[1].get<int>() > 0)
    session->process["rows"] = (*size)[0], session->process["cols"] = (*size)[1];
  daemon.add_exec(session);
  exchange.send_json(http::status::created, Json{{"Id", session->id}});
}

// Relays one exec's stream between the client and the agent until the process exits.
// Without a client (Detach), only the exit is waited for.
std::optional<int> relay(ExecSession& session, AgentConnection& conn, Transport* client, std::string pending_input) {
  bool input_open = session.attach_stdin && client != nullptr;
  const auto send_input = [&](std::string_view bytes) {
    std::lock_guard lock(session.mutex);
    (void)conn.send(agent::Kind::stdin_data, bytes);
  };
  if (input_open && !pending_input.empty()) send_input(pending_input);
  for (;;) {
    // The client's input is polled through its transport (TLS may hold bytes already read).
    pollfd fds[2] = {{conn.fd(), POLLIN, 0}, {input_open ? client->fd() : -1, POLLIN, 0}};
    const bool buffered = input_open && client->readable();
    if (!buffered && ::poll(fds, 2, -1) < 0 && errno != EINTR) return std::nullopt;
    if (buffered || fds[1].revents) {
      char buf[agent::kMaxDataChunk];
      const long n = client->read(buf, sizeof buf);
      if (n > 0) {
        send_input(std::string_view(buf, static_cast<size_t>(n)));
      } else {
        input_open = false;
        std::lock_guard lock(session.mutex);
        (void)conn.send(agent::Kind::stdin_eof, "");
      }
    }
    if (buffered) {
      pollfd agent_fd{conn.fd(), POLLIN, 0};
      fds[0].revents = ::poll(&agent_fd, 1, 0) > 0 ? agent_fd.revents : 0;
    }
    if (!fds[0].revents) continue;
    for (;;) {
      auto frame_read = conn.poll_frame();
      if (!frame_read.ok()) return std::nullopt;
      if (!*frame_read) break;
      const agent::Frame& f = **frame_read;
      if (f.kind == agent::Kind::exit) {
        auto body = parse_json_payload(f);
        return body.ok() ? std::optional<int>(body->value("status", 255)) : std::nullopt;
      }
      const bool wanted = f.kind == agent::Kind::stdout_data ? session.attach_stdout : f.kind == agent::Kind::stderr_data && session.attach_stderr;
      if (wanted && client != nullptr) (void)client->write(stream_frame(f.kind == agent::Kind::stderr_data, f.payload, session.tty));
    }
  }
}

void start(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto session = daemon.find_exec(request.param("id"));
  if (!session) return exchange.send_error(http::status::not_found, "No such exec instance: " + request.param("id"));
  const auto body = request.json_body();
  if (!body.ok()) return exchange.send_error(body.error());
  const auto store = daemon.containers();
  const auto container = store.ok() ? store->find(session->container_id) : Result<Container>(store.error());
  if (!container.ok() || container->state.status != ContainerStatus::running)
    return exchange.send_error(http::status::conflict, "Container " + session->container_id + " is not running");
  {
    std::lock_guard lock(session->mutex);
    if (session->running || session->exit_code)
      return exchange.send_error(http::status::conflict, "Exec " + session->id + " has already been started");
    session->running = true;
  }
  auto conn = AgentConnection::dial(container->dir);
  if (!conn.ok()) {
    std::lock_guard lock(session->mutex);
    session->running = false;  // not started: it may be started again
    return exchange.send_error(conn.error());
  }
  auto reply = conn->request({{"op", "exec"}, {"process", session->process}}, 30'000);
  if (!reply.ok()) {
    std::lock_guard lock(session->mutex);
    session->running = false;
    session->exit_code = 126;
    return exchange.send_error(http::status::internal_server_error, reply.error().message);
  }
  const bool detach = body->value("Detach", false);
  if (detach) {
    exchange.send_empty(http::status::ok);
    // The process runs on; its connection waits for the exit here, off the client's time.
    std::thread([session, conn = std::move(conn).value()]() mutable {
      const auto status = relay(*session, conn, nullptr, {});
      std::lock_guard lock(session->mutex);
      session->running = false;
      session->exit_code = status.value_or(137);
    }).detach();
    return;
  }
  if (!exchange.upgrade(session->tty ? kRawStream : kMultiplexedStream).ok())
    return;
  {
    std::lock_guard lock(session->mutex);
    session->conn = &conn.value();
  }
  const auto status = relay(*session, *conn, &exchange.transport(), exchange.take_buffered());
  std::lock_guard lock(session->mutex);
  session->conn = nullptr;
  session->running = false;
  session->exit_code = status.value_or(137);
  exchange.transport().shutdown_write();
}

void resize(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto session = daemon.find_exec(request.param("id"));
  if (!session) return exchange.send_error(http::status::not_found, "No such exec instance: " + request.param("id"));
  const int rows = std::atoi(request.arg("h").value_or("0").c_str()), cols = std::atoi(request.arg("w").value_or("0").c_str());
  if (rows <= 0 || cols <= 0 || rows > 0xffff || cols > 0xffff)
    return exchange.send_error(http::status::bad_request, "h and w must be terminal sizes");
  std::lock_guard lock(session->mutex);
  if (session->conn && session->tty) (void)session->conn->send(agent::Kind::resize, Json{{"rows", rows}, {"cols", cols}}.dump());
  exchange.send_empty(http::status::created);
}

// `ps` inside the container, through the agent: its exit status and its stdout.
Result<std::pair<int, std::string>> run_ps(const Container& container, const std::vector<std::string>& args) {
  auto conn = HYPER_TRY(AgentConnection::dial(container.dir));
  std::vector<std::string> command = {"ps"};
  command.insert(command.end(), args.begin(), args.end());
  const Json process = {{"args", command}, {"env", container.config.env}, {"cwd", "/"}, {"user", "0:0"}, {"tty", false}, {"stdin", false}};
  (void)HYPER_TRY(conn.request({{"op", "exec"}, {"process", process}}, 30'000));
  std::string out;
  for (;;) {
    const agent::Frame frame = HYPER_TRY(conn.receive(30'000));
    if (frame.kind == agent::Kind::stdout_data) out += frame.payload;
    if (frame.kind != agent::Kind::exit) continue;
    const Json body = HYPER_TRY(parse_json_payload(frame));
    return std::pair<int, std::string>(body.value("status", 255), out);
  }
}

// Splits on runs of blanks; the last of `columns` fields takes the rest of the line.
std::vector<std::string> ps_fields(const std::string& line, size_t columns) {
  std::vector<std::string> fields;
  size_t at = line.find_first_not_of(' ');
  while (at != std::string::npos && fields.size() + 1 < columns) {
    const size_t end = line.find(' ', at);
    fields.push_back(line.substr(at, end - at));
    at = end == std::string::npos ? end : line.find_first_not_of(' ', end);
  }
  if (at != std::string::npos) fields.push_back(line.substr(at));
  return fields;
}

// GET /containers/{id}/top: the guest's `ps` (the container's processes live in its VM,
// not on the host), so it needs a `ps` in the image.
void top(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto container = find_container(daemon, request, exchange);
  if (!container) return;
  if (container->state.status != ContainerStatus::running)
    return exchange.send_error(http::status::conflict, "Container " + container->id + " is not running");
  std::vector<std::string> args;
  const std::string ps_args = request.arg("ps_args").value_or("");
  for (size_t at = 0; at < ps_args.size();) {
    const size_t end = std::min(ps_args.find(' ', at), ps_args.size());
    if (end > at) args.push_back(ps_args.substr(at, end - at));
    at = end + 1;
  }
  const auto ran = run_ps(*container, args);
  if (!ran.ok()) return exchange.send_error(http::status::internal_server_error, "ps in the container: " + ran.error().message);
  if (ran->first != 0)
    return exchange.send_error(http::status::internal_server_error,
                               "ps in the container exited with " + std::to_string(ran->first) + " (does the image have ps?)");
  std::vector<std::string> lines;
  for (size_t at = 0; at < ran->second.size();) {
    const size_t end = std::min(ran->second.find('\n', at), ran->second.size());
    if (end > at) lines.push_back(ran->second.substr(at, end - at));
    at = end + 1;
  }
  if (lines.empty()) return exchange.send_error(http::status::internal_server_error, "ps in the container printed nothing");
  const auto titles = ps_fields(lines[0], std::numeric_limits<size_t>::max());
  Json processes = Json::array();
  for (size_t i = 1; i < lines.size(); ++i) processes.push_back(ps_fields(lines[i], titles.size()));
  exchange.send_json(http::status::ok, Json{{"Titles", titles}, {"Processes", processes}});
}

void inspect(const Daemon& daemon, const Request& request, Exchange& exchange) {
  const auto session = daemon.find_exec(request.param("id"));
  if (!session) return exchange.send_error(http::status::not_found, "No such exec instance: " + request.param("id"));
  std::lock_guard lock(session->mutex);
  exchange.send_json(http::status::ok,
                     Json{{"ID", session->id},
                          {"Running", session->running},
                          {"ExitCode", session->exit_code ? Json(*session->exit_code) : Json()},
                          {"ProcessConfig", {{"tty", session->tty}, {"entrypoint", session->process["args"][0]},
                                             {"arguments", Json(session->process["args"].begin() + 1, session->process["args"].end())},
                                             {"user", session->process["user"]}}},
                          {"OpenStdin", session->attach_stdin},
                          {"OpenStdout", session->attach_stdout},
                          {"OpenStderr", session->attach_stderr},
                          {"ContainerID", session->container_id},
                          {"Pid", 0}});
}

}  // namespace

void add_exec_routes(Router& router, Daemon& daemon) {
  using http::verb;
  router.add(verb::post, "/containers/{id}/exec", bound(daemon, create));
  router.add(verb::post, "/exec/{id}/start", bound(daemon, start));
  router.add(verb::post, "/exec/{id}/resize", bound(daemon, resize));
  router.add(verb::get, "/exec/{id}/json", bound(daemon, inspect));
  router.add(verb::get, "/containers/{id}/top", bound(daemon, top));
}

}  // namespace hyper::runtime::api
