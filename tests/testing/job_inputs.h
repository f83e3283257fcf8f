// Test helper: the smallest inputs CheckJobInputs accepts, for tests of the parser and the
// coordinator that never load a model: DIR/model/config.json (target dimensions multiples of 4
// and 8, and the shape keys psd's memory plan reads), a placeholder DIR/model/model.safetensors, and DIR/calib.txt.
#pragma once

#include <filesystem>
#include <string>

#include "common/file_util.h"

namespace ps::testing {

inline void WriteCheckableInputs(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir / "model");
  WriteFileAtomic(dir / "model/config.json",
                  R"({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                      "head_dim": 16, "num_hidden_layers": 2, "vocab_size": 256})");
  WriteFileAtomic(dir / "model/model.safetensors", "not a checkpoint: nothing loads it");
  WriteFileAtomic(dir / "calib.txt", "some calibration text\n");
}

}  // namespace ps::testing
