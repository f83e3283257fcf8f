// The "mma.sp layout" of a 2:4 weight: the native packed layout (docs/artifacts.md) reordered once,
// at load time, into exactly the registers the sparse tensor-core instruction
//   mma.sp.sync.aligned.m16n8k32.row.col.f32.{bf16,f16}.{bf16,f16}.f32
// wants, so the kernel (sparse24_spmma.cu) reads each lane's A fragment and metadata with 16-byte
// loads and never shuffles or decompresses. Plain C++ (no LibTorch, no CUDA) so the loader, the
// kernel and the CPU test share one definition; the index helpers are __host__ __device__.
//
// The instruction (PTX ISA, "Matrix fragments for sparse mma.m16n8k32 with .f16/.bf16"):
// D[16x8] += A[16x32] · B[32x8], A 2:4 sparse along k (groups of 4 consecutive k) and stored
// compressed as 16x16: compressed column c of a row holds slot c % 2 of k-group c / 2, and the
// metadata gives each slot's position 0..3 in its group. Lane = 4·g + t (g = groupID, t =
// threadID_in_group):
//   A, 4 x b32:   a0a1 = (row g,   compressed cols 2t, 2t+1)   = k-group t,     slots 0, 1
//                 a2a3 = (row g+8, compressed cols 2t, 2t+1)   = k-group t,     slots 0, 1
//                 a4a5 = (row g,   compressed cols 2t+8, 2t+9) = k-group t + 4, slots 0, 1
//                 a6a7 = (row g+8, compressed cols 2t+8, 2t+9) = k-group t + 4, slots 0, 1
//                 (the same places as the dense m16n8k16 A fragment; lower element in the low
//                 half of each register)
//   B, 4 x b32:   register r = (k 8r + 2t, 8r + 2t + 1; column n = g)
//   C/D, 4 x f32: c0, c1 = (row g, n 2t, 2t+1); c2, c3 = (row g+8, n 2t, 2t+1)
//   metadata e (b32), sparsity selector 0: only lanes with t = 0 and t = 1 supply it. Lane 4g + h
//                 (h = 0, 1) holds the 16 k of half h (k-groups 4h..4h+3) for row g in bits 0-15
//                 and for row g + 8 in bits 16-31; k-group 4h + j of a row is the nibble at bits
//                 4j..4j+3 of its 16 bits: position of slot 0 in bits 0-1, of slot 1 in bits 2-3,
//                 slot 0 < slot 1 (increasing, as mma.sp::ordered_metadata requires; 0b0000,
//                 0b0101, 0b1010, 0b1111 are invalid).
// The k of the instruction is the weight's column within the 32-column tile (no permutation), so
// a row's 16 bits of metadata for half h are the native metadata's little-endian 16-bit word of
// those 4 groups, and its kept values are the native values in the same order.
//
// Storage: the weight [N, K] is cut into row tiles of 16 rows (the last one padded with zero
// rows) and chunks of kSpChunkK = 128 columns (4 tiles of 32; K padded with zero columns). Per
// (row tile, chunk), in this order:
//   values: [4 tiles][32 lanes][4 registers] u32: one 16-byte A fragment per lane and tile,
//           512 contiguous bytes per tile (one coalesced warp load);
//   meta:   [8 g][2 h][4 tiles] u32: lane 4g + h's metadata for the chunk's 4 tiles, 16 bytes
//           (lanes 4g + 2, 4g + 3 read the same as 4g, 4g + 1; the instruction ignores them).
// Padding and repaired groups hold +0.0 values at positions {0, 1} or other unused positions.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define PS_HD __host__ __device__
#else
#define PS_HD
#endif

