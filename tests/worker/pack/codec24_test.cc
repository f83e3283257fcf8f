// The 2:4 codecs against slow per-element references, on random and adversarial inputs.
#include "worker/pack/codec24.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "common/error.h"
#include "tests/worker/pack/pack_test_util.h"

namespace ps::pack {
namespace {

using testing::RandomFloats;

std::vector<uint8_t> RandomChoices(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> c(n);
  for (auto& x : c) x = static_cast<uint8_t>(rng() % 6);
  return c;
}

bool Kept(uint8_t choice, int pos) {
  return pos == kChoicePos[choice][0] || pos == kChoicePos[choice][1];
}

std::span<const std::byte> AsBytes(const std::vector<uint8_t>& v) {
  return std::as_bytes(std::span(v.data(), v.size()));
}

TEST(Codec24, ChoiceTableIsTheSixTwoOfFourMasks) {
  int found = 0;
  for (unsigned m = 0; m < 16; ++m) {
    const uint8_t c = ChoiceOfMask(m);
    if (__builtin_popcount(m) == 2) {
      ASSERT_LT(c, 6);
      EXPECT_EQ(MaskOfChoice(c), m);
      ++found;
    } else {
      EXPECT_EQ(c, 255) << m;
    }
  }
  EXPECT_EQ(found, 6);
}

// numpy.packbits(mask, axis=-1, bitorder="little"): element j of a row is bit j%8 of byte j/8.
TEST(Codec24, BitmaskMatchesLittleEndianPackbits) {
  std::mt19937_64 rng(1);
  for (int64_t cols : {4, 8, 12, 20, 64, 100}) {
    const int64_t rows = 3, groups = cols / 4;
    const auto choices = RandomChoices(rng, rows * groups);
    const auto bits = EncodeBitmask(rows, cols, choices);
    const int64_t rb = (cols + 7) / 8;
    ASSERT_EQ(static_cast<int64_t>(bits.size()), rows * rb);
    std::vector<uint8_t> ref(rows * rb, 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j)
        if (Kept(choices[r * groups + j / 4], j % 4)) ref[r * rb + j / 8] |= 1u << (j % 8);
    EXPECT_EQ(bits, ref) << cols;
    EXPECT_EQ(DecodeBitmask("t", rows, cols, AsBytes(bits)), choices);
  }
}

// Native metadata: group g of a row is nibble g%2 of byte g/2, low 2 bits the first kept index.
TEST(Codec24, NibblesMatchReference) {
  std::mt19937_64 rng(2);
  for (int64_t cols : {4, 8, 12, 36, 128}) {
    const int64_t rows = 5, groups = cols / 4, rb = (cols + 7) / 8;
    const auto choices = RandomChoices(rng, rows * groups);
    const auto meta = EncodeNibbles(rows, cols, choices);
    std::vector<uint8_t> ref(rows * rb, 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        int idx[2], n = 0;
        for (int k = 0; k < 4; ++k)
          if (Kept(choices[r * groups + g], k)) idx[n++] = k;
        ref[r * rb + g / 2] |= (idx[0] | idx[1] << 2) << (4 * (g % 2));
      }
    EXPECT_EQ(meta, ref) << cols;
    EXPECT_EQ(DecodeNibbles("t", rows, cols, AsBytes(meta)), choices);
  }
}

TEST(Codec24, Base6PacksThreeGroupsPerByte) {
  std::vector<uint8_t> all;  // every triple, then a short tail of 1 and of 2 groups
  for (int a = 0; a < 6; ++a)
    for (int b = 0; b < 6; ++b)
      for (int c = 0; c < 6; ++c) all.insert(all.end(), {uint8_t(a), uint8_t(b), uint8_t(c)});
  for (size_t tail : {0, 1, 2}) {
    std::vector<uint8_t> ch = all;
    for (size_t i = 0; i < tail; ++i) ch.push_back(5);
    const auto codes = EncodeBase6(ch);
    ASSERT_EQ(codes.size(), (ch.size() + 2) / 3);
    for (size_t i = 0; i < all.size() / 3; ++i)
      EXPECT_EQ(codes[i], all[3 * i] + 6 * all[3 * i + 1] + 36 * all[3 * i + 2]);
    EXPECT_EQ(DecodeBase6("t", ch.size(), AsBytes(codes)), ch);
  }
  EXPECT_EQ(Base6Bytes(4, 12), 4);  // 12 groups -> 4 bytes: 0.667 bit per parameter
}

TEST(Codec24, DecodersRejectMalformedInput) {
  std::vector<uint8_t> three_bits = {0x07};  // 8 cols: group 0 keeps 3
  EXPECT_THROW(DecodeBitmask("t", 1, 8, AsBytes(three_bits)), Error);
  std::vector<uint8_t> pad = {0x33};  // 4 cols: group 0 ok, padding nibble set
  EXPECT_THROW(DecodeBitmask("t", 1, 4, AsBytes(pad)), Error);
  std::vector<uint8_t> short_mask = {0x33};
  EXPECT_THROW(DecodeBitmask("t", 2, 8, AsBytes(short_mask)), Error);
  std::vector<uint8_t> same_idx = {0x05};  // indices 1,1
  EXPECT_THROW(DecodeNibbles("t", 1, 4, AsBytes(same_idx)), Error);
  std::vector<uint8_t> desc = {0x02};  // indices 2,0 (not increasing)
  EXPECT_THROW(DecodeNibbles("t", 1, 4, AsBytes(desc)), Error);
  std::vector<uint8_t> big = {216};
  EXPECT_THROW(DecodeBase6("t", 3, AsBytes(big)), Error);
  std::vector<uint8_t> tail = {6};  // second group set, but only one group exists
  EXPECT_THROW(DecodeBase6("t", 1, AsBytes(tail)), Error);
  try {
    DecodeBitmask("layer.bitmask", 1, 8, AsBytes(three_bits));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer.bitmask"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("columns 0..3"), std::string::npos);
  }
}

DenseRef Ref(const std::vector<std::byte>& b, DType t, int64_t rows, int64_t cols) {
  return DenseRef{"w", t, rows, cols, b};
}

// Random 2:4 weights with 0, 1 or 2 nonzeros per group, including -0.0, NaN and infinities:
// gather then scatter restores every bit, except that zeros come back as +0.0.
TEST(Codec24, GatherScatterRoundTripIsBitExact) {
  std::mt19937_64 rng(3);
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32, DType::kF64}) {
    const size_t es = DTypeSize(t);
    const int64_t rows = 7, cols = 24;
    auto w = RandomFloats(rng, rows * cols, t);
    for (int64_t g = 0; g < rows * cols / 4; ++g) {
      const int nz = static_cast<int>(rng() % 3);  // keep this many, zero the rest
      for (int k = nz; k < 4; ++k) std::memset(&w[(g * 4 + k) * es], 0, es);
      if (rng() % 4 == 0) {  // adversarial specials in the kept slots
        uint64_t special[] = {uint64_t{1} << (8 * es - 1), ~uint64_t{0}, uint64_t{0x7F80}};
        std::memcpy(&w[g * 4 * es], &special[rng() % 3], es);
      }
      for (int k = 3; k > 0; --k)  // move the nonzeros to random positions of the group
        std::swap_ranges(w.data() + (g * 4 + k) * es, w.data() + (g * 4 + k + 1) * es,
                         w.data() + (g * 4 + rng() % (k + 1)) * es);
    }
    const auto ref = Ref(w, t, rows, cols);
    const auto choices = SelectChoices(ref);
    const auto values = GatherKept(ref, choices);
    ASSERT_EQ(values.size(), w.size() / 2);
    const auto plus = testing::PlusZeros(t, w);
    EXPECT_EQ(ScatterKept(t, rows, cols, values, choices), plus) << DTypeName(t);
    EXPECT_EQ(testing::PlusZeros(t, values), values) << "packed values hold a -0.0";
    // Every nonzero element is at a kept position; zeros-only groups keep {0,1}.
    const std::vector<std::byte> zero(es);
    for (int64_t g = 0; g < rows * cols / 4; ++g)
      for (int k = 0; k < 4; ++k)
        if (std::memcmp(&plus[(g * 4 + k) * es], zero.data(), es) != 0) {
          EXPECT_TRUE(Kept(choices[g], k)) << "group " << g << " position " << k;
        }
  }
}

