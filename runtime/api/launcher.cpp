#include "runtime/api/launcher.hpp"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "vmm/file_io.hpp"

namespace hyper::runtime::api {
namespace {

constexpr size_t kMaxRequest = 256;  // a container id, 64 hex digits

// A message of one buffer, with room for one descriptor (SCM_RIGHTS).
struct FdMessage {
  FdMessage(void* data, size_t size) : iov{data, size} {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;

  iovec iov;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
};

// One request: the container's id, and the socket its outcome goes to.
Status send_request(int channel, const std::string& id, int reply_fd) {
  FdMessage message(const_cast<char*>(id.data()), id.size());
  cmsghdr* cmsg = CMSG_FIRSTHDR(&message.msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &reply_fd, sizeof(int));
  while (::sendmsg(channel, &message.msg, MSG_NOSIGNAL) < 0)
    if (errno != EINTR) return Error::from_errno("ask hyperd's launcher to start a container");
  return {};
}

// The next request; an empty id when hyperd closed the channel.
Result<std::pair<std::string, UniqueFd>> receive_request(int channel) {
  char id[kMaxRequest];
  FdMessage message(id, sizeof id);
  ssize_t n;
  while ((n = ::recvmsg(channel, &message.msg, MSG_CMSG_CLOEXEC)) < 0)
    if (errno != EINTR) return Error::from_errno("read hyperd's requests");
  UniqueFd reply;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&message.msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&message.msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    int fd = -1;
    std::memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    reply.reset(fd);
  }
  return std::pair<std::string, UniqueFd>(std::string(id, static_cast<size_t>(n)), std::move(reply));
}

nlohmann::json outcome_json(const StartOutcome& outcome) {
  return {{"code", outcome.code}, {"error", outcome.error}, {"warnings", outcome.warnings}};
}

// In a child of the launcher: one start, its outcome written to `reply`.
[[noreturn]] void start_one(const Paths& paths, const std::string& id, int reply) {
  StartOutcome outcome{125, "", {}};
  auto store = ContainerStore::open(paths.containers());
  auto container = store.ok() ? store->find(id) : Result<Container>(store.error());
  if (!container.ok()) outcome.error = container.error().message;
  else outcome = start_detached(paths, *store, *container);
  const std::string text = outcome_json(outcome).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  (void)write_all(reply, text.data(), text.size(), "hyperd");
  _exit(0);
}

[[noreturn]] void launcher_main(const Paths& paths, int channel) {
  for (;;) {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    pollfd p{channel, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;  // now and then, to reap the starters that ended
    auto request = receive_request(channel);
    if (!request.ok() || request->first.empty()) _exit(0);  // hyperd is gone
    if (!request->second.valid()) continue;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(channel);
      start_one(paths, request->first, request->second.get());
    }
    if (pid < 0) {
      const std::string text = outcome_json({125, "fork: " + std::string(std::strerror(errno)), {}}).dump();
      (void)write_all(request->second.get(), text.data(), text.size(), "hyperd");
    }
  }
}

}  // namespace

Result<Launcher> Launcher::spawn(const Paths& paths) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return Error::from_errno("socketpair");
  UniqueFd ours(fds[0]), theirs(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork hyperd's launcher");
  if (pid == 0) {
    ours.reset();
    ::prctl(PR_SET_NAME, "hyperd-launcher");
    launcher_main(paths, theirs.get());
  }
  return Launcher(std::move(ours));
}

StartOutcome Launcher::start(const std::string& container_id) const {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return {125, Error::from_errno("socketpair").message, {}};
  UniqueFd ours(fds[0]), theirs(fds[1]);
  if (auto sent = send_request(channel_.get(), container_id, theirs.get()); !sent.ok()) return {125, sent.error().message, {}};
  theirs.reset();  // the starter holds the only other end: EOF once it answered or died
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(ours.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object()) return {125, "hyperd's launcher ended before it answered", {}};
  StartOutcome outcome;
  outcome.code = json.value("code", 125);
  outcome.error = json.value("error", std::string());
  for (const auto& warning : json.value("warnings", nlohmann::json::array())) outcome.warnings.push_back(warning.get<std::string>());
  return outcome;
}

}  // namespace hyper::runtime::api
