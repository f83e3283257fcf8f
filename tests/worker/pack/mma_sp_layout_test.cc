// The mma.sp layout (worker/sparse/mma_sp_layout.h) and the sparse tensor-core kernel's data
// movement, on the CPU: native packs (random and adversarial: ties, +-0.0, groups with 0 or 1
// nonzeros, decreasing or equal positions, huge, subnormal, NaN) are reordered with
// BuildMmaSpLayout, then the kernel's loads (ValueWord, MetaWord, XStageWord, C placement) feed a
// model of mma.sp.m16n8k32 written from the PTX ISA (mma_sp_emulator.h), and the result must be
// the dense product of the native weight, element for element.
#include "worker/sparse/mma_sp_layout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/error.h"
#include "tests/worker/pack/mma_sp_emulator.h"

namespace ps::sparse {
namespace {

using spmma::MakeShape;
using testing::MmaSpM16N8K32;
using testing::ToDouble;
using testing::WarpFragments;

struct NativeWeight {
  int64_t n = 0, k = 0;
  std::vector<uint16_t> values;  // [n, k/2]
  std::vector<uint8_t> meta;     // [n, ceil(k/8)]
  void SetGroup(int64_t row, int64_t gi, uint16_t v0, uint16_t v1, uint32_t nib) {
    values[row * (k / 2) + 2 * gi] = v0;
    values[row * (k / 2) + 2 * gi + 1] = v1;
    uint8_t& byte = meta[row * ((k + 7) / 8) + gi / 2];
    const int shift = 4 * (gi & 1);
    byte = static_cast<uint8_t>((byte & ~(0xF << shift)) | ((nib & 0xF) << shift));
  }
};

struct Layout {
  spmma::Shape shape;
  std::vector<uint32_t> values, meta;
};

Layout Build(const NativeWeight& w) {
  Layout l;
  l.shape = MakeShape(w.n, w.k);
  l.values.assign(l.shape.value_words(), 0xDEADBEEFu);  // every word must be written
  l.meta.assign(l.shape.meta_words(), 0xDEADBEEFu);
  BuildMmaSpLayout(w.values.data(), w.meta.data(), w.n, w.k, 0, l.shape.row_tiles, l.values.data(),
                   l.meta.data());
  return l;
}

// A random nonzero finite 16-bit value with magnitude about 2^-5 .. 2^5.
uint16_t RandomValue(std::mt19937& rng, bool bf16) {
  const uint32_t sign = rng() & 1;
  if (bf16) return static_cast<uint16_t>((sign << 15) | ((122 + rng() % 11) << 7) | (rng() & 0x7F));
  return static_cast<uint16_t>((sign << 15) | ((10 + rng() % 11) << 10) | (rng() & 0x3FF));
}

// The six valid native nibbles (first < second).
uint32_t RandomNibble(std::mt19937& rng) {
  static const uint32_t kPairs[6] = {0x4, 0x8, 0xC, 0x9, 0xD, 0xE};
  return kPairs[rng() % 6];
}

// Every group of a row gets one of the adversarial cases in turn (rows 0 and 1 get plain groups
// so that each tile also has ordinary rows next to the odd ones).
NativeWeight MakeWeight(int64_t n, int64_t k, bool bf16, bool adversarial, uint32_t seed) {
  std::mt19937 rng(seed);
  NativeWeight w;
  w.n = n;
  w.k = k;
  w.values.assign(n * (k / 2), 0);
  w.meta.assign(n * ((k + 7) / 8), 0);
  const uint16_t neg_zero = 0x8000, nan = bf16 ? 0x7FC0 : 0x7E00;
  const uint16_t huge = bf16 ? 0x7E80 : 0x7BFF;  // ~8.5e37 / 65504
  const uint16_t tiny = bf16 ? 0x0001 : 0x0001;  // smallest subnormal
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t gi = 0; gi < k / 4; ++gi) {
      const uint16_t a = RandomValue(rng, bf16), b = RandomValue(rng, bf16);
      const uint32_t nib = RandomNibble(rng);
      const uint32_t p0 = nib & 3, p1 = nib >> 2;
      const int kase = adversarial && r >= 2 ? static_cast<int>((r * 7 + gi) % 11) : 0;
      switch (kase) {
        case 0:  // ordinary
          w.SetGroup(r, gi, a, b, nib);
          break;
        case 1:  // tie
          w.SetGroup(r, gi, a, a, nib);
          break;
        case 2:  // no nonzeros, signed zeros
          w.SetGroup(r, gi, neg_zero, 0, nib);
          break;
        case 3:  // one nonzero, the other -0.0 (either slot)
          w.SetGroup(r, gi, (gi & 1) ? a : neg_zero, (gi & 1) ? neg_zero : a, nib);
          break;
        case 4:  // decreasing positions
          w.SetGroup(r, gi, a, b, p1 | (p0 << 2));
          break;
        case 5:  // equal positions, one of them a zero
          w.SetGroup(r, gi, (gi & 1) ? 0 : a, (gi & 1) ? a : neg_zero, p0 | (p0 << 2));
          break;
        case 6:  // huge and subnormal
          w.SetGroup(r, gi, huge, tiny, nib);
          break;
        case 7:  // NaN kept
          w.SetGroup(r, gi, a, nan, nib);
          break;
        case 8:  // all-zero metadata nibble (both at position 0), both zero
          w.SetGroup(r, gi, 0, 0, 0);
          break;
        case 9:  // one nonzero at position 3, nibble saying (3, 3)
          w.SetGroup(r, gi, a, neg_zero, 0xF);
          break;
        default:  // negative huge and a value at position 0 only
          w.SetGroup(r, gi, static_cast<uint16_t>(huge | 0x8000), 0, nib);
          break;
      }
    }
  }
  return w;
}

