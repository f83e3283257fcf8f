// pstool: one binary, many offline tools (prox, eval, pack, ...). `pstool --help` lists them,
// `pstool COMMAND --help` shows a command's options. Exit codes (docs/exit-codes.md): 0 done,
// 1 error, 2 bad command line.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/edit_distance.h"
#include "common/error.h"
#include "worker/tools/command.h"

namespace ps {
std::map<std::string, Command>& Commands() {
  static std::map<std::string, Command> commands;
  return commands;
}
}  // namespace ps

int main(int argc, char** argv) {
  CLI::App app{"pstool: offline tools for ProxSparse models (pstool COMMAND --help for options)"};
  app.name("pstool");
  app.require_subcommand(1);
  std::map<std::string, std::function<int()>> runners;
  std::vector<std::string> raw_args;
  for (auto& [name, c] : ps::Commands()) {
    CLI::App* sub = app.add_subcommand(name, c.summary);
    if (c.setup) {
      runners[name] = c.setup(*sub);
    } else {
      // Its own parser: everything after the command name is handed over untouched.
      sub->prefix_command();
      sub->set_help_flag();
      runners[name] = [&c = c, &raw_args] { return c.run_raw(raw_args); };
    }
  }
  if (argc >= 2 && std::string(argv[1]) == "help") {
    std::cout << app.help();
    return 0;
  }
  if (argc >= 2 && argv[1][0] != '-' && !ps::Commands().count(argv[1])) {
    std::string best;
    size_t best_d = std::string::npos;
    for (const auto& [name, c] : ps::Commands())
      if (size_t d = ps::EditDistance(argv[1], name); d < best_d) best_d = d, best = name;
    std::cerr << "pstool: unknown command \"" << argv[1] << "\"";
    if (best_d <= 2) std::cerr << "; did you mean \"" << best << "\"?";
    std::cerr << "\nRun 'pstool --help' for the commands.\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::string name = app.get_subcommands().front()->get_name();
  raw_args = app.get_subcommands().front()->remaining();
  try {
    return runners.at(name)();
  } catch (const ps::Error& e) {
    std::cerr << "pstool " << name << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pstool " << name << ": internal error: " << e.what() << "\n";
    return 1;
  }
}
