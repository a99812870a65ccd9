// One client connection of hyperd, plain (a Unix socket) or TLS (TCP, which hyperd serves
// only with TLS and client certificates). The HTTP layer reads requests through it, and
// handlers that take a connection over (attach, exec) read and write it directly.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::runtime::api {

class Transport {
 public:
  virtual ~Transport() = default;
  // Blocks until some bytes arrive: their count, 0 at the client's end of input, -1 on error.
  virtual long read(void* buf, size_t size) = 0;
  virtual bool write(std::string_view bytes) = 0;
  // Whether read() has something (bytes or the end of input) without waiting for the network.
  virtual bool readable() = 0;
  // Whether the client closed its connection (its end of input alone is not that).
  virtual bool hung_up();
  virtual void shutdown_write() = 0;
  [[nodiscard]] int fd() const { return fd_.get(); }

 protected:
  explicit Transport(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// A connected socket as it is.
std::unique_ptr<Transport> plain_transport(UniqueFd fd);

// What a TLS listener needs: its certificate and key, and the CA its clients'
// certificates must chain to (docker's --tlsverify).
struct TlsFiles {
  std::string ca, cert, key;
};

class TlsServer {
 public:
  // Loads and checks the files now, so a bad one stops hyperd at start.
  static Result<TlsServer> create(const TlsFiles& files);
  TlsServer(TlsServer&&) noexcept;
  TlsServer& operator=(TlsServer&&) noexcept;
  ~TlsServer();
  // The handshake (at most `timeout_ms`); a client without a certificate the CA signed is refused.
  [[nodiscard]] Result<std::unique_ptr<Transport>> accept(UniqueFd fd, int timeout_ms) const;

 private:
  explicit TlsServer(SSL_CTX* context) : context_(context) {}
  SSL_CTX* context_ = nullptr;
};

}  // namespace hyper::runtime::api
