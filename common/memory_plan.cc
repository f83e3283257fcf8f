#include "common/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>
#include <tuple>

#include "common/error.h"
#include "common/file_util.h"
#include "common/job_spec.h"

namespace ps {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

int64_t Positive(const nlohmann::json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw Error(where + ": missing key '" + key + "'");
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    throw Error(where + ": '" + key + "' must be a positive integer, got " + it->dump());
  return it->get<int64_t>();
}

bool Flag(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

int DtypeBytes(ComputeDType dtype) { return dtype == ComputeDType::kFp32 ? 4 : 2; }

// ShardedAdamW's ownership plan (worker/distributed/ownership.cc): largest tensor first onto the
// least-loaded rank. Returns the most loaded rank's elements and, of those, its target elements.
std::pair<int64_t, int64_t> MaxOwned(const std::vector<std::pair<int64_t, bool>>& tensors,
                                     int ranks) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors[a].first > tensors[b].first; });
  std::vector<int64_t> load(static_cast<size_t>(ranks), 0), targets(static_cast<size_t>(ranks), 0);
  for (size_t i : order) {
    auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += tensors[i].first;
    if (tensors[i].second) targets[r] += tensors[i].first;
  }
  auto r = static_cast<size_t>(std::max_element(load.begin(), load.end()) - load.begin());
  return {load[r], targets[r]};
}

// Bytes saved for backward per token by one decoder layer (worker/models: what autograd keeps):
// each RMSNorm its fp32 input and normalised value (4h + w·h) and its output, read by the next
// linears (w·h); q and k after RoPE and v (read by attention), attention's output and o_proj's
// contiguous input; the MLP's gate, silu(gate), up and their product (w·m each).
double LayerActivationBytesPerToken(const ModelShape& s, int w) {
  const double h = static_cast<double>(s.hidden), m = static_cast<double>(s.intermediate);
  const double qd = static_cast<double>(s.heads * s.head_dim);
  const double kvd = static_cast<double>(s.kv_heads * s.head_dim);
  const double norms = 2.0 * (4.0 * h + 2.0 * w * h);
  const double attn = w * (qd + 2.0 * kvd + 2.0 * qd);
  const double mlp = 4.0 * w * m;
  return norms + attn + mlp;
}

// The explicit attention of LibTorch 1.x (worker/models/attention.cc, no fused kernel) saves per
// head the softmax's fp32 probabilities [H, T, T] (and their copy in the model's dtype for bmm when
// that is not fp32), fp32 copies of q and the repeated k when the dtype is not fp32, and the
// repeated k and v (grouped-query heads are copied to every query head) where
// LayerActivationBytesPerToken counts k and v at their own size and SDPA's output, which the
// explicit path does not keep. Measured on codelm-19m (fp32, ctx 512, LibTorch 1.13) with a
// counting CPU allocator: 21.4 MiB saved per layer, this model 21.5.
double ExplicitAttentionBytes(const ModelShape& s, int w, double seqs, double t) {
  const double heads = static_cast<double>(s.heads);
  const double qd = static_cast<double>(s.heads * s.head_dim);
  const double kvd = static_cast<double>(s.kv_heads * s.head_dim);
  const double probs = heads * t * t * (4.0 + (w == 4 ? 0.0 : w));
  const double fp32_copies = w == 4 ? 0.0 : 4.0 * t * 2.0 * qd;
  const double repeated_kv = w * t * (2.0 * (qd - kvd) - qd);
  return seqs * (probs + fp32_copies + repeated_kv);
}

// What a CPU training process touches above its resident memory before the model, besides
// tensors: LibTorch's and MPI's code pages first run by training (backward, the optimizer) and
// the heap of autograd's graph and the thread pools. Measured with bench/shard_memory on
// codelm-19m (docs/results/2026-12-07-shard-memory-cpu.md) as the peak RSS rise minus the peak of
// live tensor bytes (a counting CPU allocator) with glibc's mmap threshold fixed, so that freed
// tensors leave RSS: 17.3 MiB on 1 rank, 18.2 MiB on 2; fixed per process, not per model.
constexpr double kCpuRuntimeBytes = 18.0 * 1024 * 1024;

std::string Gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", bytes / kGiB);
  return buf;
}

}  // namespace

