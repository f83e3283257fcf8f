#include "worker/pack/codec24.h"

#include <cstring>

#include "common/error.h"

namespace ps::pack {
namespace {

// Calls f(U{}) with the unsigned type as wide as the element, so loops work on bit patterns.
template <typename F>
auto WithElem(DType t, F&& f) {
  switch (DTypeSize(t)) {
    case 2:
      return f(uint16_t{});
    case 4:
      return f(uint32_t{});
    case 8:
      return f(uint64_t{});
  }
  throw Error("unsupported element size");
}

template <typename U>
U Load(const std::byte* p, int64_t i) {
  U v;
  std::memcpy(&v, p + i * sizeof(U), sizeof(U));
  return v;
}

// +0.0 or -0.0: every bit but the sign clear. `W * mask` in torch leaves -0.0 where a negative
// weight was masked, so -0.0 must count as a zero for pruned checkpoints to pack.
template <typename U>
bool IsZero(U v) {
  return (v & static_cast<U>(~(U{1} << (8 * sizeof(U) - 1)))) == 0;
}

// Copies n elements from `src` to `dst` (which may be the same), writing +0.0 for either zero,
// so packed forms and unpacked weights only ever hold +0.0.
void CopyCanonical(DType t, std::byte* dst, const std::byte* src, size_t n) {
  WithElem(t, [&](auto u) {
    using U = decltype(u);
    for (size_t i = 0; i < n; ++i) {
      U v = Load<U>(src, static_cast<int64_t>(i));
      if (IsZero(v)) v = 0;
      std::memcpy(dst + i * sizeof(U), &v, sizeof(U));
    }
  });
}

std::string GroupWhere(int64_t row, int64_t group) {
  return "row " + std::to_string(row) + " columns " + std::to_string(group * 4) + ".." +
         std::to_string(group * 4 + 3);
}

std::string Where(const std::string& name, int64_t row, int64_t group) {
  return "tensor " + name + " " + GroupWhere(row, group);
}

// Completes a keep mask with at most two bits to exactly two, lowest free positions first.
unsigned PadToTwo(unsigned keep, unsigned allowed) {
  for (unsigned p = 0; p < 4 && __builtin_popcount(keep) < 2; ++p)
    if ((allowed >> p & 1u) && !(keep >> p & 1u)) keep |= 1u << p;
  return keep;
}

}  // namespace

uint8_t ChoiceOfMask(unsigned mask4) {
  for (uint8_t c = 0; c < 6; ++c)
    if (MaskOfChoice(c) == mask4) return c;
  return 255;
}

void CheckPackable(const DenseRef& w) {
  if (!IsFloating(w.dtype))
    throw Error("tensor " + w.name + ": dtype " + std::string(DTypeName(w.dtype)) +
                " is not a floating type; only F16, BF16, F32 and F64 weights can be 2:4 packed");
  if (w.rows <= 0 || w.cols <= 0 || w.cols % 4 != 0)
    throw Error("tensor " + w.name + ": shape [" + std::to_string(w.rows) + ", " +
                std::to_string(w.cols) +
                "] cannot be 2:4 packed (needs 2-D with columns a "
                "multiple of 4)");
  if (static_cast<uint64_t>(w.rows * w.cols) * DTypeSize(w.dtype) != w.bytes.size())
    throw Error("tensor " + w.name + ": byte size does not match its shape");
}

std::vector<uint8_t> SelectChoices(const DenseRef& w) {
  CheckPackable(w);
  const int64_t groups = w.cols / 4;
  std::vector<uint8_t> out(static_cast<size_t>(w.rows * groups));
  WithElem(w.dtype, [&](auto u) {
    using U = decltype(u);
    const std::byte* p = w.bytes.data();
    for (int64_t r = 0; r < w.rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t base = r * w.cols + g * 4;
        unsigned nz = 0;
        for (unsigned k = 0; k < 4; ++k) nz |= !IsZero(Load<U>(p, base + k)) << k;
        if (__builtin_popcount(nz) > 2)
          throw Error(Where(w.name, r, g) + " hold " + std::to_string(__builtin_popcount(nz)) +
                      " nonzero values: the weight is not 2:4 sparse (prune it first)");
        out[r * groups + g] = ChoiceOfMask(PadToTwo(nz, 0xF));
      }
    }
  });
  return out;
}