TEST(Codec24, NotTwoFourSparseIsAnErrorNamingThePlace) {
  std::vector<float> w(16, 0.0f);
  w[9] = 1.0f;
  w[10] = 2.0f;
  w[11] = 3.0f;
  std::vector<std::byte> b(w.size() * 4);
  std::memcpy(b.data(), w.data(), b.size());
  try {
    SelectChoices(DenseRef{"blk.q_proj.weight", DType::kF32, 2, 8, b});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("blk.q_proj.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("row 1 columns 0..3"), std::string::npos) << m;
    EXPECT_NE(m.find("not 2:4 sparse"), std::string::npos) << m;
  }
  EXPECT_THROW(SelectChoices(DenseRef{"w", DType::kF32, 1, 6, {}}), Error);  // cols % 4
  EXPECT_THROW(SelectChoices(DenseRef{"w", DType::kI32, 2, 8, b}), Error);   // not float
  EXPECT_THROW(SelectChoices(DenseRef{"w", DType::kF32, 2, 4, b}), Error);   // byte count
}

// `W * mask` in torch leaves -0.0 where a negative weight was masked: such a group is 2:4, its
// -0.0 is never a kept value in preference to a nonzero, and what is stored is +0.0.
TEST(Codec24, NegativeZeroIsAZeroAndIsStoredAsPlusZero) {
  const std::vector<float> w = {-0.0f, 1.0f,  -0.0f, -2.0f,   // two values, two -0.0
                                -0.0f, -0.0f, 5.0f,  -0.0f,   // one value: padded with a -0.0
                                -0.0f, -0.0f, -0.0f, -0.0f};  // nothing kept but zeros
  std::vector<std::byte> b(w.size() * 4);
  std::memcpy(b.data(), w.data(), b.size());
  const DenseRef ref{"layers.0.mlp.down_proj.weight", DType::kF32, 1, 12, b};
  const auto choices = SelectChoices(ref);
  ASSERT_EQ(choices.size(), 3u);
  EXPECT_EQ(MaskOfChoice(choices[0]), 0b1010u);
  EXPECT_EQ(MaskOfChoice(choices[1]), 0b0101u);  // 5.0 and the lowest zero position
  EXPECT_EQ(MaskOfChoice(choices[2]), 0b0011u);
  const auto values = GatherKept(ref, choices);
  std::vector<float> v(6);
  std::memcpy(v.data(), values.data(), values.size());
  EXPECT_EQ(v, (std::vector<float>{1.0f, -2.0f, 0.0f, 5.0f, 0.0f, 0.0f}));
  for (float x : v) EXPECT_FALSE(x == 0.0f && std::signbit(x)) << "a -0.0 was stored";
  const auto back = ScatterKept(DType::kF32, 1, 12, values, choices);
  std::vector<float> d(12);
  std::memcpy(d.data(), back.data(), back.size());
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(d[i], w[i]) << i;
    EXPECT_FALSE(std::signbit(d[i]) && d[i] == 0.0f) << "column " << i << " came back -0.0";
  }
  // Against a base: the pruned -0.0 where the base holds a negative value is a dropped position.
  const std::vector<float> base = {-3.0f, 1.0f, -0.5f, -2.0f, -7.0f, -0.0f,
                                   5.0f,  0.0f, -1.0f, 0.0f,  -0.0f, -4.0f};
  std::vector<std::byte> bb(base.size() * 4);
  std::memcpy(bb.data(), base.data(), bb.size());
  const auto against = SelectChoicesAgainstBase(ref, DenseRef{"base", DType::kF32, 1, 12, bb});
  EXPECT_EQ(MaskOfChoice(against[0]), 0b1010u);
  EXPECT_EQ(MaskOfChoice(against[1]), 0b0110u);  // 5.0 and the base's -0.0
  EXPECT_EQ(MaskOfChoice(against[2]), 0b0110u);  // the base's two zeros (either sign)
}