std::vector<uint16_t> MakeX(int64_t m, int64_t k, bool bf16, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> x(m * k);
  for (auto& v : x) {
    const uint32_t r = rng() % 16;
    v = r == 0 ? 0 : r == 1 ? 0x8000 : RandomValue(rng, bf16);
  }
  return x;
}

// y[m][row] = sum over the weight's nonzeros of W[row][col] x[m][col], in double, from the native
// form read the obvious way (each nonzero slot at its position).
std::vector<double> DenseReference(const NativeWeight& w, const std::vector<uint16_t>& x,
                                   int64_t m_rows, bool bf16) {
  std::vector<double> y(m_rows * w.n, 0.0);
  for (int64_t r = 0; r < w.n; ++r) {
    for (int64_t gi = 0; gi < w.k / 4; ++gi) {
      const uint32_t nib = (w.meta[r * ((w.k + 7) / 8) + gi / 2] >> (4 * (gi & 1))) & 0xF;
      for (int s = 0; s < 2; ++s) {
        const uint16_t bits = w.values[r * (w.k / 2) + 2 * gi + s];
        if ((bits & 0x7FFF) == 0) continue;
        const int64_t col = 4 * gi + ((s == 0) ? (nib & 3) : (nib >> 2));
        const double wv = ToDouble(bits, bf16);
        for (int64_t m = 0; m < m_rows; ++m)
          y[m * w.n + r] += wv * ToDouble(x[m * w.k + col], bf16);
      }
    }
  }
  return y;
}

