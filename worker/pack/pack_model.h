// Whole-checkpoint 2:4 artifacts (docs/artifacts.md): `pstool pack` and `pstool unpack`.
//
//   compressed-tensors  what vLLM and transformers' compressed-tensors loader read: each target
//                       weight becomes <module>.compressed / .bitmask / .shape, and config.json
//                       gains quantization_config.sparsity_config (format sparse-24-bitmask).
//   native              <module>.sparse24.values [out, in/2] + <module>.sparse24.meta (2-bit
//                       position of every kept value), ready for cuSPARSELt / CUTLASS at load.
//   masks               only the masks (packed bits or base-6, 0.667 bit/param) plus the
//                       SHA-256 of the base model they apply to.
// Unpacking restores the dense checkpoint bit for bit. Every malformed or mismatched input is a
// ps::Error naming the file and tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace ps::pack {

enum class Format { kCompressedTensors, kNative, kMasks };
enum class MaskEncoding { kBase6, kBits };

Format ParseFormat(const std::string& s);              // "compressed-tensors" | "native" | "masks"
MaskEncoding ParseMaskEncoding(const std::string& s);  // "base6" | "bits"
std::string FormatName(Format f);
std::string MaskEncodingName(MaskEncoding e);

struct PackOptions {
  std::filesystem::path model;       // the 2:4-pruned checkpoint
  std::filesystem::path output;      // new directory (must not exist or be empty)
  std::filesystem::path base_model;  // dense base: required for masks, else the size reference
  Format format = Format::kCompressedTensors;
  MaskEncoding mask_encoding = MaskEncoding::kBase6;
};

// Sizes of one artifact against the dense checkpoint (bytes of its .safetensors files).
struct PackReport {
  std::string format;
  std::string encoding;         // masks only
  uint64_t dense_bytes = 0;     // the dense checkpoint's safetensors files
  uint64_t artifact_bytes = 0;  // every file written to the output directory
  int64_t target_tensors = 0;
  int64_t target_params = 0;
  uint64_t target_dense_bytes = 0;   // the target weights, dense
  uint64_t target_packed_bytes = 0;  // what replaced them (values + metadata, or the masks)
  nlohmann::json ToJson() const;
};

PackReport PackModel(const PackOptions& opt);

struct UnpackOptions {
  std::filesystem::path input;       // an artifact directory (format detected)
  std::filesystem::path output;      // new directory for the dense checkpoint
  std::filesystem::path base_model;  // masks artifacts only
};

struct UnpackReport {
  std::string format;
  int64_t restored_tensors = 0;
  uint64_t output_bytes = 0;
  nlohmann::json ToJson() const;
};

UnpackReport UnpackModel(const UnpackOptions& opt);

// SHA-256 identifying a checkpoint's weights: the SHA-256 of the lines "<file> <sha256 of file>\n"
// over its .safetensors files in name order.
std::string BaseModelHash(const std::filesystem::path& dir);

}  // namespace ps::pack
