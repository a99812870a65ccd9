#include "runtime/stdio_relay.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "runtime/log_file.hpp"
#include "vmm/file_io.hpp"

namespace hyper::runtime {
namespace {

using agent::Kind;

class Relay {
 public:
  Relay(AgentConnection& conn, const RelayOptions& options) : conn_(conn), options_(options) {}

  RelayOutcome run() {
    bool stdin_open = options_.forward_stdin;
    for (;;) {
      std::vector<pollfd> fds = {{conn_.fd(), POLLIN, 0},
                                 {options_.stopped_fd, POLLIN, 0},
                                 {options_.signal_fd, POLLIN, 0},
                                 {stdin_open ? STDIN_FILENO : -1, POLLIN, 0},
                                 {options_.input_listen_fd, POLLIN, 0}};
      for (const auto& input : inputs_) fds.push_back({input.fd(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return {std::nullopt, std::string("poll: ") + std::strerror(errno)};
      if (fds[0].revents) {
        if (auto outcome = drain_agent()) return *outcome;
      }
      if (fds[2].revents) forward_signals();
      if (fds[3].revents) stdin_open = forward_stdin();
      for (size_t i = fds.size(); i-- > kFixedFds;)
        if (fds[i].revents && !forward_input(inputs_[i - kFixedFds])) inputs_.erase(inputs_.begin() + static_cast<std::ptrdiff_t>(i - kFixedFds));
      if (fds[4].revents) accept_input();
      if (fds[1].revents) {
        if (auto outcome = drain_agent()) return *outcome;
        return {std::nullopt, "the VM stopped before the process's exit was reported"};
      }
    }
  }

 private:
  std::optional<RelayOutcome> drain_agent() {
    for (;;) {
      auto frame = conn_.poll_frame();
      if (!frame.ok()) return RelayOutcome{std::nullopt, frame.error().message};
      if (!*frame) return std::nullopt;
      const agent::Frame& f = **frame;
      if (f.kind == Kind::stdout_data || f.kind == Kind::stderr_data) {
        const bool err = f.kind == Kind::stderr_data;
        if (options_.log) (void)options_.log->write(err ? Stream::err : Stream::out, f.payload);
        if (options_.attach_stdout)
          (void)write_all(err ? STDERR_FILENO : STDOUT_FILENO, f.payload.data(), f.payload.size(), "the terminal");
      } else if (f.kind == Kind::exit) {
        auto body = parse_json_payload(f);
        if (!body.ok()) return RelayOutcome{std::nullopt, body.error().message};
        return RelayOutcome{body->value("status", 255), ""};
      }
    }
  }

  void forward_signals() {
    signalfd_siginfo info{};
    while (::read(options_.signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig != SIGWINCH) {
        (void)conn_.send(Kind::signal, Json{{"signal", sig}}.dump());
      } else if (auto size = terminal_size(); size && options_.tty) {
        (void)conn_.send(Kind::resize, Json{{"rows", size->first}, {"cols", size->second}}.dump());
      }
    }
  }

  bool forward_stdin() {
    char buf[agent::kMaxDataChunk];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      (void)conn_.send(Kind::stdin_eof, "");
      return false;
    }
    (void)conn_.send(Kind::stdin_data, std::string_view(buf, static_cast<size_t>(n)));
    return true;
  }

  static constexpr size_t kFixedFds = 5;
  static constexpr size_t kMaxInputs = 16;

  void accept_input() {
    UniqueFd client(::accept4(options_.input_listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (client.valid() && inputs_.size() < kMaxInputs) inputs_.emplace_back(std::move(client));
  }

  // Passes on what an input client may send: the process's input and terminal size.
  // False when the client is gone or sent anything else.
  bool forward_input(AgentConnection& input) {
    for (;;) {
      auto frame = input.poll_frame();
      if (!frame.ok()) return false;
      if (!*frame) return true;
      const agent::Frame& f = **frame;
      if (f.kind != Kind::stdin_data && f.kind != Kind::stdin_eof && f.kind != Kind::resize) return false;
      (void)conn_.send(f.kind, f.payload);
    }
  }

  AgentConnection& conn_;
  const RelayOptions& options_;
  std::vector<AgentConnection> inputs_;
};

}  // namespace

RelayOutcome relay_stdio(AgentConnection& conn, const RelayOptions& options) { return Relay(conn, options).run(); }

Result<UniqueFd> forwarded_signals_fd() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2}) sigaddset(&set, sig);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return Error::from_errno("block signals");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd.valid()) return Error::from_errno("signalfd");
  return fd;
}

std::optional<std::pair<uint16_t, uint16_t>> terminal_size() {
  winsize size{};
  if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &size) != 0 || size.ws_row == 0) return std::nullopt;
  return std::pair<uint16_t, uint16_t>{size.ws_row, size.ws_col};
}

struct RawTerminal::Saved {
  termios attrs;
};

RawTerminal::RawTerminal() {
  termios attrs{};
  if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &attrs) != 0) return;
  termios raw = attrs;
  ::cfmakeraw(&raw);
  if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) saved_ = std::make_unique<Saved>(Saved{attrs});
}

RawTerminal::~RawTerminal() {
  if (saved_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_->attrs);
}

}  // namespace hyper::runtime
