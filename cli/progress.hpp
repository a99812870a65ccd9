// Per-layer progress of pulls and pushes, drawn like Docker's: on a terminal one line per
// layer, redrawn in place with a bar; otherwise a plain line per change of status.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "runtime/image_pull.hpp"

namespace hyper::cli {

class ProgressDisplay {
 public:
  ProgressDisplay(std::FILE* out, bool terminal) : out_(out), terminal_(terminal) {}
  void show(const runtime::ProgressEvent& event);
  // A plain line between the layer lines and whatever follows.
  void line(const std::string& text);

 private:
  void redraw();
  static std::string render(const runtime::ProgressEvent& event);

  std::FILE* out_;
  bool terminal_;
  std::vector<std::pair<std::string, runtime::ProgressEvent>> layers_;  // in first-seen order
  size_t drawn_ = 0;                                                    // lines on screen to rewrite
};

}  // namespace hyper::cli