// The kernel's data movement on the CPU: per (row tile, slice of chunks_per_split chunks) it
// stages x with XStageWord, loads each lane's A fragment and metadata with ValueWord / MetaWord
// and its B fragment from the staged words, runs the modelled instruction per (k tile, token
// tile), and places the C registers with CRow / CToken. Slices are summed in order, as the
// kernel's last block does.
std::vector<double> EmulateKernel(const Layout& l, const std::vector<uint16_t>& x, int64_t m_rows,
                                  bool bf16, int chunks_per_split) {
  using namespace spmma;
  const int nt = static_cast<int>((m_rows + 7) / 8);
  const int64_t n = l.shape.n, k = l.shape.k, chunks = l.shape.chunks;
  std::vector<double> y(m_rows * n, 0.0);
  for (int64_t rt = 0; rt < l.shape.row_tiles; ++rt) {
    for (int64_t c0 = 0; c0 < chunks; c0 += chunks_per_split) {
      const int64_t c1 = std::min<int64_t>(c0 + chunks_per_split, chunks);
      const int slice_tiles = static_cast<int>((c1 - c0) * kChunkTiles);
      std::vector<uint32_t> stage(static_cast<size_t>(slice_tiles) * nt * 32 * 4, 0xFFFFFFFFu);
      for (int m = 0; m < nt * 8; ++m) {
        for (int u = 0; u < slice_tiles * 4; ++u) {
          const int64_t col = c0 * kChunkK + u * 8;
          for (int q = 0; q < 4; ++q) {
            uint32_t word = 0;
            if (m < m_rows && col < k) {
              const uint16_t* p = x.data() + m * k + col + 2 * q;
              word = p[0] | (uint32_t{p[1]} << 16);
            }
            stage[XStageWord(u >> 2, nt, m, (u & 3) * 8 + 2 * q)] = word;
          }
        }
      }
      std::vector<double> acc(static_cast<size_t>(nt) * 32 * 4, 0.0);
      for (int64_t c = c0; c < c1; ++c) {
        for (int tile = 0; tile < kChunkTiles; ++tile) {
          const int j = static_cast<int>((c - c0) * kChunkTiles + tile);
          for (int tn = 0; tn < nt; ++tn) {
            WarpFragments w;
            for (int lane = 0; lane < 32; ++lane) {
              for (int reg = 0; reg < 4; ++reg) {
                w.a[lane][reg] = l.values[ValueWord(chunks, rt, c, tile, lane, reg)];
                w.b[lane][reg] = stage[((j * nt + tn) * 32 + lane) * 4 + reg];
                w.c[lane][reg] = acc[(tn * 32 + lane) * 4 + reg];
              }
              w.e[lane] = l.meta[MetaWord(chunks, rt, c, lane / 4, lane & 1, tile)];
            }
            MmaSpM16N8K32(w, bf16);
            for (int lane = 0; lane < 32; ++lane)
              for (int reg = 0; reg < 4; ++reg) acc[(tn * 32 + lane) * 4 + reg] = w.c[lane][reg];
          }
        }
      }
      for (int tn = 0; tn < nt; ++tn)
        for (int lane = 0; lane < 32; ++lane)
          for (int i = 0; i < 4; ++i) {
            const int64_t row = rt * kTileRows + CRow(lane, i), m = tn * 8 + CToken(lane, i);
            if (row < n && m < m_rows) y[m * n + row] += acc[(tn * 32 + lane) * 4 + i];
          }
    }
  }
  return y;
}

// Same NaNs, and otherwise equal up to double rounding of the (differently ordered) sums.
void ExpectSameProduct(const std::vector<double>& got, const std::vector<double>& want,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    const bool ok = std::isnan(want[i])
                        ? std::isnan(got[i])
                        : std::abs(got[i] - want[i]) <= 1e-9 * std::abs(want[i]) + 1e-300;
    if (!ok) {
      ++bad;
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " want " << want[i];
    }
  }
}

struct Case {
  int64_t n, k;
};
const Case kShapes[] = {{16, 32}, {48, 256}, {100, 272}, {33, 48}, {20, 400}};

TEST(MmaSpLayout, RepairGroupGivesIncreasingPairsOfTheSameDenseGroup) {
  uint32_t v, nib;
  // Valid pairs pass unchanged.
  ASSERT_TRUE(spmma::RepairGroup(0x40003F80u, 0xD, v, nib));
  EXPECT_EQ(v, 0x40003F80u);
  EXPECT_EQ(nib, 0xDu);
  // Decreasing: swapped, values with them.
  ASSERT_TRUE(spmma::RepairGroup(0x40003F80u, 0x7, v, nib));  // slot 0 at 3, slot 1 at 1
  EXPECT_EQ(nib, 0xDu);                                       // 1, 3
  EXPECT_EQ(v, 0x3F804000u);
  // No nonzeros (+-0.0): positions 0, 1, values +0.0.
  ASSERT_TRUE(spmma::RepairGroup(0x80008000u, 0xE, v, nib));
  EXPECT_EQ(nib, 0x4u);
  EXPECT_EQ(v, 0u);
  // One nonzero at position 3 (equal positions): paired with position 0.
  ASSERT_TRUE(spmma::RepairGroup(0x80003F80u, 0xF, v, nib));
  EXPECT_EQ(nib, 0xCu);  // 0, 3
  EXPECT_EQ(v, 0x3F800000u);
  // One nonzero at position 0: paired with position 1.
  ASSERT_TRUE(spmma::RepairGroup(0x3F800000u, 0x8, v, nib));  // slot 1 at 2 is the nonzero
  EXPECT_EQ(nib, 0x8u);                                       // 0, 2: zero at 0
  EXPECT_EQ(v, 0x3F800000u);
  // NaN is a value.
  ASSERT_TRUE(spmma::RepairGroup(0x7FC00000u, 0x4, v, nib));
  EXPECT_EQ(nib, 0x4u);
  EXPECT_EQ(v, 0x7FC00000u);
  // Two nonzeros at one position cannot be represented.
  EXPECT_FALSE(spmma::RepairGroup(0x40003F80u, 0x5, v, nib));
}