std::vector<uint8_t> SelectChoicesAgainstBase(const DenseRef& pruned, const DenseRef& base) {
  CheckPackable(pruned);
  if (pruned.dtype != base.dtype || pruned.rows != base.rows || pruned.cols != base.cols)
    throw Error("tensor " + pruned.name + ": dtype or shape differs from the base model's");
  const int64_t groups = pruned.cols / 4;
  std::vector<uint8_t> out(static_cast<size_t>(pruned.rows * groups));
  WithElem(pruned.dtype, [&](auto u) {
    using U = decltype(u);
    const std::byte* p = pruned.bytes.data();
    const std::byte* b = base.bytes.data();
    for (int64_t r = 0; r < pruned.rows; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t i0 = r * pruned.cols + g * 4;
        unsigned must = 0, can = 0;  // must keep (nonzero), may keep (equals the base)
        for (unsigned k = 0; k < 4; ++k) {
          const U pv = Load<U>(p, i0 + k), bv = Load<U>(b, i0 + k);
          must |= !IsZero(pv) << k;
          can |= (pv == bv || (IsZero(pv) && IsZero(bv))) << k;
        }
        if (must & ~can)
          throw Error(Where(pruned.name, r, g) +
                      ": a nonzero value differs from the base model's, so the weight is not "
                      "the base model with a mask (wrong --base-model?)");
        if (__builtin_popcount(must) > 2)
          throw Error(Where(pruned.name, r, g) + " hold " +
                      std::to_string(__builtin_popcount(must)) +
                      " nonzero values: the weight is not 2:4 sparse (prune it first)");
        const unsigned keep = PadToTwo(must, can);
        if (__builtin_popcount(keep) != 2)
          throw Error(Where(pruned.name, r, g) +
                      " keep fewer than two of the base model's values; a 2:4 mask keeps "
                      "exactly two, so this weight cannot be stored as base model + mask");
        out[r * groups + g] = ChoiceOfMask(keep);
      }
    }
  });
  return out;
}

std::vector<std::byte> GatherKept(const DenseRef& w, std::span<const uint8_t> choices) {
  const size_t es = DTypeSize(w.dtype);
  const int64_t groups = w.cols / 4;
  if (static_cast<int64_t>(choices.size()) != w.rows * groups)
    throw Error("tensor " + w.name + ": mask has the wrong number of groups");
  std::vector<std::byte> out(static_cast<size_t>(w.rows * w.cols / 2) * es);
  std::byte* o = out.data();
  const std::byte* p = w.bytes.data();
  for (int64_t i = 0; i < w.rows * groups; ++i) {
    const uint8_t c = choices[i];
    std::memcpy(o, p + (i * 4 + kChoicePos[c][0]) * es, es);
    std::memcpy(o + es, p + (i * 4 + kChoicePos[c][1]) * es, es);
    o += 2 * es;
  }
  CopyCanonical(w.dtype, out.data(), out.data(), out.size() / es);
  return out;
}

std::vector<std::byte> ScatterKept(DType dtype, int64_t rows, int64_t cols,
                                   std::span<const std::byte> values,
                                   std::span<const uint8_t> choices) {
  const size_t es = DTypeSize(dtype);
  const int64_t n = rows * cols / 4;
  if (static_cast<int64_t>(choices.size()) != n || values.size() != static_cast<size_t>(n) * 2 * es)
    throw Error("2:4 values and mask sizes do not match the shape");
  std::vector<std::byte> out(static_cast<size_t>(rows * cols) * es, std::byte{0});
  const std::byte* v = values.data();
  std::byte* o = out.data();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t c = choices[i];
    std::memcpy(o + (i * 4 + kChoicePos[c][0]) * es, v, es);
    std::memcpy(o + (i * 4 + kChoicePos[c][1]) * es, v + es, es);
    v += 2 * es;
  }
  // Artifacts written elsewhere may store -0.0 among the kept values; unpacked zeros are +0.0.
  CopyCanonical(dtype, out.data(), out.data(), out.size() / es);
  return out;
}

std::vector<std::byte> ApplyChoices(const DenseRef& base, std::span<const uint8_t> choices) {
  return ScatterKept(base.dtype, base.rows, base.cols, GatherKept(base, choices), choices);
}

int64_t BitmaskRowBytes(int64_t cols) { return (cols + 7) / 8; }
int64_t Base6Bytes(int64_t rows, int64_t cols) { return (rows * cols / 4 + 2) / 3; }

std::vector<uint8_t> EncodeBitmask(int64_t rows, int64_t cols, std::span<const uint8_t> choices) {
  const int64_t rb = BitmaskRowBytes(cols), groups = cols / 4;
  std::vector<uint8_t> out(static_cast<size_t>(rows * rb), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      // Group g covers bits 4g..4g+3 of the row: byte g/2, nibble g%2 (little bit order).
      out[r * rb + g / 2] |= MaskOfChoice(choices[r * groups + g]) << (4 * (g & 1));
    }
  return out;
}

