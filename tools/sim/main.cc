// kvtier-sim: see tools/sim/README.md.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "tools/sim/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto o = kvt::sim::ParseArgs(args);
  if (!o.ok()) {
    std::cerr << "kvtier-sim: " << o.status().message() << "\n";
    return 2;
  }
  // RunCli reports failures as statuses; an exception escaping it is a bug, reported, not an abort.
  try {
    return kvt::sim::RunCli(*o, argc > 0 ? argv[0] : "", std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "kvtier-sim: unexpected error: " << e.what() << "\n";
    return 1;
  }
}