namespace ps::sparse::spmma {

inline constexpr int kTileRows = 16;   // weight rows per instruction (its M)
inline constexpr int kTileK = 32;      // weight columns per instruction (its K)
inline constexpr int kChunkTiles = 4;  // k tiles per chunk (one 16-byte metadata load per lane)
inline constexpr int kChunkK = kTileK * kChunkTiles;
inline constexpr int kValueWordsPerTile = 32 * 4;  // 32 lanes x 4 registers
inline constexpr int kValueWordsPerChunk = kValueWordsPerTile * kChunkTiles;  // 2 KiB
inline constexpr int kMetaWordsPerChunk = 8 * 2 * kChunkTiles;                // 256 bytes

struct Shape {
  int64_t n = 0, k = 0;   // the weight's [N, K]
  int64_t row_tiles = 0;  // ceil(N / 16)
  int64_t chunks = 0;     // ceil(K / 128)
  int64_t value_words() const { return row_tiles * chunks * kValueWordsPerChunk; }
  int64_t meta_words() const { return row_tiles * chunks * kMetaWordsPerChunk; }
};

PS_HD inline Shape MakeShape(int64_t n, int64_t k) {
  Shape s;
  s.n = n;
  s.k = k;
  s.row_tiles = (n + kTileRows - 1) / kTileRows;
  s.chunks = (k + kChunkK - 1) / kChunkK;
  return s;
}

// Word index of register `reg` of lane `lane`'s A fragment for k tile `tile` (0..3) of chunk
// `chunk` in row tile `rt`.
PS_HD inline int64_t ValueWord(int64_t chunks, int64_t rt, int64_t chunk, int tile, int lane,
                               int reg) {
  return ((rt * chunks + chunk) * kChunkTiles + tile) * kValueWordsPerTile + lane * 4 + reg;
}
// Word index of the metadata of lane 4g + h (h = 0, 1) for k tile `tile` of the chunk.
PS_HD inline int64_t MetaWord(int64_t chunks, int64_t rt, int64_t chunk, int g, int h, int tile) {
  return (rt * chunks + chunk) * kMetaWordsPerChunk + (g * 2 + h) * kChunkTiles + tile;
}
// What register `reg` of lane `lane`'s A fragment holds: the row within the tile and the k-group
// (0..7) within the tile (both slots: slot 0 in the low half).
PS_HD inline int ARow(int lane, int reg) { return lane / 4 + 8 * (reg & 1); }
PS_HD inline int AGroup(int lane, int reg) { return lane % 4 + 4 * (reg >> 1); }
// What register `reg` of lane `lane`'s B fragment holds: column n (the token within the tile of 8)
// and the first of its two k (within the 32-column tile).
PS_HD inline int BToken(int lane) { return lane / 4; }
PS_HD inline int BK(int lane, int reg) { return 8 * reg + 2 * (lane % 4); }
// Where the kernel stages x in shared memory (B fragments, [slice tile][token tile][lane][4
// registers] words): the word holding columns kk, kk + 1 (kk even, within tile j of the slice) of
// token m, for nt token tiles. Lane l's B fragment of tile j, token tile n is then the 16 bytes at
// word ((j·nt + n)·32 + l)·4.
PS_HD inline int XStageWord(int j, int nt, int m, int kk) {
  const int lane = (m % 8) * 4 + (kk % 8) / 2, reg = kk / 8;
  return ((j * nt + m / 8) * 32 + lane) * 4 + reg;
}
// Which rows and columns C/D register i of lane `lane` holds.
PS_HD inline int CRow(int lane, int i) { return lane / 4 + 8 * (i >> 1); }
PS_HD inline int CToken(int lane, int i) { return 2 * (lane % 4) + (i & 1); }

// One group of the native form -> the group the instruction gets: the kept pair (slot 0 in the low
// 16 bits) and the nibble, positions strictly increasing. `v` holds the native slot-0 value in
// its low half and slot 1 in its high half, `nib` the native nibble. The group's dense values are
// rebuilt (slot s at its position; a zero of either sign writes nothing) and its nonzeros kept in
// position order, padded with the lowest unused positions (values +0.0). Returns false when the
// group cannot be represented: two nonzero values at one position.
PS_HD inline bool RepairGroup(uint32_t v, uint32_t nib, uint32_t& out_v, uint32_t& out_nib) {
  uint32_t dense[4] = {0, 0, 0, 0};
  bool used[4] = {false, false, false, false};
  const uint32_t val[2] = {v & 0xFFFFu, v >> 16};
  const uint32_t pos[2] = {nib & 3u, (nib >> 2) & 3u};
  for (int s = 0; s < 2; ++s) {
    if ((val[s] & 0x7FFFu) == 0) continue;  // +0.0 or -0.0 (bf16 and fp16 alike)
    if (used[pos[s]]) return false;
    used[pos[s]] = true;
    dense[pos[s]] = val[s];
  }
  uint32_t keep[2] = {0, 0};
  int kept = 0;
  for (int p = 0; p < 4 && kept < 2; ++p)
    if (used[p]) keep[kept++] = static_cast<uint32_t>(p);
  for (int p = 0; p < 4 && kept < 2; ++p) {
    if (used[p]) continue;
    used[p] = true;
    // Insert in order: the pair stays increasing.
    if (kept == 1 && static_cast<uint32_t>(p) < keep[0]) {
      keep[1] = keep[0];
      keep[0] = static_cast<uint32_t>(p);
    } else {
      keep[kept] = static_cast<uint32_t>(p);
    }
    ++kept;
  }
  out_v = dense[keep[0]] | (dense[keep[1]] << 16);
  out_nib = keep[0] | (keep[1] << 2);
  return true;
}

}  // namespace ps::sparse::spmma

namespace ps::sparse {

// The native form -> the mma.sp layout, for row tiles [rt_begin, rt_end) (so a loader can split
// the work across threads). values: [N, K/2] 16-bit patterns (bf16 or fp16), meta: [N,
// ceil(K/8)] bytes; out_values / out_meta: Shape::value_words() / meta_words() words for the
// whole weight. K % 4 == 0. ps::Error (naming row, group and columns) for a group with two
// nonzero values at one position.
void BuildMmaSpLayout(const uint16_t* values, const uint8_t* meta, int64_t n, int64_t k,
                      int64_t rt_begin, int64_t rt_end, uint32_t* out_values, uint32_t* out_meta);

}  // namespace ps::sparse
