#include "cli/progress.hpp"

#include <algorithm>

#include "cli/human.hpp"

namespace hyper::cli {
namespace {

constexpr int kBarWidth = 50;

bool is_transfer(const std::string& status) { return status == "Downloading" || status == "Pushing"; }

}  // namespace

std::string ProgressDisplay::render(const runtime::ProgressEvent& event) {
  std::string text = event.id.empty() ? event.status : event.id + ": " + event.status;
  if (!is_transfer(event.status) || event.total == 0) return text;
  const auto done = static_cast<int>(kBarWidth * std::min(event.current, event.total) / event.total);
  std::string bar(static_cast<size_t>(kBarWidth), ' ');
  std::fill_n(bar.begin(), done, '=');
  if (done < kBarWidth) bar[static_cast<size_t>(done)] = '>';
  return text + " [" + bar + "]  " + human_size(event.current) + "/" + human_size(event.total);
}

void ProgressDisplay::show(const runtime::ProgressEvent& event) {
  auto it = std::find_if(layers_.begin(), layers_.end(), [&](const auto& entry) { return entry.first == event.id; });
  const bool changed = it == layers_.end() || it->second.status != event.status;
  if (it == layers_.end()) {
    layers_.emplace_back(event.id, event);
  } else {
    it->second = event;
  }
  if (terminal_) {
    redraw();
  } else if (changed && !is_transfer(event.status)) {
    std::fprintf(out_, "%s\n", render(event).c_str());
    std::fflush(out_);
  }
}

void ProgressDisplay::redraw() {
  // Up to the first layer line, then each line cleared and written again.
  if (drawn_ > 0) std::fprintf(out_, "\x1b[%zuA", drawn_);
  for (const auto& [id, event] : layers_) std::fprintf(out_, "\x1b[2K\r%s\n", render(event).c_str());
  drawn_ = layers_.size();
  std::fflush(out_);
}

void ProgressDisplay::line(const std::string& text) {
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
  // What was drawn stays above; new layers start below this line.
  layers_.clear();
  drawn_ = 0;
}

}  // namespace hyper::cli
