// Levenshtein distance, for "did you mean ..." on a mistyped command (psctl, pstool).
#pragma once

#include <cstddef>
#include <string>

namespace ps {

// The fewest single-character insertions, deletions and substitutions that turn a into b.
size_t EditDistance(const std::string& a, const std::string& b);

}  // namespace ps
