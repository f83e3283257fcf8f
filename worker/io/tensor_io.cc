#include "worker/io/tensor_io.h"

#include "common/error.h"

namespace ps {

torch::ScalarType ToTorch(DType t) {
  switch (t) {
    case DType::kF64:
      return torch::kFloat64;
    case DType::kF32:
      return torch::kFloat32;
    case DType::kF16:
      return torch::kFloat16;
    case DType::kBF16:
      return torch::kBFloat16;
    case DType::kI64:
      return torch::kInt64;
    case DType::kI32:
      return torch::kInt32;
    case DType::kI16:
      return torch::kInt16;
    case DType::kI8:
      return torch::kInt8;
    case DType::kU8:
      return torch::kUInt8;
    case DType::kBool:
      return torch::kBool;
  }
  throw Error("unsupported dtype");
}

DType FromTorch(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64:
      return DType::kF64;
    case torch::kFloat32:
      return DType::kF32;
    case torch::kFloat16:
      return DType::kF16;
    case torch::kBFloat16:
      return DType::kBF16;
    case torch::kInt64:
      return DType::kI64;
    case torch::kInt32:
      return DType::kI32;
    case torch::kInt16:
      return DType::kI16;
    case torch::kInt8:
      return DType::kI8;
    case torch::kUInt8:
      return DType::kU8;
    case torch::kBool:
      return DType::kBool;
    default:
      throw Error(std::string("dtype ") + c10::toString(t) + " has no safetensors name");
  }
}

torch::Tensor TensorView(const SafetensorsFile& file, const TensorInfo& info) {
  auto bytes = file.Data(info);
  // from_blob wants a mutable pointer; the tensor is read-only by contract (see the header).
  void* p = const_cast<std::byte*>(bytes.data());
  if (info.Numel() == 0) return torch::empty(info.shape, torch::dtype(ToTorch(info.dtype)));
  return torch::from_blob(p, info.shape, torch::dtype(ToTorch(info.dtype)));
}

torch::Tensor TensorView(const Checkpoint& ckpt, std::string_view name) {
  return TensorView(ckpt.FileOf(name), ckpt.Info(name));
}

void SaveTensors(const std::filesystem::path& path,
                 const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;
  std::vector<TensorToWrite> out;
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    torch::Tensor c = t.to(torch::kCPU).contiguous();
    keep.push_back(c);
    TensorToWrite w;
    w.name = name;
    w.dtype = FromTorch(c.scalar_type());
    w.shape.assign(c.sizes().begin(), c.sizes().end());
    w.bytes = {static_cast<const std::byte*>(c.data_ptr()),
               static_cast<size_t>(c.numel() * c.element_size())};
    out.push_back(std::move(w));
  }
  WriteSafetensors(path, out, metadata);
}

}  // namespace ps
