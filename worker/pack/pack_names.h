// Tensor-name suffixes and metadata keys of the three 2:4 artifact kinds (docs/artifacts.md).
#pragma once

namespace ps::pack {

// compressed-tensors, sparse-24-bitmask compressor (see docs/artifacts.md for the version).
inline constexpr char kCtFormat[] = "sparse-24-bitmask";
inline constexpr char kCtVersion[] = "0.9.0";
inline constexpr char kCtShape[] = ".shape";
inline constexpr char kCtCompressed[] = ".compressed";
inline constexpr char kCtBitmask[] = ".bitmask";

// Native layout.
inline constexpr char kNativeFormat[] = "native-24";
inline constexpr char kNativeValues[] = ".sparse24.values";
inline constexpr char kNativeMeta[] = ".sparse24.meta";

// Masks only.
inline constexpr char kMasksFormat[] = "masks-24";
inline constexpr char kMaskShape[] = ".shape";
inline constexpr char kMaskSuffix[] = ".mask";

// safetensors __metadata__ keys.
inline constexpr char kMetaFormat[] = "ps.pack_format";
inline constexpr char kMetaPattern[] = "ps.pattern";
inline constexpr char kMetaEncoding[] = "ps.mask_encoding";
inline constexpr char kMetaBaseHash[] = "ps.base_model_sha256";

}  // namespace ps::pack
