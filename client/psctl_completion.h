// Shell completion scripts for psctl (`psctl completion bash|zsh`), generated from the command
// line definition itself so that they list exactly the verbs and flags psctl accepts.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace ps {

// The script for `shell` ("bash" or "zsh"); throws ps::Error for any other shell.
std::string CompletionScript(const CLI::App& app, const std::string& shell);

}  // namespace ps
