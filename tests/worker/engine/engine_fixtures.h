// Engine test fixtures: a tiny random-weight Llama (GQA) saved as a Hugging Face directory with the
// default model's SentencePiece tokenizer (vocabulary 8192, so that real text tokenizes), and a
// small calibration file.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/progress.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/models/llama_checkpoint.h"

namespace ps::testing {

inline std::filesystem::path SharedData() { return PS_SHARED_DATA; }

inline void WriteTinyModel(const std::filesystem::path& dir, int64_t layers = 2,
                           uint64_t seed = 1) {
  nlohmann::json cfg = TinyConfig("llama");
  cfg["num_key_value_heads"] = 2;
  cfg["vocab_size"] = 8192;
  cfg["hidden_size"] = 64;
  cfg["intermediate_size"] = 128;
  cfg["num_hidden_layers"] = layers;
  cfg["max_position_embeddings"] = 512;
  auto model = RandomModel(cfg, seed, torch::kFloat32, 0.05);
  std::filesystem::create_directories(dir);
  SaveOptions o;
  o.copy_files_from = SharedData() / "codelm-19m";
  SaveLlama(*model, dir, o);
  // Keep only the tokenizer from the real model's side files, with the tiny config.
  WriteFileAtomic(dir / "config.json", cfg.dump(2));
}

// Collects events; asks to cancel after `cancel_after` progress events (0 = never).
class RecordingSink : public ProgressSink {
 public:
  explicit RecordingSink(int cancel_after = 0) : cancel_after_(cancel_after) {}
  // Training steps in `events` (what the tests count and cancel after); evaluation progress
  // (unit "windows") apart, so an evaluation's reports never shift the step counts.
  void Progress(const ProgressEvent& e) override {
    (e.unit == "windows" ? eval_events : events).push_back(e);
  }
  void Log(std::string_view) override {}
  void Checkpoint(int64_t step, const std::filesystem::path&) override {
    checkpoints.push_back(step);
  }
  void Result(bool, std::string_view, const std::filesystem::path&) override {}
  bool CancelRequested() override {
    return cancel_after_ > 0 && static_cast<int>(events.size()) >= cancel_after_;
  }
  std::vector<ProgressEvent> events, eval_events;
  std::vector<int64_t> checkpoints;

 private:
  int cancel_after_;
};

// A few hundred lines of Python-like text as JSON lines.
inline void WriteCalibration(const std::filesystem::path& file, int docs = 12) {
  std::string out;
  for (int d = 0; d < docs; ++d) {
    std::string text;
    for (int i = 0; i < 40; ++i)
      text += "def f" + std::to_string(d) + "_" + std::to_string(i) + "(x, y):\n    return x * " +
              std::to_string(i) + " + y\n\n";
    out += nlohmann::json{{"text", text}}.dump() + "\n";
  }
  WriteFileAtomic(file, out);
}

}  // namespace ps::testing
