// The configuration of a Llama-family decoder (Llama-1/2/3, Mistral, Qwen2/2.5, OpenLlama,
// TinyLlama), parsed from a Hugging Face `config.json`. Both spellings transformers has used are
// accepted: `rope_theta` + `rope_scaling` + `torch_dtype` (up to 4.x) and `rope_parameters` +
// `dtype` (5.x). Anything the decoder cannot reproduce exactly is a ps::Error naming the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace ps {

// RoPE frequency scaling (HF `rope_type`). kDefault: plain θ^(-2i/d); kLinear: positions / factor;
// kLlama3: Llama-3.1's piecewise frequency scaling.
enum class RopeType { kDefault, kLinear, kLlama3 };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                              // linear, llama3
  double low_freq_factor = 1.0;                     // llama3
  double high_freq_factor = 4.0;                    // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct LlamaConfig {
  std::string model_type = "llama";  // llama | mistral | qwen2
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // == num_attention_heads for MHA
  int64_t head_dim = 0;             // hidden_size / num_attention_heads unless given
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool qkv_bias = false;  // biases on q/k/v (Qwen2; Llama's attention_bias)
  bool o_bias = false;    // bias on o_proj (Llama's attention_bias only)
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  std::optional<int64_t> sliding_window;  // Mistral: keys further back than this are masked
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  std::string dtype = "float32";  // the checkpoint's storage dtype, as config.json names it
  // The parsed file, kept so that saving writes back every key we do not interpret.
  nlohmann::json raw;

  int64_t kv_groups() const { return num_attention_heads / num_key_value_heads; }
};

// Parses a config.json object; `where` names the source in error messages.
LlamaConfig ParseLlamaConfig(const nlohmann::json& j, const std::string& where = "config.json");
// Reads DIR/config.json.
LlamaConfig LoadLlamaConfig(const std::filesystem::path& dir);
// The config.json to save next to weights stored as `dtype` ("float32", "bfloat16", "float16"):
// the original keys with dtype updated in whichever spelling the file used.
nlohmann::json LlamaConfigToJson(const LlamaConfig& c);

}  // namespace ps
