// Moves one process's stdio between the agent and this process: output frames to our
// stdout/stderr (and the container's log), our stdin and the signals we receive to the
// process, until the agent reports its exit status. `hyper run` and `hyper exec` share it.
#pragma once

#include <optional>
#include <string>

#include "runtime/agent_client.hpp"

namespace hyper::runtime {

class LogWriter;

struct RelayOptions {
  bool attach_stdout = true;  // write output frames to our stdout/stderr
  bool forward_stdin = false;
  bool tty = false;
  LogWriter* log = nullptr;   // not owned
  int stopped_fd = -1;        // readable when the VM is gone: stop waiting
  int signal_fd = -1;         // a signalfd whose signals go to the process
  // A listening Unix socket whose clients (hyperd's attach and resize) send the process
  // stdin, stdin-eof and resize frames; -1 for none.
  int input_listen_fd = -1;
};

struct RelayOutcome {
  std::optional<int> status;  // absent when the process's end was never reported
  std::string error;
};

RelayOutcome relay_stdio(AgentConnection& conn, const RelayOptions& options);

// Blocks the signals a foreground session forwards and returns a signalfd for them.
Result<UniqueFd> forwarded_signals_fd();

// The terminal's size, if stdin is one.
std::optional<std::pair<uint16_t, uint16_t>> terminal_size();

// Raw mode for a -t session; restores the terminal on every exit path.
class RawTerminal {
 public:
  RawTerminal();
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

}  // namespace hyper::runtime
