#include "runtime/api/transport.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

namespace hyper::runtime::api {
namespace {

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(UniqueFd fd) : Transport(std::move(fd)) {}

  long read(void* buf, size_t size) override {
    for (;;) {
      const ssize_t n = ::read(fd(), buf, size);
      if (n >= 0 || errno != EINTR) return n;
    }
  }

  bool write(std::string_view bytes) override {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  bool readable() override {
    pollfd p{fd(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }

  void shutdown_write() override { ::shutdown(fd(), SHUT_WR); }
};

std::string openssl_error(const std::string& what) {
  const unsigned long code = ::ERR_get_error();
  char text[256] = "unknown error";
  if (code != 0) ::ERR_error_string_n(code, text, sizeof text);
  return what + ": " + text;
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(UniqueFd fd, SSL* ssl) : Transport(std::move(fd)), ssl_(ssl) {}
  ~TlsTransport() override {
    ::SSL_shutdown(ssl_);
    ::SSL_free(ssl_);
  }
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  long read(void* buf, size_t size) override {
    size_t got = 0;
    if (::SSL_read_ex(ssl_, buf, size, &got) == 1) return static_cast<long>(got);
    const int error = ::SSL_get_error(ssl_, 0);
    ::ERR_clear_error();
    return error == SSL_ERROR_ZERO_RETURN ? 0 : -1;  // close_notify: the client's end of input
  }

  bool write(std::string_view bytes) override {
    size_t written = 0;
    const bool ok = bytes.empty() || ::SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written) == 1;
    if (!ok) ::ERR_clear_error();
    return ok;
  }

  // A record may arrive in pieces: readable() may then be true while read() still waits
  // for the rest of it, which a client that sends whole records never makes long.
  bool readable() override {
    if (::SSL_pending(ssl_) > 0) return true;
    pollfd p{fd(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }

  void shutdown_write() override { ::SSL_shutdown(ssl_); }

 private:
  SSL* ssl_;
};

void set_timeouts(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

bool Transport::hung_up() {
  pollfd p{fd(), 0, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

std::unique_ptr<Transport> plain_transport(UniqueFd fd) { return std::make_unique<PlainTransport>(std::move(fd)); }

Result<TlsServer> TlsServer::create(const TlsFiles& files) {
  SSL_CTX* context = ::SSL_CTX_new(::TLS_server_method());
  if (context == nullptr) return make_error(Errc::io, openssl_error("TLS"));
  TlsServer server(context);
  ::SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  if (::SSL_CTX_use_certificate_chain_file(context, files.cert.c_str()) != 1)
    return make_error(Errc::invalid_argument, openssl_error("--tlscert " + files.cert));
  if (::SSL_CTX_use_PrivateKey_file(context, files.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return make_error(Errc::invalid_argument, openssl_error("--tlskey " + files.key));
  if (::SSL_CTX_check_private_key(context) != 1)
    return make_error(Errc::invalid_argument, "--tlskey " + files.key + " is not the key of --tlscert " + files.cert);
  if (::SSL_CTX_load_verify_locations(context, files.ca.c_str(), nullptr) != 1)
    return make_error(Errc::invalid_argument, openssl_error("--tlscacert " + files.ca));
  // Mutual TLS: the Engine API is root on this host, so every client proves who it is.
  ::SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return server;
}

TlsServer::TlsServer(TlsServer&& other) noexcept : context_(other.context_) { other.context_ = nullptr; }

TlsServer& TlsServer::operator=(TlsServer&& other) noexcept {
  std::swap(context_, other.context_);
  return *this;
}

TlsServer::~TlsServer() {
  if (context_ != nullptr) ::SSL_CTX_free(context_);
}

Result<std::unique_ptr<Transport>> TlsServer::accept(UniqueFd fd, int timeout_ms) const {
  SSL* ssl = ::SSL_new(context_);
  if (ssl == nullptr) return make_error(Errc::io, openssl_error("TLS"));
  ::SSL_set_fd(ssl, fd.get());
  set_timeouts(fd.get(), timeout_ms);
  if (::SSL_accept(ssl) != 1) {
    const std::string error = openssl_error("TLS handshake");
    ::SSL_free(ssl);
    return make_error(Errc::permission_denied, error);
  }
  set_timeouts(fd.get(), 0);  // a hijacked stream may be quiet for as long as a container runs
  return std::unique_ptr<Transport>(std::make_unique<TlsTransport>(std::move(fd), ssl));
}

}  // namespace hyper::runtime::api
