#include "worker/models/llama2c.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/file_util.h"

namespace ps {
namespace {

// HF (rotate-half) rows from llama2.c (interleaved) rows: within each head, row 2k+p -> p*d/2+k.
torch::Tensor InterleavedToHalves(const torch::Tensor& w, int64_t heads) {
  int64_t rows = w.size(0), cols = w.size(1), d = rows / heads;
  return w.reshape({heads, d / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
}
torch::Tensor HalvesToInterleaved(const torch::Tensor& w, int64_t heads) {
  int64_t rows = w.size(0), cols = w.size(1), d = rows / heads;
  return w.reshape({heads, 2, d / 2, cols}).transpose(1, 2).reshape({rows, cols});
}

// A read-only mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw Error(path.string() + ": cannot stat");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map_ == MAP_FAILED) {
        ::close(fd);
        throw Error(path.string() + ": cannot mmap: " + std::strerror(errno));
      }
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (map_ && map_ != MAP_FAILED) ::munmap(map_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const std::byte* data() const { return static_cast<const std::byte*>(map_); }
  size_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

LlamaConfig Llama2cConfig(const Llama2cHeader& h) {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", h.dim},
                      {"intermediate_size", h.hidden_dim},
                      {"num_hidden_layers", h.n_layers},
                      {"num_attention_heads", h.n_heads},
                      {"num_key_value_heads", h.n_kv_heads},
                      {"vocab_size", std::abs(h.vocab_size)},
                      {"max_position_embeddings", h.seq_len},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"hidden_act", "silu"},
                      {"tie_word_embeddings", h.vocab_size > 0},
                      {"bos_token_id", 1},
                      {"eos_token_id", 2},
                      {"torch_dtype", "float32"}};
  return ParseLlamaConfig(j, "llama2.c header");
}

std::shared_ptr<LlamaForCausalLM> LoadLlama2c(const std::filesystem::path& file) {
  MappedFile f(file);
  const std::string where = file.string();
  Llama2cHeader h{};
  if (f.size() < sizeof(h)) throw Error(where + ": too short for a llama2.c header");
  std::memcpy(&h, f.data(), sizeof(h));
  if (static_cast<uint32_t>(h.dim) == 0x616b3432u) {
    throw Error(where +
                ": llama2.c 'ak42' versioned export; only the legacy (tinyllamas) format "
                "is supported");
  }
  for (int32_t v : {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.seq_len}) {
    if (v <= 0 || v > (1 << 20))
      throw Error(where + ": implausible llama2.c header value " + std::to_string(v));
  }
  if (h.vocab_size == 0) throw Error(where + ": vocab_size is 0");
  if (h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0) {
    throw Error(where + ": dim/n_heads/n_kv_heads are inconsistent");
  }
  LlamaConfig config = Llama2cConfig(h);
  const int64_t dim = h.dim, hid = h.hidden_dim, L = h.n_layers, V = std::abs(h.vocab_size);
  const int64_t hd = dim / h.n_heads, kv = h.n_kv_heads * hd;
  const bool shared = h.vocab_size > 0;
  int64_t floats = V * dim + L * dim + L * dim * dim + 2 * L * dim * kv + L * dim * dim + L * dim +
                   3 * L * dim * hid + dim + static_cast<int64_t>(h.seq_len) * hd;
  if (!shared) floats += V * dim;
  uint64_t want = sizeof(h) + static_cast<uint64_t>(floats) * 4;
  if (f.size() != want) {
    throw Error(where + ": file has " + std::to_string(f.size()) +
                " bytes but its header implies " + std::to_string(want));
  }
  auto model = std::make_shared<LlamaForCausalLM>(config, torch::dtype(torch::kFloat32));
  torch::NoGradGuard no_grad;
  const float* p = reinterpret_cast<const float*>(f.data() + sizeof(h));
  auto take = [&](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    auto t = torch::from_blob(const_cast<float*>(p), shape, torch::kFloat32);
    p += n;
    return t;
  };
  model->model->embed_tokens->weight.copy_(take({V, dim}));
  auto per_layer = [&](std::vector<int64_t> shape, auto&& assign) {
    for (int64_t i = 0; i < L; ++i) assign(model->layer(i), take(shape));
  };
  per_layer({dim},
            [](DecoderLayer& l, const torch::Tensor& t) { l.input_layernorm->weight.copy_(t); });
  per_layer({dim, dim}, [&](DecoderLayer& l, const torch::Tensor& t) {
    l.self_attn->q_proj->weight.copy_(InterleavedToHalves(t, h.n_heads));
  });
  per_layer({kv, dim}, [&](DecoderLayer& l, const torch::Tensor& t) {
    l.self_attn->k_proj->weight.copy_(InterleavedToHalves(t, h.n_kv_heads));
  });
  per_layer({kv, dim},
            [](DecoderLayer& l, const torch::Tensor& t) { l.self_attn->v_proj->weight.copy_(t); });
  per_layer({dim, dim},
            [](DecoderLayer& l, const torch::Tensor& t) { l.self_attn->o_proj->weight.copy_(t); });
  per_layer({dim}, [](DecoderLayer& l, const torch::Tensor& t) {
    l.post_attention_layernorm->weight.copy_(t);
  });
  per_layer({hid, dim},
            [](DecoderLayer& l, const torch::Tensor& t) { l.mlp->gate_proj->weight.copy_(t); });
  per_layer({dim, hid},
            [](DecoderLayer& l, const torch::Tensor& t) { l.mlp->down_proj->weight.copy_(t); });
  per_layer({hid, dim},
            [](DecoderLayer& l, const torch::Tensor& t) { l.mlp->up_proj->weight.copy_(t); });
  model->model->norm->weight.copy_(take({dim}));
  take({h.seq_len, hd});  // freq_cis_real and freq_cis_imag: recomputed from θ instead
  if (!shared) model->lm_head->weight.copy_(take({V, dim}));
  model->eval();
  return model;
}

void SaveLlama2c(LlamaForCausalLM& model, const std::filesystem::path& file) {
  const LlamaConfig& c = model.config();
  if (c.qkv_bias || c.o_bias || c.mlp_bias || c.head_dim * c.num_attention_heads != c.hidden_size) {
    throw Error("llama2.c format cannot hold biases or a head_dim other than dim/n_heads");
  }
  Llama2cHeader h{static_cast<int32_t>(c.hidden_size),
                  static_cast<int32_t>(c.intermediate_size),
                  static_cast<int32_t>(c.num_hidden_layers),
                  static_cast<int32_t>(c.num_attention_heads),
                  static_cast<int32_t>(c.num_key_value_heads),
                  static_cast<int32_t>(c.tie_word_embeddings ? c.vocab_size : -c.vocab_size),
                  static_cast<int32_t>(c.max_position_embeddings)};
  AtomicFileWriter out(file);
  out.Write(&h, sizeof(h));
  auto put = [&](const torch::Tensor& t) {
    auto f = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    out.Write(f.data_ptr(), static_cast<size_t>(f.numel()) * 4);
  };
  auto each = [&](auto&& get) {
    for (int64_t i = 0; i < model.num_layers(); ++i) put(get(model.layer(i)));
  };
  put(model.model->embed_tokens->weight);
  each([](DecoderLayer& l) { return l.input_layernorm->weight; });
  each([&](DecoderLayer& l) {
    return HalvesToInterleaved(l.self_attn->q_proj->weight, c.num_attention_heads);
  });
  each([&](DecoderLayer& l) {
    return HalvesToInterleaved(l.self_attn->k_proj->weight, c.num_key_value_heads);
  });
  each([](DecoderLayer& l) { return l.self_attn->v_proj->weight; });
  each([](DecoderLayer& l) { return l.self_attn->o_proj->weight; });
  each([](DecoderLayer& l) { return l.post_attention_layernorm->weight; });
  each([](DecoderLayer& l) { return l.mlp->gate_proj->weight; });
  each([](DecoderLayer& l) { return l.mlp->down_proj->weight; });
  each([](DecoderLayer& l) { return l.mlp->up_proj->weight; });
  put(model.model->norm->weight);
  // RoPE tables as run.c's legacy export wrote them (cos and sin of pos * θ^(-2i/d)).
  auto inv = RopeInvFreq(c.rope, c.head_dim);
  auto freqs = torch::outer(torch::arange(c.max_position_embeddings, torch::kFloat32), inv);
  put(freqs.cos());
  put(freqs.sin());
  if (!c.tie_word_embeddings) put(model.lm_head->weight);
  out.Commit();
}

}  // namespace ps
