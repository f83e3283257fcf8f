#include "worker/models/llama_config.h"

#include "common/bounded_read.h"
#include "common/error.h"
#include "common/file_util.h"

namespace ps {
namespace {

using json = nlohmann::json;

// A key that must be present and a positive integer.
int64_t RequirePositive(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw Error(where + ": missing key '" + key + "'");
  if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
    throw Error(where + ": '" + key + "' must be a positive integer, got " + it->dump());
  }
  return it->get<int64_t>();
}

template <typename T>
T Optional(const json& j, const char* key, T fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw Error(where + ": '" + key + "' has the wrong type: " + it->dump());
  }
}

std::optional<int64_t> OptionalId(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_array()) {  // Llama-3.x lists several EOS ids; the first is the one we generate with
    if (it->empty()) return std::nullopt;
    if (!(*it)[0].is_number_integer()) throw Error(where + ": '" + key + "' must hold integers");
    return (*it)[0].get<int64_t>();
  }
  if (!it->is_number_integer()) throw Error(where + ": '" + key + "' must be an integer");
  return it->get<int64_t>();
}

// RoPE settings: `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (older).
RopeConfig ParseRope(const json& j, const std::string& where) {
  RopeConfig r;
  json params = json::object();
  if (auto it = j.find("rope_parameters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) throw Error(where + ": 'rope_parameters' must be an object");
    // Per-layer-type parameters ({"full_attention": {...}}) are not a Llama-family layout.
    params = *it;
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) throw Error(where + ": 'rope_scaling' must be an object");
    for (auto& [k, v] : it->items()) params[k] = v;
  }
  std::string ctx = where + ": rope";
  r.theta = Optional<double>(params, "rope_theta",
                             Optional<double>(j, "rope_theta", 10000.0, where), ctx);
  if (!(r.theta > 0)) throw Error(where + ": rope_theta must be > 0");
  std::string type = Optional<std::string>(
      params, "rope_type", Optional<std::string>(params, "type", "default", ctx), ctx);
  if (type == "default") {
    r.type = RopeType::kDefault;
  } else if (type == "linear") {
    r.type = RopeType::kLinear;
    r.factor = Optional<double>(params, "factor", 1.0, ctx);
  } else if (type == "llama3") {
    r.type = RopeType::kLlama3;
    r.factor = Optional<double>(params, "factor", 8.0, ctx);
    r.low_freq_factor = Optional<double>(params, "low_freq_factor", 1.0, ctx);
    r.high_freq_factor = Optional<double>(params, "high_freq_factor", 4.0, ctx);
    r.original_max_position_embeddings =
        Optional<int64_t>(params, "original_max_position_embeddings", 8192, ctx);
    if (!(r.high_freq_factor > r.low_freq_factor)) {
      throw Error(where + ": llama3 rope needs high_freq_factor > low_freq_factor");
    }
  } else {
    throw Error(where + ": unsupported rope_type '" + type +
                "' (supported: default, linear, llama3)");
  }
  if (!(r.factor > 0)) throw Error(where + ": rope factor must be > 0");
  return r;
}

}  // namespace

