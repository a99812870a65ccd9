// hyperd: the Docker Engine API on a Unix socket (and TCP with mutual TLS), so the real
// `docker` client and Docker SDKs drive microVM containers. See runtime/api/daemon.hpp and
// docs/api.md.
#include <boost/program_options.hpp>

#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "runtime/api/daemon.hpp"
#include "vmm/unique_fd.hpp"

namespace {

namespace po = boost::program_options;
namespace api = hyper::runtime::api;
using hyper::Result;
using hyper::Status;

constexpr const char* kUsage =
    "Usage: hyperd [OPTIONS]\n\nServe the Docker Engine API for Hyper's microVM containers\n\n"
    "  -H, --host unix://PATH|tcp://HOST:PORT\n"
    "                                where to listen (repeatable; default unix:///run/hyper.sock as\n"
    "                                root, else unix://$XDG_RUNTIME_DIR/hyper.sock); TCP needs --tlsverify\n"
    "      --tlsverify               TLS on TCP, and only clients with a certificate --tlscacert signed\n"
    "      --tlscacert FILE          the CA of the clients' certificates\n"
    "      --tlscert FILE            hyperd's certificate\n"
    "      --tlskey FILE             its private key\n"
    "      --root DIR                the state directory, as hyper's --root\n"
    "      --insecure-registry HOST  a registry spoken to over plain HTTP (repeatable)\n"
    "  -v, --version                 print the version\n";

int fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "hyperd: %s\n", message.c_str());
  return code;
}

std::string default_host() {
  if (::geteuid() == 0) return "unix:///run/hyper.sock";
  const char* runtime_dir = std::getenv("XDG_RUNTIME_DIR");
  return std::string("unix://") + (runtime_dir && *runtime_dir ? runtime_dir : "/tmp") + "/hyper.sock";
}

// "unix:///run/hyper.sock" -> "/run/hyper.sock".
Result<std::string> unix_path(const std::string& host) {
  std::string path = host.substr(7);
  if (path.empty() || path[0] != '/') return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": the socket path must be absolute");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": the socket path is too long");
  return path;
}

// "tcp://127.0.0.1:2376", "tcp://[::1]:2376", "tcp://:2376" (every address).
Result<hyper::UniqueFd> listen_tcp(const std::string& host) {
  const std::string address = host.substr(6);
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size())
    return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": not tcp://HOST:PORT");
  std::string name = address.substr(0, colon);
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(name.empty() ? nullptr : name.c_str(), address.c_str() + colon + 1, &hints, &found); rc != 0)
    return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> held(found, ::freeaddrinfo);
  hyper::UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return hyper::Error::from_errno("socket");
  const int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0)
    return hyper::Error::from_errno("listen on " + address);
  return fd;
}

// A socket file left by a hyperd that died is replaced; one a live hyperd answers on is not.
Status claim_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};
  if (!S_ISSOCK(st.st_mode)) return hyper::make_error(hyper::Errc::invalid_argument, path + " exists and is not a socket");
  hyper::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
    return hyper::make_error(hyper::Errc::invalid_argument, "another hyperd is listening on " + path);
  if (::unlink(path.c_str()) != 0) return hyper::Error::from_errno("remove the stale socket " + path);
  return {};
}

Result<hyper::UniqueFd> listen_unix(const std::string& path) {
  HYPER_CHECK(claim_socket(path));
  hyper::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return hyper::Error::from_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), SOMAXCONN) != 0)
    return hyper::Error::from_errno("listen on " + path);
  ::chmod(path.c_str(), 0660);
  return fd;
}

struct Listener {
  std::string host;
  hyper::UniqueFd fd;
  std::string unix_path;  // removed at exit
  bool tls = false;
};