TEST(Codec24, ChoicesAgainstBaseReproduceThePrunedWeight) {
  std::mt19937_64 rng(4);
  const int64_t rows = 6, cols = 16;
  const DType t = DType::kBF16;
  auto base = RandomFloats(rng, rows * cols, t);
  // Make some base zeros so the "keep a zero of the base" case happens.
  for (int i = 0; i < 10; ++i) std::memset(&base[(rng() % (rows * cols)) * 2], 0, 2);
  std::vector<uint8_t> truth = RandomChoices(rng, rows * cols / 4);
  const auto pruned = ApplyChoices(Ref(base, t, rows, cols), truth);
  const auto got = SelectChoicesAgainstBase(Ref(pruned, t, rows, cols), Ref(base, t, rows, cols));
  EXPECT_EQ(ApplyChoices(Ref(base, t, rows, cols), got), pruned);

  auto wrong = pruned;  // a kept value that differs from the base
  for (size_t i = 0; i < wrong.size(); i += 2)
    if (wrong[i] != std::byte{0} || wrong[i + 1] != std::byte{0}) {
      wrong[i] ^= std::byte{1};
      break;
    }
  EXPECT_THROW(SelectChoicesAgainstBase(Ref(wrong, t, rows, cols), Ref(base, t, rows, cols)),
               Error);
  // A group keeping only one base value (three nonzero base values dropped).
  std::vector<float> b4 = {1, 2, 3, 4}, p4 = {1, 0, 0, 0};
  std::vector<std::byte> bb(16), pb(16);
  std::memcpy(bb.data(), b4.data(), 16);
  std::memcpy(pb.data(), p4.data(), 16);
  EXPECT_THROW(SelectChoicesAgainstBase(DenseRef{"w", DType::kF32, 1, 4, pb},
                                        DenseRef{"w", DType::kF32, 1, 4, bb}),
               Error);
  p4 = {1, 0, 0, 4};
  std::memcpy(pb.data(), p4.data(), 16);
  EXPECT_EQ(SelectChoicesAgainstBase(DenseRef{"w", DType::kF32, 1, 4, pb},
                                     DenseRef{"w", DType::kF32, 1, 4, bb}),
            std::vector<uint8_t>{2});
}

}  // namespace
}  // namespace ps::pack
