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
                                              torch::ScalarType dtype) {
  auto model = std::make_shared<LlamaForCausalLM>(ParseLlamaConfig(config), torch::dtype(dtype));
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto t = at::normal(0.0, 0.1, item.value().sizes(), gen);
    if (item.key().find("norm") != std::string::npos) t = t + 1.0;
    item.value().copy_(t);
  }
  model->eval();
  return model;
}

std::filesystem::path TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ps_models_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace ps::testing
