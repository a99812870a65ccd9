// The agent: PID 1's event loop after boot. It serves the host over vsock (the boot
// connection the init opened, and connections the host opens to port 1024), runs the
// container's processes, relays their stdio, forwards signals, reaps every zombie, and
// powers the VM off when the container's main process has exited. It never exits on a
// bad message: each one gets an error reply and the loop goes on.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "guest-init/messages.hpp"
#include "guest-init/protocol.hpp"
#include "guest-init/system.hpp"
#include "vmm/unique_fd.hpp"

namespace hyper::guest {

class Agent {
 public:
  Agent(const Ports& ports, uint64_t init_ns);
  [[noreturn]] void run(UniqueFd boot_connection);

 private:
  enum class Role { boot, control, stream };
  struct Connection {
    UniqueFd fd;
    agent::FrameDecoder decoder;
    std::string out;
    Role role = Role::control;
    bool greeted = false;
    bool close_when_flushed = false;
    bool peer_closed = false;
    int process = -1;  // the process whose stdio this connection carries
  };
  struct Process {
    pid_t pid = -1;
    UniqueFd in, out, err;
    std::string pending_in;
    bool close_in_when_flushed = false;
    bool tty = false;
    bool main = false;
    int connection = -1;  // -1: nobody listens any more; output is dropped
    std::optional<int> status;
    std::optional<int> term_signal;
    uint64_t reaped_ns = 0;
  };

  void loop_once();
  void open_boot_connection(UniqueFd fd, bool restored);
  void reconnect_if_restored();
  void accept_connection();
  void read_connection(int id);
  void write_connection(int id);
  void handle_frame(int id, agent::Frame frame);
  void handle_request(int id, const std::string& payload);
  void handle_stream_frame(Connection& conn, const agent::Frame& frame);
  Result<std::string> dispatch(int id, Connection& conn, const Json& request);
  Result<std::string> start_container(int id, const Json& request);
  Result<std::string> exec_process(int id, const Json& request);
  Result<std::string> build_rootfs(const Json& request);
  Result<std::string> signal_process(const Json& request);
  Result<std::string> resize_process(const Json& request);
  Result<std::string> stats() const;
  // FIFREEZE/FITHAW of a volume, for a consistent snapshot on the host.
  Result<std::string> freeze_mount(int id, const Json& request);
  void thaw_frozen_by(int connection);
  void unmount_volumes();
  Result<std::string> export_stopped_layer(int id, const Json& request);
  // `main`: the exporter is the VM's main process (export_disk), whose end powers it off.
  Result<std::string> export_writable_layer(int id, bool main);
  int register_process(SpawnedProcess spawned, bool tty, bool main, int connection);
  void relay_output(int id, bool from_stderr);
  void flush_stdin(Process& process);
  void reap_children();
  void finish_processes();
  void finish(int id, Process& process);
  void send(int connection, agent::Kind kind, std::string_view payload);
  void drop_closed_connections();
  [[nodiscard]] bool connection_backed_up(int connection) const;
  // The VM's work is done: it powers off with `status` once the host has closed the boot
  // connection, or after a grace period.
  void schedule_power_off(int status);
  void maybe_power_off();
  [[noreturn]] void power_off(int status);

  Ports ports_;
  uint64_t init_ns_;
  UniqueFd signal_fd_;
  UniqueFd listener_;
  UniqueFd root_;  // the container's root once started
  std::vector<MountedVolume> mounts_;  // its volumes, host directories and tmpfs mounts
  std::map<std::string, int> frozen_;  // a frozen mount's target -> the connection that froze it
  std::map<int, Connection> connections_;
  std::map<int, Process> processes_;
  std::vector<int> waiters_;  // connections waiting for the main process's exit
  int next_id_ = 0;
  int boot_id_ = -1;
  bool started_ = false;
  std::optional<int> main_status_;
  std::optional<uint64_t> shutdown_deadline_ns_;
  int shutdown_status_ = 0;
};

}  // namespace hyper::guest