int64_t ModelShape::LayerTargetParams() const {
  const int64_t qd = heads * head_dim, kvd = kv_heads * head_dim;
  return hidden * qd + 2 * hidden * kvd + qd * hidden + 3 * hidden * intermediate;
}

int64_t ModelShape::LayerParams() const {
  const int64_t qd = heads * head_dim, kvd = kv_heads * head_dim;
  int64_t n = LayerTargetParams() + 2 * hidden;  // two RMSNorms
  if (qkv_bias) n += qd + 2 * kvd;
  if (o_bias) n += hidden;
  if (mlp_bias) n += 2 * intermediate + hidden;
  return n;
}

int64_t ModelShape::LargestTarget() const {
  return std::max({hidden * intermediate, hidden * heads * head_dim});
}

int64_t ModelShape::TotalParams() const {
  return layers * LayerParams() + EmbeddingParams() * (tied ? 1 : 2) + hidden;
}

ModelShape ParseModelShape(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": must be a JSON object (a config.json)");
  ModelShape s;
  s.vocab = Positive(j, "vocab_size", where);
  s.hidden = Positive(j, "hidden_size", where);
  s.intermediate = Positive(j, "intermediate_size", where);
  s.layers = Positive(j, "num_hidden_layers", where);
  s.heads = Positive(j, "num_attention_heads", where);
  s.kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                   ? Positive(j, "num_key_value_heads", where)
                   : s.heads;
  s.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? Positive(j, "head_dim", where)
                                                                  : s.hidden / s.heads;
  if (s.head_dim <= 0) throw Error(where + ": hidden_size is smaller than num_attention_heads");
  const std::string type = j.value("model_type", std::string("llama"));
  const bool attention_bias = Flag(j, "attention_bias");
  s.qkv_bias = type == "qwen2" || attention_bias;
  s.o_bias = attention_bias;
  s.mlp_bias = Flag(j, "mlp_bias");
  s.tied = Flag(j, "tie_word_embeddings");
  return s;
}

ModelShape LoadModelShape(const std::filesystem::path& path) {
  const std::filesystem::path file =
      std::filesystem::is_directory(path) ? path / "config.json" : path;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ReadFile(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error("model: " + file.string() + " is not valid JSON: " + e.what());
  }
  return ParseModelShape(j, file.string());
}