std::vector<uint8_t> EncodeNibbles(int64_t rows, int64_t cols, std::span<const uint8_t> choices) {
  const int64_t rb = BitmaskRowBytes(cols), groups = cols / 4;
  std::vector<uint8_t> out(static_cast<size_t>(rows * rb), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t c = choices[r * groups + g];
      const unsigned nib = kChoicePos[c][0] | (kChoicePos[c][1] << 2);
      out[r * rb + g / 2] |= nib << (4 * (g & 1));
    }
  return out;
}

std::vector<uint8_t> EncodeBase6(std::span<const uint8_t> choices) {
  std::vector<uint8_t> out((choices.size() + 2) / 3, 0);
  for (size_t i = 0; i < choices.size(); i += 3) {
    unsigned code = choices[i];
    if (i + 1 < choices.size()) code += 6u * choices[i + 1];
    if (i + 2 < choices.size()) code += 36u * choices[i + 2];
    out[i / 3] = static_cast<uint8_t>(code);
  }
  return out;
}

std::vector<uint8_t> DecodeBitmask(const std::string& what, int64_t rows, int64_t cols,
                                   std::span<const std::byte> bits) {
  const int64_t rb = BitmaskRowBytes(cols), groups = cols / 4;
  if (static_cast<int64_t>(bits.size()) != rows * rb)
    throw Error(what + ": bitmask has " + std::to_string(bits.size()) + " bytes, expected " +
                std::to_string(rows * rb));
  std::vector<uint8_t> out(static_cast<size_t>(rows * groups));
  for (int64_t r = 0; r < rows; ++r) {
    const auto* row = reinterpret_cast<const uint8_t*>(bits.data()) + r * rb;
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t c = ChoiceOfMask((row[g / 2] >> (4 * (g & 1))) & 0xF);
      if (c == 255)
        throw Error(what + ": bitmask at " + GroupWhere(r, g) +
                    " does not keep exactly two of four values");
      out[r * groups + g] = c;
    }
    if (groups % 2 == 1 && (row[groups / 2] >> 4) != 0)
      throw Error(what + ": bitmask row " + std::to_string(r) + " has nonzero padding bits");
  }
  return out;
}

std::vector<uint8_t> DecodeNibbles(const std::string& what, int64_t rows, int64_t cols,
                                   std::span<const std::byte> meta) {
  const int64_t rb = BitmaskRowBytes(cols), groups = cols / 4;
  if (static_cast<int64_t>(meta.size()) != rows * rb)
    throw Error(what + ": metadata has " + std::to_string(meta.size()) + " bytes, expected " +
                std::to_string(rows * rb));
  std::vector<uint8_t> out(static_cast<size_t>(rows * groups));
  for (int64_t r = 0; r < rows; ++r) {
    const auto* row = reinterpret_cast<const uint8_t*>(meta.data()) + r * rb;
    for (int64_t g = 0; g < groups; ++g) {
      const unsigned nib = (row[g / 2] >> (4 * (g & 1))) & 0xF;
      const unsigned i0 = nib & 3, i1 = nib >> 2;
      if (i0 >= i1)
        throw Error(what + ": metadata at " + GroupWhere(r, g) + " has indices " +
                    std::to_string(i0) + "," + std::to_string(i1) +
                    " (must be two distinct positions in increasing order)");
      out[r * groups + g] = ChoiceOfMask((1u << i0) | (1u << i1));
    }
    if (groups % 2 == 1 && (row[groups / 2] >> 4) != 0)
      throw Error(what + ": metadata row " + std::to_string(r) + " has nonzero padding bits");
  }
  return out;
}

std::vector<uint8_t> DecodeBase6(const std::string& what, int64_t groups,
                                 std::span<const std::byte> codes) {
  const int64_t nbytes = (groups + 2) / 3;
  if (static_cast<int64_t>(codes.size()) != nbytes)
    throw Error(what + ": base-6 mask has " + std::to_string(codes.size()) + " bytes, expected " +
                std::to_string(nbytes));
  std::vector<uint8_t> out(static_cast<size_t>(groups));
  const auto* c = reinterpret_cast<const uint8_t*>(codes.data());
  for (int64_t i = 0; i < nbytes; ++i) {
    unsigned code = c[i];
    if (code >= 216)
      throw Error(what + ": base-6 mask byte " + std::to_string(i) + " is " + std::to_string(code) +
                  " (must be < 216)");
    for (int64_t k = 0; k < 3; ++k, code /= 6) {
      const int64_t g = i * 3 + k;
      if (g < groups) {
        out[g] = static_cast<uint8_t>(code % 6);
      } else if (code % 6 != 0) {
        throw Error(what + ": base-6 mask has nonzero padding in its last byte");
      }
    }
  }
  return out;
}

}  // namespace ps::pack
