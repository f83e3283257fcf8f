// Helpers for the pack tests: random Llama-shaped checkpoints written with common/safetensors,
// 2:4 magnitude pruning on raw bits, and bit-exact checkpoint comparison.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/safetensors.h"
#include "tests/testing/temp_dir.h"
#include "worker/pack/targets.h"

namespace ps::pack::testing {

namespace fs = std::filesystem;

using ps::testing::TempDir;

// Magnitude of a finite float as an integer (sign bit cleared): orders like |x|.
inline uint64_t Magnitude(const std::byte* p, size_t es) {
  uint64_t v = 0;
  std::memcpy(&v, p, es);
  return v & ((uint64_t{1} << (8 * es - 1)) - 1);
}

// Random finite floats of the given size, with some exact zeros and negative zeros.
inline std::vector<std::byte> RandomFloats(std::mt19937_64& rng, size_t n, DType dtype) {
  const size_t es = DTypeSize(dtype);
  const int ebits = dtype == DType::kF16 ? 5 : dtype == DType::kF64 ? 11 : 8;
  const int mbits = 8 * static_cast<int>(es) - 1 - ebits;
  std::vector<std::byte> out(n * es);
  for (size_t i = 0; i < n; ++i) {
    uint64_t bits = rng();
    uint64_t exp = bits % ((uint64_t{1} << ebits) - 2) + 1;  // never all ones (inf/NaN)
    uint64_t v = ((bits >> 20) & ((uint64_t{1} << mbits) - 1)) | (exp << mbits) |
                 (((bits >> 63) & 1) << (8 * es - 1));
    if (rng() % 50 == 0) v = 0;
    if (rng() % 97 == 0) v = uint64_t{1} << (8 * es - 1);  // -0.0
    std::memcpy(&out[i * es], &v, es);
  }
  return out;
}

// Keeps the two largest magnitudes of every group of 4 (first wins ties), zeroes the rest.
inline void PruneTop2(std::vector<std::byte>& w, size_t es) {
  const size_t groups = w.size() / es / 4;
  for (size_t g = 0; g < groups; ++g) {
    std::byte* p = &w[g * 4 * es];
    int keep[2] = {-1, -1};
    for (int round = 0; round < 2; ++round) {
      int best = -1;
      for (int k = 0; k < 4; ++k) {
        if (k == keep[0]) continue;
        if (best < 0 || Magnitude(p + k * es, es) > Magnitude(p + best * es, es)) best = k;
      }
      keep[round] = best;
    }
    for (int k = 0; k < 4; ++k)
      if (k != keep[0] && k != keep[1]) std::memset(p + k * es, 0, es);
  }
}

struct Tensor {
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};
using TensorMap = std::map<std::string, Tensor>;

// A small Llama-shaped model: embeddings, 2 layers of q/k/v/o/gate/up/down, norms, lm_head.
inline TensorMap RandomLlama(uint64_t seed, DType dtype, bool pruned) {
  std::mt19937_64 rng(seed);
  const size_t es = DTypeSize(dtype);
  const int64_t h = 24, kv = 8, ffn = 40, vocab = 32;
  TensorMap m;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    size_t n = 1;
    for (auto d : shape) n *= d;
    m[name] = {dtype, shape, RandomFloats(rng, n, dtype)};
    if (pruned && IsPruneTarget(name)) PruneTop2(m[name].bytes, es);
  };
  add("model.embed_tokens.weight", {vocab, h});
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {h, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    add(p + "self_attn.o_proj.weight", {h, h});
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {ffn, h});
    add(p + "mlp.up_proj.weight", {ffn, h});
    add(p + "mlp.down_proj.weight", {h, ffn});
  }
  add("model.norm.weight", {h});
  add("lm_head.weight", {vocab, h});
  return m;
}

// Writes `m` as a Hugging Face directory: one file, or `shards` files with an index.
inline void WriteModel(const fs::path& dir, const TensorMap& m, int shards = 1) {
  fs::create_directories(dir);
  std::vector<std::vector<TensorToWrite>> files(shards);
  nlohmann::json index;
  int i = 0;
  for (const auto& [name, t] : m) {
    const int f = (i++ * shards) / static_cast<int>(m.size());
    files[f].push_back({name, t.dtype, t.shape, t.bytes});
    const std::string file =
        "model-0000" + std::to_string(f + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    index["weight_map"][name] = file;
  }
  for (int f = 0; f < shards; ++f) {
    const std::string file = shards == 1 ? "model.safetensors"
                                         : "model-0000" + std::to_string(f + 1) + "-of-0000" +
                                               std::to_string(shards) + ".safetensors";
    WriteSafetensors(dir / file, files[f], {{"format", "pt"}});
  }
  if (shards > 1) {
    index["metadata"]["total_size"] = 0;
    WriteFileAtomic(dir / "model.safetensors.index.json", index.dump());
  }
  WriteFileAtomic(dir / "config.json",
                  R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 24})");
  WriteFileAtomic(dir / "tokenizer_config.json", R"({"bos_token": "<s>"})");
}

// `bytes` of a floating tensor with every -0.0 replaced by +0.0 (what unpacking gives back).
inline std::vector<std::byte> PlusZeros(DType dtype, std::span<const std::byte> bytes) {
  std::vector<std::byte> out(bytes.begin(), bytes.end());
  if (!IsFloating(dtype)) return out;
  const size_t es = DTypeSize(dtype);
  const uint64_t sign = uint64_t{1} << (8 * es - 1);
  for (size_t i = 0; i < out.size(); i += es) {
    uint64_t v = 0;
    std::memcpy(&v, &out[i], es);
    if (v == sign) std::memset(&out[i], 0, es);
  }
  return out;
}

// Every tensor of `a` and `b`: same names, dtypes, shapes and bytes; with `plus_zeros`, `a`'s
// prune targets are compared with every -0.0 read as +0.0 (packing stores zeros as +0.0).
inline void ExpectSameCheckpoint(const fs::path& a, const fs::path& b, bool plus_zeros = false) {
  auto ca = Checkpoint::Open(a), cb = Checkpoint::Open(b);
  ASSERT_EQ(ca.Names(), cb.Names());
  for (const auto& name : ca.Names()) {
    const auto &ia = ca.Info(name), &ib = cb.Info(name);
    EXPECT_EQ(ia.dtype, ib.dtype) << name;
    EXPECT_EQ(ia.shape, ib.shape) << name;
    const auto da = plus_zeros && IsPruneTarget(name)
                        ? PlusZeros(ia.dtype, ca.Data(name))
                        : std::vector<std::byte>(ca.Data(name).begin(), ca.Data(name).end());
    const auto db = cb.Data(name);
    ASSERT_EQ(da.size(), db.size()) << name;
    EXPECT_EQ(0, std::memcmp(da.data(), db.data(), da.size())) << name << " differs";
  }
}

}  // namespace ps::pack::testing