namespace {

// The prediction alone (PlanMemory adds the suggestions).
MemoryPlan Predict(const PlanInput& in) {
  const ModelShape& s = in.shape;
  if (in.ranks < 1) throw Error("plan: ranks must be >= 1");
  const double w = in.weight_bytes, mb = in.master_bytes, n = in.ranks;
  // The trainable tensors in model order (numel, is_target), as the job runner lists them.
  std::vector<std::pair<int64_t, bool>> trained;
  const int64_t qd = s.heads * s.head_dim, kvd = s.kv_heads * s.head_dim;
  if (in.train_all) trained.push_back({s.EmbeddingParams(), false});
  for (int64_t l = 0; l < s.layers; ++l) {
    if (in.train_all) trained.push_back({s.hidden, false});
    for (int64_t t :
         {qd * s.hidden, kvd * s.hidden, kvd * s.hidden, s.hidden * qd, s.intermediate * s.hidden,
          s.intermediate * s.hidden, s.hidden * s.intermediate})
      trained.push_back({t, true});
    if (in.train_all) {
      trained.push_back({s.hidden, false});
      if (s.qkv_bias) trained.push_back({qd + 2 * kvd, false});
      if (s.o_bias) trained.push_back({s.hidden, false});
      if (s.mlp_bias) trained.push_back({2 * s.intermediate + s.hidden, false});
    }
  }
  if (in.train_all) {
    trained.push_back({s.hidden, false});
    if (!s.tied) trained.push_back({s.EmbeddingParams(), false});
  }
  int64_t trained_total = 0;
  for (const auto& t : trained) trained_total += t.first;

  MemoryPlan p;
  // What this rank owns: whole tensors (optimizer sharding) or 1/N of every tensor (parameters
  // sharded: shard boundaries fall between whole rows).
  double owned = 0, owned_targets = 0;
  if (in.shard_params) {
    owned = std::ceil(static_cast<double>(trained_total) / n);
    owned_targets = std::ceil(static_cast<double>(s.TargetParams()) / n);
  } else {
    auto [o, ot] = MaxOwned(trained, in.ranks);
    owned = static_cast<double>(o);
    owned_targets = static_cast<double>(ot);
  }
  const double layer = static_cast<double>(s.LayerParams());
  const double layer_trained =
      static_cast<double>(in.train_all ? s.LayerParams() : s.LayerTargetParams());
  const double outside_layers = static_cast<double>(s.TotalParams()) - s.layers * layer;
  if (in.shard_params) {
    // Embeddings, the final norm and lm_head stay whole; each layer is 1/N here and gathered
    // whole for its forward and backward (the next layer is not prefetched: one layer's gathered
    // weights are live, saved by its linears while it is recomputed and differentiated).
    p.weights = w * (outside_layers + s.layers * std::ceil(layer / n));
    // (One rank gathers nothing: its shards are the weights.)
    p.gathered = in.ranks > 1 ? w * layer : 0.0;
    // Own gradient shards plus one gathered layer's full gradient before its reduce-scatter.
    p.gradients = w * owned + (in.ranks > 1 ? w * layer_trained : 0.0);
  } else {
    p.weights = w * static_cast<double>(s.TotalParams());
    // Autograd's gradient of every trained tensor, in the model's dtype.
    p.gradients = w * static_cast<double>(trained_total);
  }
  // Reduced gradients in the master dtype are separate buffers when the dtypes differ (with
  // offload they are copied out to host memory tensor by tensor instead).
  if (mb != w && !in.offload) p.gradients += mb * owned;
  p.optimizer = 2.0 * mb * owned;
  // The master is the parameter itself when dtypes match and the rank holds the whole tensor
  // (optimizer sharding); offloaded or sharded masters are always copies.
  const bool master_copy = mb != w || in.offload;
  p.master = master_copy ? mb * owned : 0.0;
  p.method = (in.mask_state ? owned_targets / 8.0 : 0.0) + (in.keep_w0 ? mb * owned_targets : 0.0);
  // The job's masks: every whole one on every rank, or with sharded parameters on more than one
  // rank its RowShard block of each target (rank 0 has the most: ceil(rows / N) of each).
  for (const auto& [numel, target] : trained) {
    if (!target) continue;
    p.masks += static_cast<double>(numel);
  }
  if (in.shard_params && in.ranks > 1) {
    p.masks = 0;
    const std::pair<int64_t, int64_t> layer_targets[] = {{qd, s.hidden},
                                                         {kvd, s.hidden},
                                                         {kvd, s.hidden},
                                                         {s.hidden, qd},
                                                         {s.intermediate, s.hidden},
                                                         {s.intermediate, s.hidden},
                                                         {s.hidden, s.intermediate}};
    for (const auto& [rows, cols] : layer_targets)
      p.masks += static_cast<double>(s.layers) * std::ceil(static_cast<double>(rows) / n) *
                 static_cast<double>(cols);
  }

  // Activations of one micro-batch on this rank.
  const double tokens = static_cast<double>(in.seq_len) * static_cast<double>(in.seqs_per_micro);
  const double per_layer =
      tokens * LayerActivationBytesPerToken(s, in.weight_bytes) +
      (in.flash_attention
           ? 0.0
           : ExplicitAttentionBytes(s, in.weight_bytes, static_cast<double>(in.seqs_per_micro),
                                    static_cast<double>(in.seq_len)));
  const double layers = static_cast<double>(s.layers);
  // The loss's fp32 log-softmax (the logits themselves are freed when the loss is formed: neither
  // the cast nor log-softmax keeps its input), plus the final norm's saved tensors.
  const double head = tokens * (static_cast<double>(s.vocab) * 4.0 +
                                static_cast<double>(s.hidden) * (4.0 + 2.0 * w));
  if (in.checkpointing) {
    // Each layer keeps only its input; one layer's activations exist while it is recomputed.
    p.activations = layers * tokens * w * static_cast<double>(s.hidden) + per_layer + head;
  } else {
    p.activations = layers * per_layer + head;
  }
  // The update's temporaries: the unfused AdamW (CPU, offload) keeps two master-sized buffers of
  // the tensor it updates; the backward of the loss two [tokens, vocab] fp32 buffers.
  const double largest = static_cast<double>(
      in.train_all ? std::max(s.LargestTarget(), s.EmbeddingParams()) : s.LargestTarget());
  p.workspace = std::max((in.device == "cpu" || in.offload ? 2.0 * mb : 0.0) * largest,
                         tokens * static_cast<double>(s.vocab) * 8.0);

  double state = p.optimizer + p.master + p.method;
  // Beside a GPU the masks are host memory, held after the method's training (and its offloaded
  // state) is done.
  if (in.device == "cuda") p.host = p.masks;
  if (in.offload) {
    if (in.device == "cuda") {
      // Host: the state alone. Device: the staged master and moments of the tensor in its update
      // (the caching allocator reuses them for the next tensor's).
      p.host = std::max(state, p.masks);
      state = 3.0 * mb * largest;
    } else {
      // Host: the state and the reduced gradients copied out; the device keeps a staging buffer
      // for the tensor being updated.
      p.host = state + mb * owned;
      state = 2.0 * mb * largest;
    }
  }
  const double fixed = p.weights + p.gathered + state + p.workspace;
  // Backward frees a layer's activations as it writes the layer's gradients, so with one pass
  // per step the peak is the larger of the two; with accumulation the earlier passes' gradients
  // are held while the last pass's activations are live.
  const double grads_full = p.gradients;
  p.device_peak = in.grad_accum > 1 ? fixed + grads_full + p.activations
                                    : fixed + std::max(grads_full, p.activations);
  if (in.device == "cpu" && in.offload) {
    p.device_peak += p.host;  // host memory is the device
    p.host = 0;
  }
  // On a CPU rank the masks share the rank's memory with the masked update's training, which
  // holds no method state (ProxSparse's last mask and W0 are gone by then).
  if (in.device == "cpu" && in.masked_update) p.device_peak += std::max(0.0, p.masks - p.method);
  if (in.device == "cpu") {
    // A CPU rank's peak is its process's resident memory, which holds more than live tensors.
    p.runtime = kCpuRuntimeBytes;
    // LibTorch's CPU tensors come from glibc malloc. Its mmap threshold rises to the size of the
    // largest freed mmapped block (up to 32 MiB), so after the first step the step's transients
    // (activations, the loss backward's workspace) come from malloc's heap, which keeps freed
    // chunks resident. The tensors first allocated inside the first step (the owned gradients in
    // backward, ProxSparse's last mask in the update) land among that step's transients and pin
    // their pages, and the next step's workspace-sized blocks no longer fit the holes left: the
    // heap keeps about the pinned tensors plus one workspace more than is live. Measured
    // (bench/shard_memory, codelm-19m, 1/2/4 ranks): RSS peak minus live tensors minus `runtime`
    // 86-93, 46-85 and 27-70 MiB against 92, 62 and 47 here; the spread between ranks of one run
    // is the allocator's placement, which no term predicts.
    // Only blocks up to glibc's largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB on
    // 64-bit) come from the heap: larger ones are always mmapped and unmapped when freed (a 7B
    // model's gradients and [tokens, vocab] buffers are, codelm-19m's are not).
    constexpr double kMaxHeapBlock = 32.0 * 1024 * 1024;
    auto heap = [&](double bytes) { return bytes <= kMaxHeapBlock ? bytes : 0.0; };
    double grads_heap = 0, targets_heap = 0, targets_all = 0;
    for (const auto& [numel, target] : trained) {
      const double here =
          in.shard_params ? std::ceil(static_cast<double>(numel) / n) : static_cast<double>(numel);
      grads_heap += heap(w * here);
      if (target) {
        targets_all += here;
        targets_heap += heap(here);
      }
    }
    // The last mask of the owned targets (1 byte per weight), the share of them in heap blocks.
    const double mask_heap =
        in.mask_state && targets_all > 0 ? owned_targets * targets_heap / targets_all : 0.0;
    p.allocator = grads_heap + mask_heap + 2.0 * heap(tokens * static_cast<double>(s.vocab) * 4.0);
    p.device_peak += p.runtime + p.allocator;
  }
  // Usable: CUDA keeps ~1 GiB for its context and the caching allocator loses some to
  // fragmentation; a CPU process needs its libraries and data besides the model.
  if (in.memory_gib > 0)
    p.limit = in.device == "cuda" ? (in.memory_gib - 1.0) * kGiB * 0.97
                                  : in.memory_gib * kGiB * 0.9 - 0.5 * kGiB;
  p.fits = p.limit <= 0 || p.device_peak <= p.limit;
  return p;
}

}  // namespace

