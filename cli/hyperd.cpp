// hyperd: the Docker Engine API on a Unix socket, so the real `docker` client (and any
// Docker SDK) drives microVM containers. See runtime/api/daemon.hpp and docs/api.md.
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/program_options.hpp>

#include <fcntl.h>
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
    "  -H, --host unix://PATH        the socket to listen on (default unix:///run/hyper.sock as root,\n"
    "                                else unix://$XDG_RUNTIME_DIR/hyper.sock)\n"
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

// "unix:///run/hyper.sock" -> "/run/hyper.sock"; TCP needs TLS, which hyperd does not serve.
Result<std::string> socket_path(const std::string& host) {
  if (host.starts_with("unix://")) {
    std::string path = host.substr(7);
    if (path.empty() || path[0] != '/') return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": the socket path must be absolute");
    if (path.size() >= sizeof(sockaddr_un{}.sun_path))
      return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": the socket path is too long");
    return path;
  }
  if (host.starts_with("tcp://") || host.starts_with("fd://"))
    return hyper::make_error(hyper::Errc::unsupported, "-H " + host + ": hyperd listens on Unix sockets only (TCP would need TLS, "
                                                       "which it does not serve); put it behind an ssh or TLS tunnel");
  return hyper::make_error(hyper::Errc::invalid_argument, "-H " + host + ": not unix://PATH");
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

Result<std::filesystem::path> sibling_hyper() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return hyper::make_error(hyper::Errc::not_found, "cannot find hyperd's own path: " + ec.message());
  auto hyper = self.parent_path() / "hyper";
  if (::access(hyper.c_str(), X_OK) != 0) return hyper::Error::from_errno("the hyper binary beside hyperd (" + hyper.string() + ")");
  return hyper;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = default_host();
  std::optional<std::string> root;
  std::vector<std::string> insecure;
  po::options_description desc;
  desc.add_options()("host,H", po::value<std::string>(&host))("root", po::value<std::string>())(
      "insecure-registry", po::value<std::vector<std::string>>(&insecure)->composing())("help", "")("version,v", "");
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
  const auto path = socket_path(host);
  if (!path.ok()) return fail(path.error().message, 125);
  auto paths = hyper::runtime::resolve_paths(root);
  if (!paths.ok()) return fail(paths.error().message);
  const auto hyper_binary = sibling_hyper();
  if (!hyper_binary.ok()) return fail(hyper_binary.error().message);
  if (auto claimed = claim_socket(*path); !claimed.ok()) return fail(claimed.error().message);

  // Clients that hang up mid-stream are write errors, not signals.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  boost::asio::io_context io;
  boost::asio::local::stream_protocol::acceptor listener(io);
  boost::system::error_code ec;
  listener.open(boost::asio::local::stream_protocol(), ec);
  if (!ec) listener.bind(boost::asio::local::stream_protocol::endpoint(*path), ec);
  if (!ec) listener.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on " + *path + ": " + ec.message());
  ::fcntl(listener.native_handle(), F_SETFD, FD_CLOEXEC);  // not inherited by the monitors hyperd starts
  ::chmod(path->c_str(), 0660);

  api::Daemon daemon(api::DaemonConfig{*paths, insecure, *hyper_binary});
  api::Router router;
  api::add_system_routes(router, daemon);
  api::add_image_routes(router, daemon);
  api::add_container_routes(router, daemon);
  api::add_stream_routes(router, daemon);
  api::add_exec_routes(router, daemon);
  api::add_network_routes(router, daemon);
  api::add_volume_routes(router, daemon);

  // Containers run in their own monitors and keep running after hyperd stops.
  std::thread stopper([&] {
    int sig = 0;
    ::sigwait(&stop, &sig);
    ::unlink(path->c_str());
    ::shutdown(listener.native_handle(), SHUT_RDWR);
    boost::system::error_code ignored;
    listener.close(ignored);
  });
  std::fprintf(stderr, "hyperd: serving the Engine API %s on unix://%s (state in %s)\n", api::kApiVersion, path->c_str(),
               paths->root.c_str());
  api::serve(listener, router);
  stopper.join();
  return 0;
}
