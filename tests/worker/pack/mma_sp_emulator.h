// A CPU model of one warp executing
//   mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.{bf16,f16}.{bf16,f16}.f32
// with sparsity selector 0, written from the PTX ISA's fragment description alone (it does not
// use mma_sp_layout.h's helpers, which it is there to check):
//   A (compressed 16 x 16, 4 x b32 per lane, lane = 4g + t): element a_i, i = 0..7, register i / 2
//     (a_{2j} in the low half): row g for i in {0, 1, 4, 5}, g + 8 otherwise; compressed column
//     2t + (i & 1), plus 8 for i >= 4. Compressed column c is slot c % 2 of k-group c / 2.
//   B (32 x 8, 4 x b32): element b_i, register i / 2: k = 2t + (i & 1) + 8·(i / 2), column g.
//   C/D (16 x 8, 4 x f32): c_i: row g for i < 2, g + 8 otherwise; column 2t + (i & 1).
//   Metadata (selector 0): lanes 4g and 4g + 1 only; lane 4g + h, bits 0-15: row g, k 16h ..
//     16h + 15; bits 16-31: row g + 8, same k; within 16 bits, k-group j at bits 4j .. 4j + 3,
//     slot 0's position in the low 2 bits, slot 1's in the high 2, slot 0 < slot 1.
// Products are summed in double: the model checks where each value goes, not fp32 rounding.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace ps::sparse::testing {

inline double Bf16ToDouble(uint32_t bits) {
  const uint32_t f = bits << 16;
  float out;
  static_assert(sizeof(out) == sizeof(f));
  __builtin_memcpy(&out, &f, sizeof(f));
  return out;
}

inline double F16ToDouble(uint32_t bits) {
  const int sign = (bits >> 15) & 1, exp = (bits >> 10) & 0x1F, man = bits & 0x3FF;
  double v;
  if (exp == 0) {
    v = std::ldexp(man, -24);  // subnormal (or zero)
  } else if (exp == 31) {
    v = man ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(1024 + man, exp - 25);
  }
  return sign ? -v : v;
}

inline double ToDouble(uint32_t bits16, bool bf16) {
  return bf16 ? Bf16ToDouble(bits16 & 0xFFFFu) : F16ToDouble(bits16 & 0xFFFFu);
}

struct WarpFragments {
  uint32_t a[32][4] = {};
  uint32_t b[32][4] = {};
  uint32_t e[32] = {};
  double c[32][4] = {};  // accumulators in, results out
};

// D = A·B + C for one warp. std::runtime_error for metadata the instruction does not accept.
inline void MmaSpM16N8K32(WarpFragments& w, bool bf16) {
  // Positions of each (row, k-group)'s two slots, from the metadata-supplying lanes.
  int pos[16][8][2];
  for (int row = 0; row < 16; ++row) {
    for (int q = 0; q < 8; ++q) {
      const int lane = 4 * (row % 8) + q / 4;
      const uint32_t bits16 = row < 8 ? (w.e[lane] & 0xFFFFu) : (w.e[lane] >> 16);
      const uint32_t nib = (bits16 >> (4 * (q % 4))) & 0xFu;
      pos[row][q][0] = static_cast<int>(nib & 3u);
      pos[row][q][1] = static_cast<int>(nib >> 2);
      if (pos[row][q][0] >= pos[row][q][1])
        throw std::runtime_error("mma.sp metadata of row " + std::to_string(row) + " k-group " +
                                 std::to_string(q) +
                                 " is not an increasing pair: " + std::to_string(nib));
    }
  }
  // The hardware multiplies each stored value by the B row its position selects; the other
  // rows of B are not read (so a pruned weight adds nothing even against an Inf or NaN x).
  double val[16][8][2] = {}, b[32][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 8; ++i) {
      const uint32_t bits = (w.a[lane][i / 2] >> (16 * (i & 1))) & 0xFFFFu;
      const int row = (i == 0 || i == 1 || i == 4 || i == 5) ? g : g + 8;
      const int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
      val[row][col / 2][col % 2] = ToDouble(bits, bf16);
      const uint32_t bbits = (w.b[lane][i / 2] >> (16 * (i & 1))) & 0xFFFFu;
      b[2 * t + (i & 1) + 8 * (i / 2)][g] = ToDouble(bbits, bf16);
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? g : g + 8, col = 2 * t + (i & 1);
      double s = w.c[lane][i];
      for (int q = 0; q < 8; ++q)
        for (int slot = 0; slot < 2; ++slot)
          s += val[row][q][slot] * b[4 * q + pos[row][q][slot]][col];
      w.c[lane][i] = s;
    }
  }
}

}  // namespace ps::sparse::testing
