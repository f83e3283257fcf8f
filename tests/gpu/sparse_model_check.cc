// GPU check of 2:4 inference for a whole model (not a ctest: CI has no GPU). A bf16 model with 2:4
// targets runs dense, then with every target moved onto Sparse24Linear (SparsifyModel, dense
// weights released); both are compared with an fp32 copy of the same (bf16-valued) weights:
//   err = max|logits - ref| / max|ref|,
//   pass when err(2:4) <= max(2 * err(dense bf16), 2^-7)
// i.e. the 2:4 model is as accurate as the dense bf16 model up to a factor of two (the paths
// accumulate in fp32 like cuBLAS but round at different points). Cases: prefill (cuSPARSELt or the
// unpacked dense path), cached decoding at batch 1, 3, 4, 16 (both decode kernels), and every path
// forced for every case. Also: every target replaced and its dense weight freed.
// One JSON line per case; exit status 1 if any fails.
//   sparse_model_check [--model DIR] [--forms both|native]
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/models/llama_config.h"
#include "worker/sparse/random_model.h"
#include "worker/sparse/sparse_model.h"

namespace {

using ps::KvCache;
using ps::LlamaForCausalLM;
using ps::sparse::Sparse24Linear;

double RelErr(const torch::Tensor& y, const torch::Tensor& ref) {
  const double den = ref.abs().max().item<double>();
  return (y.to(torch::kFloat) - ref).abs().max().item<double>() / (den > 0 ? den : 1.0);
}

// Logits of `ids` run as a prompt of `prompt` tokens, then one token at a time with the cache
// (prompt == T: a single prefill). [B, T, vocab] fp32.
torch::Tensor Logits(LlamaForCausalLM& m, const torch::Tensor& ids, int64_t prompt) {
  KvCache cache;
  std::vector<torch::Tensor> parts = {m.forward(ids.narrow(1, 0, prompt), &cache)};
  for (int64_t t = prompt; t < ids.size(1); ++t)
    parts.push_back(m.forward(ids.narrow(1, t, 1), &cache));
  return torch::cat(parts, 1).to(torch::kFloat);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, forms = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model_dir = argv[++i];
    if (a == "--forms" && i + 1 < argc) forms = argv[++i];
  }
  if (!torch::cuda::is_available()) {
    std::cerr << "sparse_model_check: no CUDA device\n";
    return 2;
  }
  torch::NoGradGuard no_grad;
  const auto dev = torch::Device(torch::kCUDA, 0);
  const auto bf16 = torch::dtype(torch::kBFloat16).device(dev);
  std::shared_ptr<LlamaForCausalLM> model;
  if (model_dir.empty()) {
    // GQA; hidden and MLP widths that are multiples of 16 but not of 64, so the tensor-core
    // kernel's last 64-column block is partial (q/k/v/gate/up read K = 272, down K = 720).
    nlohmann::json cfg = ps::sparse::NamedShapeConfig("llama2-7b", 2);
    cfg["hidden_size"] = 272;
    cfg["intermediate_size"] = 720;
    cfg["num_attention_heads"] = 4;
    cfg["num_key_value_heads"] = 2;
    cfg["head_dim"] = 64;
    cfg["vocab_size"] = 512;
    model = ps::sparse::RandomSparseModel(cfg, bf16, 11);
  } else {
    model = ps::LoadLlama(model_dir, {torch::kBFloat16, dev});
  }
  // The fp32 reference holds exactly the bf16 values.
  LlamaForCausalLM ref(model->config(), torch::dtype(torch::kFloat32).device(dev));
  {
    auto src = model->named_parameters();
    for (auto& p : ref.named_parameters()) p.value().copy_(src[p.key()]);
  }
  const int64_t vocab = model->config().vocab_size;
  torch::manual_seed(5);
  struct Case {
    std::string name;
    int64_t batch, tokens, prompt;
  };
  const std::vector<Case> cases = {{"prefill", 2, 48, 48},
                                   {"decode_b1", 1, 24, 16},
                                   {"decode_b3", 3, 24, 16},
                                   {"decode_b4", 4, 24, 16},
                                   {"decode_b16", 16, 20, 16}};
  std::vector<torch::Tensor> ids, refs, dense;
  for (const auto& c : cases) {
    ids.push_back(
        torch::randint(vocab, {c.batch, c.tokens}, torch::dtype(torch::kInt64).device(dev)));
    refs.push_back(Logits(ref, ids.back(), c.prompt));
    dense.push_back(Logits(*model, ids.back(), c.prompt));
  }
  int failures = 0, checks = 0;
  auto report = [&](nlohmann::json j, bool ok) {
    j["ok"] = ok;
    ++checks;
    if (!ok) ++failures;
    std::cout << j.dump() << std::endl;
  };

  const int64_t targets = static_cast<int64_t>(model->TargetLinears().size());
  torch::cuda::synchronize();
  ps::sparse::SparsifyOptions so;
  so.keep_cusparselt = forms == "both";
  ps::sparse::SparsifyReport rep;
  try {
    rep = ps::sparse::SparsifyModel(*model, so);
  } catch (const std::exception& e) {
    report({{"check", "sparsify"}, {"error", e.what()}}, false);
    std::cout << nlohmann::json{{"checks", checks}, {"failures", failures}}.dump() << std::endl;
    return 1;
  }
  bool released = true;
  for (const auto& l : model->TargetLinears()) released = released && l->weight.numel() == 0;
  report({{"check", "every target replaced and released"},
          {"replaced", rep.linears},
          {"targets", targets},
          {"skipped", rep.skipped},
          {"notes", rep.notes},
          {"shared_values", rep.shared_values},
          {"packed_vs_dense", double(rep.native_bytes + rep.cusparselt_bytes) /
                                  std::max<int64_t>(1, rep.dense_weight_bytes)}},
         rep.linears == targets && released);

  using P = Sparse24Linear::Path;
  std::vector<P> paths = {P::kAuto, P::kDecode, P::kDecodeMma, P::kUnpackDense};
  if (forms == "both" && Sparse24Linear::HasCusparselt()) paths.push_back(P::kCusparselt);
  for (P path : paths) {
    ps::sparse::SetSparsePath(*model, path);
    for (size_t i = 0; i < cases.size(); ++i) {
      nlohmann::json j{{"case", cases[i].name}, {"path", ps::sparse::PathName(path)}};
      try {
        const double dense_err = RelErr(dense[i], refs[i]);
        const double err = RelErr(Logits(*model, ids[i], cases[i].prompt), refs[i]);
        const double tol = std::max(2 * dense_err, 1.0 / 128);
        j["err"] = err;
        j["dense_bf16_err"] = dense_err;
        j["tol"] = tol;
        report(j, err <= tol);
      } catch (const std::exception& e) {
        j["error"] = e.what();
        report(j, false);
      }
    }
  }
  std::cout << nlohmann::json{{"checks", checks}, {"failures", failures}}.dump() << std::endl;
  return failures ? 1 : 0;
}
