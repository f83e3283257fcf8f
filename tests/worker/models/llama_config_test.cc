#include "worker/models/llama_config.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/worker/models/tiny_models.h"

namespace ps {
namespace {

using nlohmann::json;
using testing::TinyConfig;

// Asserts that parsing throws ps::Error whose message contains `needle`.
void ExpectError(const json& j, const std::string& needle) {
  try {
    ParseLlamaConfig(j);
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(LlamaConfig, Llama2LegacySpelling) {
  auto c = ParseLlamaConfig(TinyConfig("llama"));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.kv_groups(), 1);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.rope.type, RopeType::kDefault);
  EXPECT_EQ(c.dtype, "float32");
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
}

TEST(LlamaConfig, DefaultModelNewestSpelling) {
  // The shape of ../shared/data/codelm-19m/config.json (transformers 5).
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"dtype", "bfloat16"},
            {"head_dim", 64},
            {"hidden_size", 384},
            {"intermediate_size", 1024},
            {"num_attention_heads", 6},
            {"num_hidden_layers", 8},
            {"num_key_value_heads", 2},
            {"vocab_size", 8192},
            {"rms_norm_eps", 1e-5},
            {"pad_token_id", nullptr},
            {"rope_parameters", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}};
  auto c = ParseLlamaConfig(j);
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.kv_groups(), 3);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
}

TEST(LlamaConfig, Llama3RopeScalingBothSpellings) {
  auto c = ParseLlamaConfig(TinyConfig("llama3"));
  EXPECT_EQ(c.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope.factor, 8.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 16);
  // Llama-3.1 as transformers 4 wrote it: rope_theta + rope_scaling, eos as a list.
  json j = TinyConfig("llama");
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  j["eos_token_id"] = {128001, 128008, 128009};
  auto c2 = ParseLlamaConfig(j);
  EXPECT_EQ(c2.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c2.rope.factor, 32.0);
  EXPECT_DOUBLE_EQ(c2.rope.theta, 500000.0);
  EXPECT_EQ(c2.eos_token_id, 128001);
  // Older "type" key, linear scaling.
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(ParseLlamaConfig(j).rope.type, RopeType::kLinear);
}

TEST(LlamaConfig, MistralAndQwen2) {
  auto m = ParseLlamaConfig(TinyConfig("mistral"));
  EXPECT_EQ(m.model_type, "mistral");
  EXPECT_EQ(m.kv_groups(), 2);
  ASSERT_TRUE(m.sliding_window.has_value());
  EXPECT_EQ(*m.sliding_window, 4096);
  auto q = ParseLlamaConfig(TinyConfig("qwen2"));
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_FALSE(q.o_bias);
  EXPECT_TRUE(q.tie_word_embeddings);
  EXPECT_FALSE(q.sliding_window.has_value());
  // Llama's attention_bias puts biases on o_proj too.
  json j = TinyConfig("llama");
  j["attention_bias"] = true;
  auto l = ParseLlamaConfig(j);
  EXPECT_TRUE(l.qkv_bias);
  EXPECT_TRUE(l.o_bias);
}

TEST(LlamaConfig, OpenLlamaAndTinyLlamaShapes) {
  // OpenLLaMA 3B: no num_key_value_heads key (MHA), head_dim from hidden/heads.
  json open = {{"architectures", {"LlamaForCausalLM"}},
               {"model_type", "llama"},
               {"hidden_size", 3200},
               {"intermediate_size", 8640},
               {"num_attention_heads", 32},
               {"num_hidden_layers", 26},
               {"vocab_size", 32000},
               {"rms_norm_eps", 1e-6},
               {"torch_dtype", "float16"}};
  auto o = ParseLlamaConfig(open);
  EXPECT_EQ(o.num_key_value_heads, 32);
  EXPECT_EQ(o.head_dim, 100);
  EXPECT_DOUBLE_EQ(o.rope.theta, 10000.0);
  EXPECT_EQ(o.dtype, "float16");
  // TinyLlama 1.1B: GQA 32/4.
  json tiny = open;
  tiny["hidden_size"] = 2048;
  tiny["intermediate_size"] = 5632;
  tiny["num_hidden_layers"] = 22;
  tiny["num_key_value_heads"] = 4;
  EXPECT_EQ(ParseLlamaConfig(tiny).kv_groups(), 8);
}

TEST(LlamaConfig, Errors) {
  json j = TinyConfig("llama");
  j["model_type"] = "gpt2";
  j["architectures"] = {"GPT2LMHeadModel"};
  ExpectError(j, "unsupported architecture");
  j = TinyConfig("llama");
  j.erase("hidden_size");
  ExpectError(j, "missing key 'hidden_size'");
  j = TinyConfig("llama");
  j["num_key_value_heads"] = 3;
  ExpectError(j, "not a multiple of num_key_value_heads");
  j = TinyConfig("llama");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  ExpectError(j, "unsupported rope_type 'yarn'");
  j = TinyConfig("llama");
  j["hidden_act"] = "gelu";
  ExpectError(j, "hidden_act");
  j = TinyConfig("llama");
  j["vocab_size"] = -5;
  ExpectError(j, "'vocab_size' must be a positive integer");
  j = TinyConfig("llama");
  j["rms_norm_eps"] = "small";
  ExpectError(j, "'rms_norm_eps' has the wrong type");
  ExpectError(json::array(), "not a JSON object");
}

TEST(LlamaConfig, ToJsonKeepsSpellingAndRoundTrips) {
  for (const char* kind : {"llama", "mistral", "qwen2", "llama3"}) {
    auto c = ParseLlamaConfig(TinyConfig(kind));
    c.dtype = "bfloat16";
    json out = LlamaConfigToJson(c);
    auto back = ParseLlamaConfig(out);
    EXPECT_EQ(back.dtype, "bfloat16") << kind;
    EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads) << kind;
    EXPECT_EQ(back.rope.type, c.rope.type) << kind;
    EXPECT_DOUBLE_EQ(back.rope.theta, c.rope.theta) << kind;
    EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings) << kind;
    EXPECT_EQ(back.qkv_bias, c.qkv_bias) << kind;
    // transformers-5 files keep rope_parameters/dtype, older ones rope_theta/torch_dtype.
    EXPECT_EQ(out.contains("dtype"), std::string(kind) == "llama3") << kind;
    EXPECT_EQ(out.contains("torch_dtype"), std::string(kind) != "llama3") << kind;
  }
}

}  // namespace
}  // namespace ps
