#include "worker/engine/activation_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

#include <cstdint>
#include <mutex>
#include <vector>

#ifdef PS_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include "common/error.h"

namespace ps {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The default generators' states of the CPU and, for a CUDA tensor, its device.
struct RngState {
  torch::Tensor cpu, cuda;
  int cuda_index = -1;
};

RngState SaveRng([[maybe_unused]] const torch::Device& device) {
  RngState s;
  s.cpu = at::detail::getDefaultCPUGenerator().get_state();
#ifdef PS_WITH_CUDA
  if (device.is_cuda()) {
    s.cuda_index = device.index();
    s.cuda = at::cuda::detail::getDefaultCUDAGenerator(device.index()).get_state();
  }
#endif
  return s;
}

void RestoreRng(const RngState& s) {
  // Generators are handles: a copy sets the shared generator's state.
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(s.cpu);
  }
#ifdef PS_WITH_CUDA
  if (s.cuda.defined()) {
    at::Generator cuda =
        at::cuda::detail::getDefaultCUDAGenerator(static_cast<c10::DeviceIndex>(s.cuda_index));
    std::lock_guard<std::mutex> lock(cuda.mutex());
    cuda.set_state(s.cuda);
  }
#endif
}

// What backward needs besides the saved input: the layer, the RoPE tables and the RNG state.
// Held by the context (saved_data, as a capsule), so it is freed with the graph.
struct LayerCall : torch::CustomClassHolder {
  DecoderLayer* layer = nullptr;
  RopeTables rope;
  RngState rng;
};

class LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
 public:
  // `params` are the layer's parameters that require grad: inputs only so that the node runs in
  // backward even when `h` needs no gradient (layer 0 over frozen embeddings); their gradients
  // are accumulated by the rerun's own backward, so this node returns none for them.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor h, torch::TensorList params,
                               c10::intrusive_ptr<LayerCall> call) {
    call->rng = SaveRng(h.device());
    torch::Tensor out;
    {
      torch::NoGradGuard no_grad;
      out = call->layer->forward(h, call->rope);
    }
    ctx->save_for_backward({h});
    ctx->saved_data["n_params"] = static_cast<int64_t>(params.size());
    ctx->saved_data["call"] = c10::IValue::make_capsule(std::move(call));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto call = c10::static_intrusive_pointer_cast<LayerCall>(ctx->saved_data["call"].toCapsule());
    const torch::Tensor saved = ctx->get_saved_variables()[0];
    const RngState now = SaveRng(saved.device());
    RestoreRng(call->rng);
    torch::Tensor h = saved.detach().requires_grad_(saved.requires_grad());
    torch::Tensor out;
    {
      torch::AutoGradMode grad(true);
      out = call->layer->forward(h, call->rope);
    }
    RestoreRng(now);
    if (out.requires_grad()) torch::autograd::backward({out}, {grad_out[0]});
    variable_list grads;
    grads.push_back(h.requires_grad() ? h.grad() : torch::Tensor());
    // One (undefined) gradient per parameter input, then one for the non-tensor argument.
    for (int64_t i = 0; i < ctx->saved_data["n_params"].toInt(); ++i) grads.emplace_back();
    grads.emplace_back();
    return grads;
  }
};

}  // namespace

torch::Tensor CheckpointedLayer(DecoderLayer& layer, const torch::Tensor& h,
                                const RopeTables& rope) {
  if (!torch::GradMode::is_enabled()) return layer.forward(h, rope);
  std::vector<torch::Tensor> params;
  for (const auto& p : layer.parameters())
    if (p.requires_grad()) params.push_back(p);
  if (params.empty() && !h.requires_grad()) return layer.forward(h, rope);
  auto call = c10::make_intrusive<LayerCall>();
  call->layer = &layer;
  call->rope = rope;
  return LayerCheckpoint::apply(h, torch::TensorList(params), std::move(call));
}

torch::Tensor CheckpointedForward(LlamaForCausalLM& model, const torch::Tensor& ids) {
  if (ids.dim() != 2)
    throw Error("model input must be [batch, tokens], got " + c10::str(ids.sizes()));
  torch::Tensor h = model.Embed(ids);
  const RopeTables rope = model.Rope(0, ids.size(1));
  for (int64_t i = 0; i < model.num_layers(); ++i) h = CheckpointedLayer(model.layer(i), h, rope);
  return model.Logits(model.FinalNorm(h));
}

}  // namespace ps
