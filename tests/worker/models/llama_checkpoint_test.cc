// HF directory load/save (single file, sharded, dtype conversion, tied embeddings), llama2.c
// conversion, and a clear ps::Error for every kind of bad checkpoint.
#include "worker/models/llama_checkpoint.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/io/tensor_io.h"
#include "worker/models/llama2c.h"

namespace ps {
namespace {

using testing::RandomModel;
using testing::TempDir;
using testing::TinyConfig;

void ExpectSameParams(LlamaForCausalLM& a, LlamaForCausalLM& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (auto& item : pa) {
    auto* other = pb.find(item.key());
    ASSERT_NE(other, nullptr) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), *other)) << item.key();
  }
}

template <typename F>
void ExpectError(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, SaveLoadIsBitExact) {
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto model = RandomModel(TinyConfig(GetParam()), 21, dtype);
    auto dir = TempDir("rt_" + GetParam());
    SaveLlama(*model, dir);
    EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors"));
    auto back = LoadLlama(dir, {dtype, torch::kCPU});
    ExpectSameParams(*model, *back);
    EXPECT_EQ(back->config().dtype, HfDTypeName(dtype));
    // Saved tensors carry the HF names and metadata transformers checks.
    auto ckpt = Checkpoint::Open(dir);
    EXPECT_TRUE(ckpt.Contains("model.layers.1.mlp.gate_proj.weight"));
    EXPECT_EQ(ckpt.Contains("lm_head.weight"), !model->config().tie_word_embeddings);
    EXPECT_EQ(ckpt.files()[0]->metadata().at("format"), "pt");
  }
}

INSTANTIATE_TEST_SUITE_P(Families, RoundTrip,
                         ::testing::Values("llama", "mistral", "qwen2", "llama3"));

TEST(Checkpoint, ShardedSaveAndDtypeConversionOnLoad) {
  auto model = RandomModel(TinyConfig("mistral"), 22);
  auto dir = TempDir("sharded");
  SaveOptions opts;
  opts.dtype = torch::kBFloat16;
  opts.max_shard_bytes = 8000;
  SaveLlama(*model, dir, opts);
  ASSERT_TRUE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
  auto ckpt = Checkpoint::Open(dir);
  EXPECT_GT(ckpt.files().size(), 2u);
  EXPECT_EQ(ckpt.Info("model.norm.weight").dtype, DType::kBF16);
  // bf16 on disk, fp32 in memory: exactly the bf16-rounded values.
  auto back = LoadLlama(dir, {torch::kFloat32, torch::kCPU});
  auto rounded = model->model->embed_tokens->weight.to(torch::kBFloat16).to(torch::kFloat32);
  EXPECT_TRUE(torch::equal(back->model->embed_tokens->weight, rounded));
  EXPECT_EQ(back->config().dtype, "bfloat16");
}

TEST(Checkpoint, CopiesTokenizerFiles) {
  auto model = RandomModel(TinyConfig("llama"), 23);
  auto src = TempDir("tok_src"), dst = TempDir("tok_dst");
  WriteFileAtomic(src / "tokenizer.model", "not really a model");
  WriteFileAtomic(src / "tokenizer_config.json", "{}");
  SaveOptions opts;
  opts.copy_files_from = src;
  SaveLlama(*model, dst, opts);
  EXPECT_EQ(ReadFile(dst / "tokenizer.model"), "not really a model");
  EXPECT_TRUE(std::filesystem::exists(dst / "tokenizer_config.json"));
}

TEST(Checkpoint, TiedModelToleratesStoredLmHeadAndRopeBuffers) {
  auto model = RandomModel(TinyConfig("qwen2"), 24);
  auto dir = TempDir("tied_extra");
  WriteFileAtomic(dir / "config.json", TinyConfig("qwen2").dump());
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value());
  tensors.emplace_back("lm_head.weight", model->model->embed_tokens->weight);
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({4}));
  SaveTensors(dir / "model.safetensors", tensors);
  ExpectSameParams(*model, *LoadLlama(dir));
}