MemoryPlan PlanMemory(const PlanInput& in) {
  MemoryPlan p = Predict(in);
  if (!p.fits) {
    struct Option {
      bool ckpt, offload, params;
      const char* text;
    };
    const Option options[] = {
        {true, false, false, "parallel.activation_checkpointing: true"},
        {false, true, false, "parallel.offload: optimizer"},
        {true, true, false,
         "parallel.activation_checkpointing: true and parallel.offload: optimizer"},
        {true, false, true, "parallel.shard: params"},
        {true, true, true, "parallel.shard: params and parallel.offload: optimizer"}};
    std::vector<std::tuple<bool, bool, bool>> tried;
    for (const auto& o : options) {
      PlanInput alt = in;
      alt.checkpointing = in.checkpointing || o.ckpt;
      alt.offload = in.offload || o.offload;
      alt.shard_params = in.shard_params || o.params;
      const auto key = std::make_tuple(alt.checkpointing, alt.offload, alt.shard_params);
      const bool same = alt.checkpointing == in.checkpointing && alt.offload == in.offload &&
                        alt.shard_params == in.shard_params;
      // Sharded parameters train the targets only.
      if (same || (alt.shard_params && in.train_all) ||
          std::find(tried.begin(), tried.end(), key) != tried.end())
        continue;
      tried.push_back(key);
      MemoryPlan q = Predict(alt);
      if (q.fits)
        p.suggestions.push_back(std::string(o.text) + " (" + Gib(q.device_peak) + " GiB)");
    }
    // More ranks, as the job is; else with sharded parameters.
    for (bool params : {false, true}) {
      if (params && (in.shard_params || in.train_all)) continue;
      bool found = false;
      for (int r = in.ranks * 2; r <= 4096 && !found; r *= 2) {
        PlanInput alt = in;
        alt.ranks = r;
        alt.shard_params = in.shard_params || params;
        alt.checkpointing = in.checkpointing || params;
        MemoryPlan q = Predict(alt);
        if (q.fits) {
          p.suggestions.push_back("resources.ranks: " + std::to_string(r) +
                                  (params ? " and parallel.shard: params" : "") + " (" +
                                  Gib(q.device_peak) + " GiB per rank)");
          found = true;
        }
      }
      if (found) break;
    }
  }
  return p;
}

