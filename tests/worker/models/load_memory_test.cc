// Loading must not need much more memory than the model itself: the checkpoint is memory-mapped
// and each slice's pages are released after it is copied. Measured in a fresh process as the rise
// of its peak RSS (VmHWM, reset through /proc/self/clear_refs) over a ~220 MB bf16 checkpoint.
#include <gtest/gtest.h>

#include <fstream>

#include "common/file_util.h"
#include "common/process_memory.h"
#include "tests/testing/measure_in_child.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/io/tensor_io.h"
#include "worker/models/llama_checkpoint.h"

namespace ps {
namespace {

TEST(LoadMemory, PeakRssStaysNearCheckpointSize) {
  // Llama-shaped, mid-size: 8 layers of hidden 1024 / MLP 2816, small vocab (~111M params).
  nlohmann::json config = testing::TinyConfig("llama");
  config["hidden_size"] = 1024;
  config["intermediate_size"] = 2816;
  config["num_hidden_layers"] = 8;
  config["num_attention_heads"] = 16;
  config["num_key_value_heads"] = 16;
  config["vocab_size"] = 4096;
  config["torch_dtype"] = "bfloat16";
  auto dir = testing::TempDir("load_memory");
  uint64_t bytes = 0;
  {
    LlamaForCausalLM model(ParseLlamaConfig(config), torch::dtype(torch::kBFloat16));
    torch::NoGradGuard no_grad;
    for (auto& item : model.named_parameters()) item.value().fill_(0.5);
    SaveLlama(model, dir);
    bytes = std::filesystem::file_size(dir / "model.safetensors");
  }
  ASSERT_GT(bytes, 200u << 20);
  // Measure in a fresh process (this binary, running only the child test below).
  auto out = dir / "rss.txt";
  const auto result = testing::MeasureInChild(
      "LoadMemoryChild.Measure",
      {{"PS_LOAD_MEMORY_DIR", dir.string()}, {"PS_LOAD_MEMORY_OUT", out.string()}}, out);
  ASSERT_GT(result[0], 0);
  double rise = static_cast<double>(result[1] - result[0]) * 1024.0;
  std::printf("checkpoint %.1f MB, peak RSS rise while loading %.1f MB (%.3fx)\n", bytes / 1e6,
              rise / 1e6, rise / static_cast<double>(bytes));
  EXPECT_LT(rise, 1.1 * static_cast<double>(bytes));
  EXPECT_GT(rise, 0.9 * static_cast<double>(bytes));  // the model itself is resident
  std::filesystem::remove_all(dir);
}

// The measuring half: runs only when the test above starts it.
TEST(LoadMemoryChild, Measure) {
  const char* dir = std::getenv("PS_LOAD_MEMORY_DIR");
  const char* out = std::getenv("PS_LOAD_MEMORY_OUT");
  if (!dir || !out) GTEST_SKIP() << "started by LoadMemory.PeakRssStaysNearCheckpointSize";
  ResetPeakRss();
  int64_t before = ProcStatusKb("VmRSS");
  auto model = LoadLlama(dir, {torch::kBFloat16, torch::kCPU});
  int64_t peak = ProcStatusKb("VmHWM");
  std::ofstream(out) << before << " " << peak << "\n";
}

}  // namespace
}  // namespace ps
