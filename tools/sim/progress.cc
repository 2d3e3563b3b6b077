#include "tools/sim/progress.h"

#include <unistd.h>

#include <cstdio>

namespace kvt::sim {

Progress::Progress(std::string label, bool enabled)
    : label_(std::move(label)),
      enabled_(enabled && isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::Update(uint64_t done, uint64_t total) {
  if (!enabled_ || (calls_++ & 15) != 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - start_ < std::chrono::seconds(1)) return;
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  const double secs = std::chrono::duration<double>(now - start_).count();
  if (total > 0) {
    const double f = done >= total ? 1.0 : static_cast<double>(done) / total;
    const int width = 30, fill = static_cast<int>(f * width);
    std::string bar(fill, '#');
    bar.resize(width, '.');
    const double eta = f > 0 ? secs * (1 - f) / f : 0;
    std::fprintf(stderr, "\r%s [%s] %5.1f%% %llu/%llu  %.0fs left ", label_.c_str(), bar.c_str(),
                 f * 100, static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total), eta);
  } else {
    std::fprintf(stderr, "\r%s %llu requests  %.0fs ", label_.c_str(),
                 static_cast<unsigned long long>(done), secs);
  }
  std::fflush(stderr);
}

void Progress::Done() {
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace kvt::sim