LlamaConfig ParseLlamaConfig(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": not a JSON object");
  LlamaConfig c;
  c.raw = j;
  c.model_type = Optional<std::string>(j, "model_type", "", where);
  std::string arch;
  if (auto it = j.find("architectures");
      it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    arch = (*it)[0].get<std::string>();
  }
  if (c.model_type.empty()) {
    if (arch == "LlamaForCausalLM") c.model_type = "llama";
    if (arch == "MistralForCausalLM") c.model_type = "mistral";
    if (arch == "Qwen2ForCausalLM") c.model_type = "qwen2";
  }
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
    throw Error(where + ": unsupported architecture (model_type '" + c.model_type +
                "', architectures '" + arch + "'); supported: llama, mistral, qwen2");
  }
  if (!arch.empty() && arch != "LlamaForCausalLM" && arch != "MistralForCausalLM" &&
      arch != "Qwen2ForCausalLM") {
    throw Error(where + ": unsupported architecture '" + arch + "'");
  }
  c.vocab_size = RequirePositive(j, "vocab_size", where);
  c.hidden_size = RequirePositive(j, "hidden_size", where);
  c.intermediate_size = RequirePositive(j, "intermediate_size", where);
  c.num_hidden_layers = RequirePositive(j, "num_hidden_layers", where);
  c.num_attention_heads = RequirePositive(j, "num_attention_heads", where);
  c.num_key_value_heads = c.num_attention_heads;
  if (j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()) {
    c.num_key_value_heads = RequirePositive(j, "num_key_value_heads", where);
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    throw Error(where + ": num_attention_heads (" + std::to_string(c.num_attention_heads) +
                ") is not a multiple of num_key_value_heads (" +
                std::to_string(c.num_key_value_heads) + ")");
  }
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = RequirePositive(j, "head_dim", where);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      throw Error(where + ": hidden_size is not a multiple of num_attention_heads");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) throw Error(where + ": head_dim must be even for RoPE");
  c.max_position_embeddings = Optional<int64_t>(j, "max_position_embeddings", 2048, where);
  c.rms_norm_eps = Optional<double>(j, "rms_norm_eps", 1e-6, where);
  std::string act = Optional<std::string>(j, "hidden_act", "silu", where);
  if (act != "silu") throw Error(where + ": unsupported hidden_act '" + act + "' (only silu)");
  c.rope = ParseRope(j, where);
  if (c.model_type == "qwen2") {
    c.qkv_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
    c.tie_word_embeddings = Optional<bool>(j, "tie_word_embeddings", false, where);
    if (Optional<bool>(j, "use_sliding_window", false, where)) {
      throw Error(where + ": Qwen2 use_sliding_window=true is not supported");
    }
  } else {
    bool attn_bias = Optional<bool>(j, "attention_bias", false, where);
    c.qkv_bias = c.o_bias = attn_bias;
    c.tie_word_embeddings = Optional<bool>(j, "tie_word_embeddings", false, where);
  }
  c.mlp_bias = Optional<bool>(j, "mlp_bias", false, where);
  if (c.model_type == "mistral") {
    auto w = Optional<int64_t>(j, "sliding_window", 0, where);
    if (w > 0) c.sliding_window = w;
  }
  c.bos_token_id = OptionalId(j, "bos_token_id", where);
  c.eos_token_id = OptionalId(j, "eos_token_id", where);
  c.dtype = Optional<std::string>(j, "dtype",
                                  Optional<std::string>(j, "torch_dtype", "float32", where), where);
  return c;
}

LlamaConfig LoadLlamaConfig(const std::filesystem::path& dir) {
  auto path = dir / "config.json";
  if (!std::filesystem::exists(path)) throw Error(path.string() + ": no such file");
  json j;
  try {
    j = json::parse(ReadRegularFileBounded(path, kMaxMetadataBytes, "model config"));
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
  return ParseLlamaConfig(j, path.string());
}

nlohmann::json LlamaConfigToJson(const LlamaConfig& c) {
  json j = c.raw.is_object() ? c.raw : json::object();
  static const char* kArch[][2] = {{"llama", "LlamaForCausalLM"},
                                   {"mistral", "MistralForCausalLM"},
                                   {"qwen2", "Qwen2ForCausalLM"}};
  for (auto& [type, arch] : kArch) {
    if (c.model_type == type) j["architectures"] = json::array({arch});
  }
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type == "llama") j["attention_bias"] = c.qkv_bias;
  if (c.model_type != "qwen2" || c.mlp_bias) j["mlp_bias"] = c.mlp_bias;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_id && !(j.contains("eos_token_id") && j["eos_token_id"].is_array())) {
    j["eos_token_id"] = *c.eos_token_id;
  }
  // RoPE: keep the file's own spelling; a config built from scratch gets the legacy keys, which
  // every transformers version reads.
  if (!j.contains("rope_parameters") || j["rope_parameters"].is_null()) {
    j["rope_theta"] = c.rope.theta;
    if (c.rope.type == RopeType::kDefault && !j.contains("rope_scaling"))
      j["rope_scaling"] = nullptr;
  }
  if (j.contains("dtype")) {
    j["dtype"] = c.dtype;
  } else {
    j["torch_dtype"] = c.dtype;
  }
  return j;
}

}  // namespace ps
