#include "worker/serve/decode_fused_op.h"

#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <string>

#include "common/error.h"
#include "worker/serve/decode_fused.h"

namespace ps::serve {

namespace {

Elem ElemOf(const torch::Tensor& t, const char* what) {
  if (!t.is_cuda())
    throw Error(std::string("fused decode op: ") + what + " is on " + t.device().str() +
                ", not a CUDA device");
  if (t.scalar_type() == torch::kBFloat16) return Elem::kBF16;
  if (t.scalar_type() == torch::kFloat16) return Elem::kF16;
  throw Error(std::string("fused decode op: ") + what + " is " +
              std::string(c10::toString(t.scalar_type())) + "; only bf16 and fp16 are fused");
}

void Require(bool ok, const std::string& what) {
  if (!ok) throw Error("fused decode op: " + what);
}

void Check(cudaError_t err, const std::string& op) {
  if (err != cudaSuccess) throw Error(op + " kernel: " + cudaGetErrorString(err));
}

cudaStream_t Stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace

std::pair<torch::Tensor, torch::Tensor> FusedAddRmsNorm(const torch::Tensor& h,
                                                        const torch::Tensor& delta,
                                                        const torch::Tensor& weight, double eps) {
  const Elem e = ElemOf(h, "the hidden state");
  const int64_t hidden = h.size(-1);
  Require(h.is_contiguous() && weight.is_contiguous() && weight.numel() == hidden &&
              weight.scalar_type() == h.scalar_type() && weight.device() == h.device(),
          "RMSNorm needs a contiguous hidden state and a weight of its width and dtype");
  if (delta.defined())
    Require(delta.is_contiguous() && delta.sizes() == h.sizes() &&
                delta.scalar_type() == h.scalar_type() && delta.device() == h.device(),
            "the residual to add must be contiguous, of the hidden state's shape and dtype");
  auto y = torch::empty_like(h);
  Check(AddRmsNorm(e, h.data_ptr(), delta.defined() ? delta.data_ptr() : nullptr,
                   delta.defined() ? h.data_ptr() : nullptr, weight.data_ptr(), y.data_ptr(),
                   static_cast<int>(h.numel() / hidden), static_cast<int>(hidden),
                   static_cast<float>(eps), Stream()),
        "RMSNorm");
  return {h, y};
}

torch::Tensor FusedRopeAndCache(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& cos,
                                const torch::Tensor& sin, const torch::Tensor& positions,
                                const torch::Tensor& slots, const torch::Tensor& k_pool,
                                const torch::Tensor& v_pool) {
  const Elem e = ElemOf(q, "q");
  const int64_t n = q.size(0), d = k_pool.size(3), kv_heads = k_pool.size(1);
  auto same = [&](const torch::Tensor& t) {
    return t.scalar_type() == q.scalar_type() && t.device() == q.device();
  };
  Require(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && q.size(1) == 1 && k.size(0) == n &&
              v.size(0) == n && k.size(1) == 1 && v.size(1) == 1 && q.stride(2) == 1 &&
              k.stride(2) == 1 && v.stride(2) == 1 && d % 2 == 0 && q.size(2) % d == 0 &&
              k.size(2) == kv_heads * d && v.size(2) == kv_heads * d,
          "RoPE needs q [n, 1, heads x head_dim] and k, v [n, 1, kv_heads x head_dim]");
  Require(same(k) && same(v) && same(cos) && same(sin) && same(k_pool) && same(v_pool),
          "RoPE's tensors must share q's dtype and device");
  Require(cos.is_contiguous() && sin.is_contiguous() && cos.dim() == 2 && cos.size(1) == d &&
              sin.sizes() == cos.sizes(),
          "the RoPE tables must be contiguous [max_len, head_dim]");
  Require(k_pool.is_contiguous() && v_pool.is_contiguous() && k_pool.sizes() == v_pool.sizes(),
          "the KV pools must be contiguous and of one shape");
  Require(positions.scalar_type() == torch::kInt64 && slots.scalar_type() == torch::kInt64 &&
              positions.numel() == n && slots.numel() == n && positions.device() == q.device() &&
              slots.device() == q.device(),
          "positions and slots must be n int64 values on q's device");
  const torch::Tensor pos = positions.contiguous(), slot = slots.contiguous();
  const int64_t q_heads = q.size(2) / d;
  auto out = torch::empty({n, q_heads, 1, d}, q.options());
  RopeCacheArgs a;
  a.q_in = q.data_ptr();
  a.k_in = k.data_ptr();
  a.v_in = v.data_ptr();
  a.q_row_stride = q.stride(0);
  a.k_row_stride = k.stride(0);
  a.v_row_stride = v.stride(0);
  a.cos = cos.data_ptr();
  a.sin = sin.data_ptr();
  a.pos = pos.data_ptr<int64_t>();
  a.slot = slot.data_ptr<int64_t>();
  a.q_out = out.data_ptr();
  a.k_pool = k_pool.data_ptr();
  a.v_pool = v_pool.data_ptr();
  a.slot_stride = k_pool.stride(0);
  a.head_stride = k_pool.stride(1);
  a.n = static_cast<int>(n);
  a.q_heads = static_cast<int>(q_heads);
  a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = static_cast<int>(d);
  Check(RopeAndCache(e, a, Stream()), "RoPE");
  return out;
}

torch::Tensor FusedSiluMul(const torch::Tensor& gate, const torch::Tensor& up) {
  const Elem e = ElemOf(gate, "the gate projection");
  Require(gate.is_contiguous() && up.is_contiguous() && gate.sizes() == up.sizes() &&
              gate.scalar_type() == up.scalar_type() && gate.device() == up.device(),
          "SiLU-multiply needs contiguous gate and up of one shape and dtype");
  auto out = torch::empty_like(gate);
  Check(SiluMul(e, gate.data_ptr(), up.data_ptr(), out.data_ptr(), gate.numel(), Stream()),
        "SiLU-multiply");
  return out;
}

}  // namespace ps::serve
