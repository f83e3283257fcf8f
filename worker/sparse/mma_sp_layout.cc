#include "worker/sparse/mma_sp_layout.h"

#include <string>

#include "common/error.h"

namespace ps::sparse {

void BuildMmaSpLayout(const uint16_t* values, const uint8_t* meta, int64_t n, int64_t k,
                      int64_t rt_begin, int64_t rt_end, uint32_t* out_values, uint32_t* out_meta) {
  using namespace spmma;
  if (n < 1 || k < 4 || k % 4 != 0)
    throw Error("BuildMmaSpLayout: shape [" + std::to_string(n) + ", " + std::to_string(k) +
                "] is not a 2:4 weight (in_features must be a positive multiple of 4)");
  const Shape s = MakeShape(n, k);
  const int64_t vrow = k / 2, mrow = (k + 7) / 8, groups = k / 4;
  // The repaired (pair, nibble) of one group of the weight; padding is zeros at positions 0, 1.
  auto group = [&](int64_t row, int64_t gi, uint32_t& v, uint32_t& nib) {
    v = 0;
    nib = 0x4;
    if (row >= n || gi >= groups) return;
    const uint32_t raw =
        values[row * vrow + 2 * gi] | (uint32_t{values[row * vrow + 2 * gi + 1]} << 16);
    const uint32_t raw_nib = (meta[row * mrow + gi / 2] >> (4 * (gi & 1))) & 0xFu;
    if (!RepairGroup(raw, raw_nib, v, nib))
      throw Error("2:4 weight row " + std::to_string(row) + " group " + std::to_string(gi) +
                  " (columns " + std::to_string(4 * gi) + ".." + std::to_string(4 * gi + 3) +
                  "): its metadata puts two nonzero values at position " +
                  std::to_string(raw_nib & 3u) + " (repack the weight)");
  };
  for (int64_t rt = rt_begin; rt < rt_end; ++rt) {
    for (int64_t c = 0; c < s.chunks; ++c) {
      for (int tile = 0; tile < kChunkTiles; ++tile) {
        const int64_t group0 = (c * kChunkK + tile * kTileK) / 4;  // first k-group of the tile
        // The tile's 16 rows x 8 groups, repaired once.
        uint32_t pair[kTileRows][8], nibble[kTileRows][8];
        for (int r = 0; r < kTileRows; ++r)
          for (int j = 0; j < 8; ++j)
            group(rt * kTileRows + r, group0 + j, pair[r][j], nibble[r][j]);
        // Metadata: 16 bits per (row, half h) = the nibbles of k-groups 4h .. 4h + 3.
        auto half_bits = [&](int r, int h) {
          uint32_t bits = 0;
          for (int j = 0; j < 4; ++j) bits |= nibble[r][4 * h + j] << (4 * j);
          return bits;
        };
        for (int g = 0; g < 8; ++g)
          for (int h = 0; h < 2; ++h)
            out_meta[MetaWord(s.chunks, rt, c, g, h, tile)] =
                half_bits(g, h) | (half_bits(g + 8, h) << 16);
        for (int lane = 0; lane < 32; ++lane)
          for (int reg = 0; reg < 4; ++reg)
            out_values[ValueWord(s.chunks, rt, c, tile, lane, reg)] =
                pair[ARow(lane, reg)][AGroup(lane, reg)];
      }
    }
  }
}

}  // namespace ps::sparse
