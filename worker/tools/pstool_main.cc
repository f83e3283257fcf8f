// pstool: one binary, many offline tools (prox, eval, pack, ...). `pstool help` lists them.
#include <iostream>

#include "common/error.h"
#include "worker/tools/command.h"

namespace ps {
std::map<std::string, Command>& Commands() {
  static std::map<std::string, Command> commands;
  return commands;
}
}  // namespace ps

namespace {
void Usage(std::ostream& os) {
  os << "usage: pstool <command> [options]   (pstool <command> --help for its "
        "options)\n\ncommands:\n";
  for (const auto& [name, c] : ps::Commands()) os << "  " << name << "  " << c.summary << "\n";
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "help" || std::string(argv[1]) == "--help") {
    Usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  auto it = ps::Commands().find(argv[1]);
  if (it == ps::Commands().end()) {
    std::cerr << "pstool: unknown command '" << argv[1] << "'\n";
    Usage(std::cerr);
    return 2;
  }
  try {
    return it->second.run(std::vector<std::string>(argv + 2, argv + argc));
  } catch (const ps::Error& e) {
    std::cerr << "pstool " << argv[1] << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pstool " << argv[1] << ": internal error: " << e.what() << "\n";
    return 1;
  }
}
