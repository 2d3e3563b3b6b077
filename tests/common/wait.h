// Waiting on a condition in tests: counters and states that another thread or process moves.
#pragma once

#include <chrono>
#include <thread>

namespace kvt::testing {

// Waits until cond() holds; the limit only bounds a hang (a loaded machine may be slow).
template <typename F>
bool WaitUntil(F cond, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace kvt::testing