// TCP without TLS would give root on this host to whoever reaches the port.
Result<Listener> open_listener(const std::string& host, bool tls) {
  if (host.starts_with("unix://")) {
    const std::string path = HYPER_TRY(unix_path(host));
    return Listener{host, HYPER_TRY(listen_unix(path)), path, false};
  }
  if (host.starts_with("tcp://")) {
    if (!tls)
      return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": TCP is served only with TLS and client "
                                                              "certificates (--tlsverify --tlscacert --tlscert --tlskey)");
    return Listener{host, HYPER_TRY(listen_tcp(host)), "", true};
  }
  return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": not unix://PATH or tcp://HOST:PORT");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> hosts;
  std::optional<std::string> root;
  std::vector<std::string> insecure;
  api::TlsFiles tls_files;
  bool tls_verify = false;
  po::options_description desc;
  desc.add_options()("host,H", po::value<std::vector<std::string>>(&hosts)->composing())("root", po::value<std::string>())(
      "insecure-registry", po::value<std::vector<std::string>>(&insecure)->composing())(
      "tlsverify", po::bool_switch(&tls_verify))("tlscacert", po::value<std::string>(&tls_files.ca))(
      "tlscert", po::value<std::string>(&tls_files.cert))("tlskey", po::value<std::string>(&tls_files.key))("help", "")(
      "version,v", "");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).style(po::command_line_style::default_style &
                                                                      ~po::command_line_style::allow_guessing).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return fail(std::string(e.what()) + "\n" + kUsage, 125);
  }
  if (vm.count("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (vm.count("version")) {
    std::printf("hyperd (Engine API %s)\n", api::kApiVersion);
    return 0;
  }
  if (vm.count("root")) root = vm["root"].as<std::string>();
  if (hosts.empty()) hosts.push_back(default_host());
  std::optional<api::TlsServer> tls;
  if (tls_verify) {
    if (tls_files.ca.empty() || tls_files.cert.empty() || tls_files.key.empty())
      return fail("--tlsverify needs --tlscacert, --tlscert and --tlskey", 125);
    auto server = api::TlsServer::create(tls_files);
    if (!server.ok()) return fail(server.error().message, 125);
    tls.emplace(std::move(server).value());
  }
  auto paths = hyper::runtime::resolve_paths(root);
  if (!paths.ok()) return fail(paths.error().message);
  // First, while hyperd has one thread and no listener a fork would copy.
  auto launcher = api::Launcher::spawn(*paths);
  if (!launcher.ok()) return fail(launcher.error().message);
  std::vector<Listener> listeners;
  for (const auto& host : hosts) {
    auto listener = open_listener(host, tls.has_value());
    if (!listener.ok()) {
      for (const auto& open : listeners)
        if (!open.unix_path.empty()) ::unlink(open.unix_path.c_str());
      return fail(listener.error().message, listener.error().code == hyper::Errc::invalid_argument ? 125 : 1);
    }
    listeners.push_back(std::move(listener).value());
  }

  // Clients that hang up mid-stream are write errors, not signals.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  api::Daemon daemon(api::DaemonConfig{*paths, insecure}, std::move(launcher).value());
  api::Router router;
  api::add_system_routes(router, daemon);
  api::add_image_routes(router, daemon);
  api::add_container_routes(router, daemon);
  api::add_stream_routes(router, daemon);
  api::add_exec_routes(router, daemon);
  api::add_network_routes(router, daemon);
  api::add_volume_routes(router, daemon);

  std::vector<std::thread> servers;
  for (const auto& listener : listeners) {
    std::fprintf(stderr, "hyperd: serving the Engine API %s on %s%s (state in %s)\n", api::kApiVersion, listener.host.c_str(),
                 listener.tls ? " with TLS, clients verified" : "", paths->root.c_str());
    const api::TlsServer* server = listener.tls ? &*tls : nullptr;
    servers.emplace_back([&router, fd = listener.fd.get(), server] { api::serve(fd, router, server); });
  }
  // Containers run in their own monitors and keep running after hyperd stops.
  int sig = 0;
  ::sigwait(&stop, &sig);
  for (auto& listener : listeners) {
    if (!listener.unix_path.empty()) ::unlink(listener.unix_path.c_str());
    ::shutdown(listener.fd.get(), SHUT_RDWR);
  }
  for (auto& server : servers) server.join();
  return 0;
}