// Writes `config` and the tensors of `model` (after `edit`) into a fresh directory.
std::filesystem::path WriteEdited(
    const std::string& name, const nlohmann::json& config, LlamaForCausalLM& model,
    const std::function<void(std::vector<std::pair<std::string, torch::Tensor>>&)>& edit) {
  auto dir = TempDir(name);
  WriteFileAtomic(dir / "config.json", config.dump());
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value());
  edit(tensors);
  SaveTensors(dir / "model.safetensors", tensors);
  return dir;
}

TEST(CheckpointErrors, MissingTensor) {
  auto model = RandomModel(TinyConfig("llama"), 25);
  auto dir = WriteEdited("missing", TinyConfig("llama"), *model, [](auto& t) {
    std::erase_if(t, [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; });
  });
  ExpectError([&] { LoadLlama(dir); },
              "lacks 1 tensor(s) the config needs: model.layers.1.mlp.up_proj.weight");
}

TEST(CheckpointErrors, ShapeMismatchAgainstConfig) {
  auto model = RandomModel(TinyConfig("llama"), 26);
  auto config = TinyConfig("llama");
  config["intermediate_size"] = 64;  // the weights say 48
  auto dir = WriteEdited("shape", config, *model, [](auto&) {});
  ExpectError([&] { LoadLlama(dir); }, "has shape [48, 32] but the config implies [64, 32]");
}

TEST(CheckpointErrors, UnexpectedTensor) {
  auto model = RandomModel(TinyConfig("llama"), 27);
  auto dir = WriteEdited("unexpected", TinyConfig("llama"), *model, [](auto& t) {
    t.emplace_back("model.layers.0.self_attn.q_proj.bias", torch::zeros({32}));
  });
  ExpectError([&] { LoadLlama(dir); }, "does not use: model.layers.0.self_attn.q_proj.bias");
}

TEST(CheckpointErrors, NonFloatingTensor) {
  auto model = RandomModel(TinyConfig("llama"), 28);
  auto dir = WriteEdited("intdtype", TinyConfig("llama"), *model, [](auto& t) {
    for (auto& [n, v] : t)
      if (n == "model.norm.weight") v = torch::ones({32}, torch::kInt32);
  });
  ExpectError([&] { LoadLlama(dir); }, "non-floating dtype I32");
}

TEST(CheckpointErrors, UnsupportedArchitecture) {
  auto model = RandomModel(TinyConfig("llama"), 29);
  auto config = TinyConfig("llama");
  config["architectures"] = {"FalconForCausalLM"};
  config["model_type"] = "falcon";
  auto dir = WriteEdited("arch", config, *model, [](auto&) {});
  ExpectError([&] { LoadLlama(dir); }, "unsupported architecture");
}

