#include "worker/serve/decode_attention_op.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <string>

#include "common/error.h"
#include "worker/serve/decode_attention.h"

namespace ps::serve {

torch::Tensor CudaDecodeAttention(const torch::Tensor& q, const torch::Tensor& k_pool,
                                  const torch::Tensor& v_pool, const torch::Tensor& positions,
                                  int64_t max_keys, int64_t window) {
  const auto dt = q.scalar_type();
  if (!q.is_cuda() || (dt != torch::kBFloat16 && dt != torch::kFloat16) || q.dim() != 4 ||
      q.size(2) != 1 || k_pool.dim() != 4 || k_pool.scalar_type() != dt ||
      v_pool.scalar_type() != dt || !k_pool.is_contiguous() || !v_pool.is_contiguous() ||
      k_pool.sizes() != v_pool.sizes() || positions.scalar_type() != torch::kInt64 ||
      positions.numel() != q.size(0) || positions.device() != q.device() ||
      k_pool.size(0) < q.size(0) || k_pool.size(3) != q.size(3) || max_keys > k_pool.size(2))
    return {};
  DecodeAttentionShape s;
  s.rows = static_cast<int>(q.size(0));
  s.q_heads = static_cast<int>(q.size(1));
  s.kv_heads = static_cast<int>(k_pool.size(1));
  s.head_dim = static_cast<int>(q.size(3));
  s.max_keys = static_cast<int>(max_keys);
  s.window = static_cast<int>(window);
  s.slot_stride = k_pool.stride(0);
  s.head_stride = k_pool.stride(1);
  if (!DecodeAttentionSupports(s)) return {};
  const torch::Tensor qc = q.contiguous();
  const torch::Tensor pos = positions.contiguous();
  const DecodeAttentionPlan plan =
      PlanDecodeAttention(s, at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  auto work =
      torch::empty({static_cast<int64_t>(plan.workspace_floats)}, q.options().dtype(torch::kFloat));
  auto out = torch::empty({q.size(0), q.size(1), 1, q.size(3)}, q.options());
  const cudaError_t err =
      DecodeAttention(dt == torch::kBFloat16 ? Elem::kBF16 : Elem::kF16, s, plan, qc.data_ptr(),
                      k_pool.data_ptr(), v_pool.data_ptr(), pos.data_ptr<int64_t>(), out.data_ptr(),
                      work.data_ptr<float>(), c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess)
    throw Error(std::string("decode attention kernel: ") + cudaGetErrorString(err) + " (rows " +
                std::to_string(s.rows) + ", heads " + std::to_string(s.q_heads) + "/" +
                std::to_string(s.kv_heads) + ", head_dim " + std::to_string(s.head_dim) +
                ", keys " + std::to_string(s.max_keys) + ")");
  return out;
}

}  // namespace ps::serve
