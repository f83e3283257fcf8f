#include "tests/worker/models/tiny_models.h"

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

namespace ps::testing {

nlohmann::json TinyConfig(const std::string& kind) {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"vocab_size", 97},
                      {"hidden_size", 32},
                      {"intermediate_size", 48},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 4},
                      {"num_key_value_heads", 4},
                      {"max_position_embeddings", 64},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"hidden_act", "silu"},
                      {"tie_word_embeddings", false},
                      {"bos_token_id", 1},
                      {"eos_token_id", 2},
                      {"torch_dtype", "float32"}};
  if (kind == "mistral") {
    j["architectures"] = {"MistralForCausalLM"};
    j["model_type"] = "mistral";
    j["num_key_value_heads"] = 2;
    j["sliding_window"] = 4096;
    j["rope_theta"] = 1e6;
  } else if (kind == "qwen2") {
    j["architectures"] = {"Qwen2ForCausalLM"};
    j["model_type"] = "qwen2";
    j["num_key_value_heads"] = 2;
    j["tie_word_embeddings"] = true;
    j["rms_norm_eps"] = 1e-6;
  } else if (kind == "llama3") {
    j.erase("rope_theta");
    j.erase("torch_dtype");
    j["dtype"] = "bfloat16";
    j["num_key_value_heads"] = 1;
    j["rope_parameters"] = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                            {"factor", 8.0},           {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 16}};
  }
  return j;
}

std::shared_ptr<LlamaForCausalLM> RandomModel(const nlohmann::json& config, uint64_t seed,
                                              torch::ScalarType dtype, double std) {
  auto model = std::make_shared<LlamaForCausalLM>(ParseLlamaConfig(config), torch::dtype(dtype));
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const bool norm = item.key().find("norm") != std::string::npos;
    auto t = at::normal(0.0, norm ? 0.1 : std, item.value().sizes(), gen);
    if (norm) t = t + 1.0;
    item.value().copy_(t);
  }
  model->eval();
  return model;
}

std::shared_ptr<LlamaForCausalLM> TinyModel(uint64_t seed, torch::ScalarType dtype) {
  return RandomModel(TinyConfig("mistral"), seed, dtype, 0.3);
}

int64_t TinyVocab() { return TinyConfig("mistral").at("vocab_size").get<int64_t>(); }

std::vector<std::vector<int32_t>> TinySamples(int n, int len, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) {
    auto t = at::randint(0, TinyVocab(), {len + i % 3}, gen, torch::kInt32);
    out.emplace_back(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel());
  }
  return out;
}

torch::Tensor NextTokenLoss(LlamaForCausalLM& model, const torch::Tensor& ids) {
  auto logits = model.forward(ids);
  const int64_t len = ids.size(1);
  auto pred = logits.narrow(1, 0, len - 1).reshape({-1, logits.size(-1)});
  auto target = ids.narrow(1, 1, len - 1).reshape({-1});
  return torch::nll_loss(torch::log_softmax(pred, -1), target);
}

std::filesystem::path TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ps_models_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace ps::testing