TEST(CheckpointErrors, UnreadableFiles) {
  auto model = RandomModel(TinyConfig("llama"), 30);
  auto dir = WriteEdited("corrupt", TinyConfig("llama"), *model, [](auto&) {});
  {  // truncate the weights
    auto bytes = ReadFile(dir / "model.safetensors");
    std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  ExpectError([&] { LoadLlama(dir); }, "model.safetensors");
  WriteFileAtomic(dir / "config.json", "{ not json");
  ExpectError([&] { LoadLlama(dir); }, "config.json: not valid JSON");
  auto empty = TempDir("empty");
  ExpectError([&] { LoadLlama(empty); }, "config.json: no such file");
  WriteFileAtomic(empty / "config.json", TinyConfig("llama").dump());
  EXPECT_THROW(LoadLlama(empty), Error);  // no weights at all
  ExpectError([&] { LoadLlama(empty / "nope"); }, "not a directory");
}

TEST(Llama2c, ConvertsRandomBinAndMatchesLogits) {
  for (const char* kind : {"llama", "mistral"}) {
    auto config = TinyConfig(kind);
    config["architectures"] = {"LlamaForCausalLM"};
    config["model_type"] = "llama";
    config["rope_theta"] = 10000.0;
    config.erase("sliding_window");
    auto model = RandomModel(config, 31);
    auto dir = TempDir(std::string("l2c_") + kind);
    SaveLlama2c(*model, dir / "model.bin");
    // Size as run.c expects: header + weights + RoPE tables.
    auto back = LoadLlama2c(dir / "model.bin");
    ExpectSameParams(*model, *back);
    EXPECT_FALSE(back->config().tie_word_embeddings);
    torch::NoGradGuard no_grad;
    auto ids = torch::randint(0, 97, {1, 7}, torch::kInt64);
    EXPECT_TRUE(torch::equal(model->forward(ids), back->forward(ids)));
    // And through an HF directory.
    SaveLlama(*back, dir / "hf");
    ExpectSameParams(*model, *LoadLlama(dir / "hf"));
  }
}

TEST(Llama2c, HeaderFieldsAndPermutationAgainstHandWrittenFile) {
  // dim 4, hidden 6, 1 layer, 2 heads (head 2), 1 kv head, vocab 5 (shared), seq 3.
  std::vector<int32_t> header = {4, 6, 1, 2, 1, 5, 3};
  int64_t floats = 5 * 4 + 4 + 16 + 2 * 8 + 16 + 4 + 3 * 24 + 4 + 3 * 2;
  std::vector<float> w(static_cast<size_t>(floats));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  auto dir = TempDir("l2c_hand");
  {
    std::ofstream out(dir / "m.bin", std::ios::binary);
    out.write(reinterpret_cast<const char*>(header.data()), 28);
    out.write(reinterpret_cast<const char*>(w.data()), static_cast<std::streamsize>(w.size() * 4));
  }
  auto m = LoadLlama2c(dir / "m.bin");
  const auto& c = m->config();
  EXPECT_EQ(c.hidden_size, 4);
  EXPECT_EQ(c.intermediate_size, 6);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.max_position_embeddings, 3);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(m->model->embed_tokens->weight[4][3].item<float>(), 19.0f);
  EXPECT_EQ(m->layer(0).input_layernorm->weight[0].item<float>(), 20.0f);
  // wq rows start at 24; head_dim 2 has one pair, so interleaved == halves: rows unchanged.
  EXPECT_EQ(m->layer(0).self_attn->q_proj->weight[1][0].item<float>(), 28.0f);
  EXPECT_EQ(m->model->norm->weight[0].item<float>(), static_cast<float>(floats - 6 - 4));
  // A byte too many or too few is an error naming both sizes.
  {
    std::ofstream out(dir / "m.bin", std::ios::binary | std::ios::app);
    out.put('x');
  }
  ExpectError([&] { LoadLlama2c(dir / "m.bin"); }, "but its header implies");
}

TEST(Llama2c, PermutationWithLargerHeads) {
  // head_dim 4: llama2.c row order (p0,p0',p1,p1') becomes HF's (p0,p1,p0',p1') per head.
  auto config = TinyConfig("llama");
  config["hidden_size"] = 8;
  config["num_attention_heads"] = 2;
  config["num_key_value_heads"] = 2;
  auto model = RandomModel(config, 32);
  auto dir = TempDir("l2c_perm");
  SaveLlama2c(*model, dir / "m.bin");
  auto bytes = ReadFile(dir / "m.bin");
  const float* f = reinterpret_cast<const float*>(bytes.data() + 28);
  const float* wq = f + 97 * 8 + 2 * 8;  // after embeddings and 2 attention norms
  auto q = model->layer(0).self_attn->q_proj->weight;
  // llama2.c row 1 of head 0 is the second element of pair 0 = HF row 2 (= d/2 + 0).
  for (int64_t col = 0; col < 8; ++col) {
    EXPECT_EQ(wq[1 * 8 + col], q[2][col].item<float>());
    EXPECT_EQ(wq[2 * 8 + col], q[1][col].item<float>());
    EXPECT_EQ(wq[5 * 8 + col], q[6][col].item<float>());
  }
}

}  // namespace
}  // namespace ps
