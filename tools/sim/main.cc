// kvtier-sim: see tools/sim/README.md.
#include <iostream>
#include <string>
#include <vector>

#include "tools/sim/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto o = kvt::sim::ParseArgs(args);
  if (!o.ok()) {
    std::cerr << "kvtier-sim: " << o.status().message() << "\n";
    return 1;
  }
  return kvt::sim::RunCli(*o, argc > 0 ? argv[0] : "", std::cout, std::cerr);
}