PlanInput PlanInputFromJob(const JobSpec& spec, const ModelShape& shape, int ranks,
                           double memory_gib) {
  PlanInput in;
  in.shape = shape;
  in.ranks = ranks > 0 ? ranks : spec.resources.ranks;
  in.device = std::string(ChoiceName(spec.device));
  in.memory_gib =
      memory_gib > 0 ? memory_gib : (spec.device == Device::kCpu ? spec.resources.memory_gb : 0.0);
  in.weight_bytes = DtypeBytes(spec.dtype);
  const MethodSpec& m = spec.method;
  in.master_bytes = DtypeBytes(m.master_dtype);
  in.train_all = m.name == "proxsparse" && m.trainable == Trainable::kAll;
  in.mask_state = m.name == "proxsparse";
  in.keep_w0 = m.name == "proxsparse" && (m.lambda2 > 0 || m.hard == HardMode::kSnap);
  in.seq_len = spec.calibration.seqlen;
  const int64_t per_rank = (m.batch_size + in.ranks - 1) / in.ranks;
  in.grad_accum = m.grad_accum;
  in.seqs_per_micro = std::max<int64_t>(1, (per_rank + m.grad_accum - 1) / m.grad_accum);
  in.shard_params = spec.parallel.shard == "params";
  // Sharded parameters run with activation checkpointing (the gathered weights are freed).
  in.checkpointing = spec.parallel.activation_checkpointing || (in.shard_params && in.ranks > 1);
  in.offload = spec.parallel.offload == "optimizer";
  in.flash_attention = spec.device == Device::kCuda;
  in.masked_update = spec.masked_update.steps > 0;
  return in;
}