TEST(MmaSpLayout, TwoNonzerosAtOnePositionIsAnErrorNamingTheGroup) {
  NativeWeight w = MakeWeight(16, 64, true, false, 1);
  w.SetGroup(5, 9, 0x3F80, 0x4000, 0xA);  // both at position 2
  try {
    Build(w);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 5 group 9 (columns 36..39)"), std::string::npos)
        << e.what();
  }
}

TEST(MmaSpLayout, EveryWordIsWrittenAndEveryGroupIsAnIncreasingPair) {
  for (const Case& c : kShapes) {
    const Layout l = Build(MakeWeight(c.n, c.k, true, true, 7));
    for (uint32_t word : l.meta) {
      for (int j = 0; j < 8; ++j) {
        const uint32_t nib = (word >> (4 * j)) & 0xF;
        EXPECT_LT(nib & 3, nib >> 2) << "shape " << c.n << "x" << c.k;
      }
    }
    for (uint32_t word : l.values) EXPECT_NE(word, 0xDEADBEEFu);
  }
}

TEST(MmaSpLayout, EmulatedKernelEqualsDenseProductOnRandomWeights) {
  for (bool bf16 : {true, false}) {
    for (const Case& c : kShapes) {
      const NativeWeight w = MakeWeight(c.n, c.k, bf16, false, 11);
      const Layout l = Build(w);
      for (int64_t m : {1, 5, 8, 9, 17, 32}) {
        const auto x = MakeX(m, c.k, bf16, static_cast<uint32_t>(m));
        const auto want = DenseReference(w, x, m, bf16);
        for (int cps : {1, 3}) {
          ExpectSameProduct(EmulateKernel(l, x, m, bf16, cps), want,
                            std::string(bf16 ? "bf16 " : "fp16 ") + std::to_string(c.n) + "x" +
                                std::to_string(c.k) + " M " + std::to_string(m) + " slices of " +
                                std::to_string(cps));
        }
      }
    }
  }
}

TEST(MmaSpLayout, EmulatedKernelEqualsDenseProductOnAdversarialWeights) {
  for (bool bf16 : {true, false}) {
    for (const Case& c : kShapes) {
      const NativeWeight w = MakeWeight(c.n, c.k, bf16, true, 23);
      const Layout l = Build(w);
      for (int64_t m : {1, 8, 13, 32}) {
        const auto x = MakeX(m, c.k, bf16, static_cast<uint32_t>(100 + m));
        ExpectSameProduct(EmulateKernel(l, x, m, bf16, 2), DenseReference(w, x, m, bf16),
                          std::string(bf16 ? "bf16 " : "fp16 ") + std::to_string(c.n) + "x" +
                              std::to_string(c.k) + " M " + std::to_string(m));
      }
    }
  }
}

TEST(MmaSpLayout, TheCheckNoticesAMisplacedMetadataHalfOrRow) {
  // The emulation must be able to fail: metadata of the wrong k half, or of the wrong row, gives
  // a different product.
  const NativeWeight w = MakeWeight(32, 256, true, false, 5);
  const auto x = MakeX(8, 256, true, 3);
  const auto want = DenseReference(w, x, 8, true);
  auto differs = [&](const Layout& l) {
    const auto got = EmulateKernel(l, x, 8, true, 1);
    for (size_t i = 0; i < got.size(); ++i)
      if (std::abs(got[i] - want[i]) > 1e-6 * std::abs(want[i]) + 1e-30) return true;
    return false;
  };
  Layout halves = Build(w);
  for (size_t i = 0; i + 4 < halves.meta.size(); i += 8)  // swap h = 0 and h = 1 of every g
    for (int t = 0; t < 4; ++t) std::swap(halves.meta[i + t], halves.meta[i + 4 + t]);
  EXPECT_TRUE(differs(halves));
  Layout rows = Build(w);
  for (auto& word : rows.meta) word = (word >> 16) | (word << 16);  // rows g and g + 8 swapped
  EXPECT_TRUE(differs(rows));
  EXPECT_FALSE(differs(Build(w)));
}

}  // namespace
}  // namespace ps::sparse
