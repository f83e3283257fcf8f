// llama2.c checkpoints (the "tinyllamas" legacy format of karpathy/llama2.c run.c): a header of 7
// little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
// negative vocab_size means the classifier is stored separately, else it is the embedding), then
// fp32 weights in run.c's order: embeddings, attention norms, wq, wk, wv, wo, ffn norms, w1, w2,
// w3, final norm, the RoPE tables (skipped), and the classifier when unshared.
//
// llama2.c rotates interleaved pairs; Hugging Face rotates halves. The reader permutes wq/wk rows
// the way llama2.c's own export.py (hf_export) does, so the HF model computes the same function.
#pragma once

#include <filesystem>
#include <memory>

#include "worker/models/llama_model.h"

namespace ps {

struct Llama2cHeader {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// The equivalent Hugging Face config (llama, θ 10000, RMSNorm ε 1e-5, BOS 1, EOS 2).
LlamaConfig Llama2cConfig(const Llama2cHeader& h);

// Reads a .bin into an fp32 model. ps::Error on a bad header or a size that does not match it.
std::shared_ptr<LlamaForCausalLM> LoadLlama2c(const std::filesystem::path& file);

// Writes a model in llama2.c's legacy format (the inverse permutation): used by tests to make
// fixtures, and handy for running pruned models in llama2.c.
void SaveLlama2c(LlamaForCausalLM& model, const std::filesystem::path& file);

}  // namespace ps
