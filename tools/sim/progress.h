// A progress bar on stderr: drawn only when stderr is a terminal and the run has lasted more than
// a second, redrawn at most ten times a second, erased when done.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kvt::sim {

class Progress {
 public:
  explicit Progress(std::string label, bool enabled = true);
  ~Progress() { Done(); }
  // Safe to call very often: it reads the clock only every 16th call.
  void Update(uint64_t done, uint64_t total);
  void Done();
  void set_label(std::string l) { label_ = std::move(l); }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  uint32_t calls_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace kvt::sim
