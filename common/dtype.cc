#include "common/dtype.h"

#include <array>
#include <utility>

namespace ps {
namespace {

struct Entry {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<Entry, 10> kTable = {{
    {DType::kF64, "F64", 8},
    {DType::kF32, "F32", 4},
    {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8},
    {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},
    {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
}};

const Entry& Find(DType t) {
  for (const auto& e : kTable) {
    if (e.type == t) return e;
  }
  return kTable[0];  // unreachable: every enumerator is in the table
}

}  // namespace

size_t DTypeSize(DType t) { return Find(t).size; }
std::string_view DTypeName(DType t) { return Find(t).name; }

std::optional<DType> ParseDType(std::string_view name) {
  for (const auto& e : kTable) {
    if (e.name == name) return e.type;
  }
  return std::nullopt;
}

bool IsFloating(DType t) {
  return t == DType::kF64 || t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

}  // namespace ps
