// pstool bench-sparse's end-to-end mode (the default): dense vs 2:4 for a whole model on one GPU
// (docs/sparse-inference.md). Built only with a CUDA LibTorch (worker/sparse/CMakeLists.txt).
#pragma once

#include <string>
#include <vector>

namespace ps {

extern const char* kSparseE2eHelp;
int RunSparseE2e(const std::vector<std::string>& args);

}  // namespace ps
