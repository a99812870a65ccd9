// Where the runtime keeps its state: one root directory holding the image store and one
// directory per container, so that every CLI invocation finds the same state without a
// daemon.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "vmm/result.hpp"

namespace hyper::runtime {

struct Paths {
  std::filesystem::path root;

  [[nodiscard]] std::filesystem::path images() const { return root / "images"; }
  [[nodiscard]] std::filesystem::path containers() const { return root / "containers"; }
  [[nodiscard]] std::filesystem::path networks() const { return root / "networks"; }
  [[nodiscard]] std::filesystem::path volumes() const { return root / "volumes"; }
  [[nodiscard]] std::filesystem::path usage() const { return root / "usage"; }  // runtime/usage/ledger.hpp
  [[nodiscard]] std::filesystem::path config() const { return root / "config.json"; }
};

// The root is, in order: `--root`, $HYPER_ROOT, /var/lib/hyper for root, else
// $XDG_DATA_HOME/hyper or ~/.local/share/hyper. Creates it (0700) when missing.
Result<Paths> resolve_paths(const std::optional<std::string>& root_flag);

}  // namespace hyper::runtime
