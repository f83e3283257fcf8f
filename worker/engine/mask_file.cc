#include "worker/engine/mask_file.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/safetensors.h"
#include "worker/methods/nm_mask.h"

namespace ps {

void WriteMasksFile(const std::filesystem::path& file,
                    const std::map<std::string, std::vector<int64_t>>& shapes,
                    const std::function<torch::Tensor(const std::string&)>& mask_of,
                    const NMPattern& pattern, const std::string& base_model_sha256) {
  std::vector<TensorHeader> headers;
  std::vector<std::string> names;
  nlohmann::json shape_meta = nlohmann::json::object();
  for (const auto& [name, shape] : shapes) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    headers.push_back({name, DType::kU8, {(numel + 7) / 8}});
    names.push_back(name);
    shape_meta[name] = shape;
  }
  torch::Tensor packed;  // the tensor being written; released when the next is packed
  WriteSafetensorsStreamed(file, headers,
                           [&](size_t i) -> std::span<const std::byte> {
                             packed = torch::Tensor();
                             const torch::Tensor mask = mask_of(names[i]);
                             if (mask.sizes().vec() != shapes.at(names[i]))
                               throw Error("masks file: the mask of " + names[i] + " has shape " +
                                           c10::str(mask.sizes()) + ", expected " +
                                           c10::str(shapes.at(names[i])));
                             packed = PackMaskBits(mask).contiguous();
                             return {static_cast<const std::byte*>(packed.data_ptr()),
                                     static_cast<size_t>(packed.numel())};
                           },
                           {{"format", "proxsparse-masks-v1"},
                            {"pattern", pattern.ToString()},
                            {"bit_order", "little"},
                            {"shapes", shape_meta.dump()},
                            {"base_model_sha256", base_model_sha256}});
}

}  // namespace ps