std::string DescribePlan(const PlanInput& in, const MemoryPlan& p) {
  std::ostringstream o;
  const ModelShape& s = in.shape;
  char head[256];
  std::snprintf(head, sizeof head,
                "memory plan: %.2fB parameters (%ld layers, hidden %ld, intermediate %ld, heads "
                "%ld/%ld, vocab %ld), %d rank(s), %s\n",
                static_cast<double>(s.TotalParams()) / 1e9, static_cast<long>(s.layers),
                static_cast<long>(s.hidden), static_cast<long>(s.intermediate),
                static_cast<long>(s.heads), static_cast<long>(s.kv_heads),
                static_cast<long>(s.vocab), in.ranks, in.device.c_str());
  o << head;
  o << "  ctx " << in.seq_len << ", " << in.seqs_per_micro << " sequence(s) per pass, grad_accum "
    << in.grad_accum << ", weights " << in.weight_bytes * 8 << "-bit, master "
    << in.master_bytes * 8 << "-bit, sharding " << (in.shard_params ? "params" : "optimizer")
    << ", activation checkpointing " << (in.checkpointing ? "on" : "off") << ", offload "
    << (in.offload ? "optimizer" : "none") << "\n";
  auto row = [&](const char* name, double v) { o << "  " << name << Gib(v) << " GiB\n"; };
  row("weights          ", p.weights);
  if (in.shard_params) row("gathered layers  ", p.gathered);
  row("gradients        ", p.gradients);
  row("optimizer state  ", p.optimizer);
  row("master copies    ", p.master);
  row("method state     ", p.method);
  o << "  masks held       " << Gib(p.masks) << " GiB (host"
    << (in.shard_params && in.ranks > 1 ? ", this rank's rows" : ", every whole mask")
    << (in.device == "cpu" && in.masked_update ? "; live in the masked update" : "") << ")\n";
  row("activations      ", p.activations);
  row("workspace        ", p.workspace);
  if (in.device == "cpu") {
    row("process runtime  ", p.runtime);
    row("malloc retention ", p.allocator);
  }
  o << "  peak per rank    " << Gib(p.device_peak) << " GiB"
    << (in.device == "cuda" ? " (GPU)" : " (host)");
  if (in.device == "cuda" && p.host > 0) o << ", host " << Gib(p.host) << " GiB";
  o << "\n";
  if (p.limit <= 0) {
    o << "  fits: unknown (no memory size: pass --gpu-memory GiB)\n";
  } else {
    o << "  usable per rank  " << Gib(p.limit) << " GiB: " << (p.fits ? "fits" : "does NOT fit")
      << "\n";
    for (const auto& sug : p.suggestions) o << "  would fit with   " << sug << "\n";
    if (!p.fits && p.suggestions.empty())
      o << "  no combination of checkpointing, offload and up to 4096 ranks fits\n";
  }
  return o.str();
}

void CheckJobFitsMemory(const JobSpec& spec, double gpu_gib) {
  if (!spec.method.Trains()) return;
  if (spec.device == Device::kCuda && gpu_gib <= 0) return;
  const ModelShape shape = LoadModelShape(spec.model);
  PlanInput in = PlanInputFromJob(spec, shape, 0, spec.device == Device::kCuda ? gpu_gib : 0.0);
  MemoryPlan p = PlanMemory(in);
  if (p.fits) return;
  std::string msg = "resources: the job needs about " + Gib(p.device_peak) + " GiB per rank (" +
                    (spec.device == Device::kCuda ? "GPU" : "resources.memory_gb") + " gives " +
                    Gib(p.limit) + " GiB usable; psworker --plan shows the breakdown)";
  if (p.suggestions.empty()) {
    msg += "; no combination of checkpointing, offload and more ranks fits";
  } else {
    msg += "; it would fit with ";
    for (size_t i = 0; i < p.suggestions.size(); ++i) msg += (i ? ", or " : "") + p.suggestions[i];
  }
  throw Error(msg);
}

}  // namespace ps
