// Element types as safetensors names them, independent of LibTorch (the coordinator uses this).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace ps {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// Bytes per element.
size_t DTypeSize(DType t);
// The safetensors spelling ("F32", "BF16", "BOOL", ...).
std::string_view DTypeName(DType t);
// Parses the safetensors spelling; nullopt for anything unknown.
std::optional<DType> ParseDType(std::string_view name);
bool IsFloating(DType t);

}  // namespace ps
