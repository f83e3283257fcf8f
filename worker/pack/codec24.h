// 2:4 codecs on raw tensor bytes (torch-free, so the coordinator could use them too).
//
// A 2:4 weight [rows, cols] keeps at most two of every four consecutive elements along a row
// (the input dimension, the layout sparse tensor cores use for y = x Wᵀ). Every group gets
// exactly two *kept positions*: its nonzero elements, padded with its lowest-index zero elements
// when it has fewer than two nonzeros. "Zero" means +0.0 or -0.0 (`W * mask` in torch leaves
// -0.0 where a negative weight was masked); packed values and unpacked weights store every zero
// as +0.0. NaN and infinities are values, kept as they are, and unpacking restores every bit of
// every nonzero (all zeros come back as +0.0).
//
// A group's kept pair is one of six choices, numbered in this order:
//   0:{0,1} 1:{0,2} 2:{0,3} 3:{1,2} 4:{1,3} 5:{2,3}
// and encoded three ways (docs/artifacts.md has the byte layouts):
//   bitmask  compressed-tensors' per-row bit mask, numpy.packbits(axis=-1, bitorder="little")
//   nibbles  the native layout: 2-bit index of each kept value, 4 bits per group, 2 groups a byte
//   base6    three groups' choices c0 + 6·c1 + 36·c2 in one byte (0.667 bit per parameter)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace ps::pack {

// The kept positions (i < j) of each choice.
inline constexpr uint8_t kChoicePos[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
// Choice of a 4-bit keep mask with exactly two bits set; 255 for any other mask.
uint8_t ChoiceOfMask(unsigned mask4);
inline unsigned MaskOfChoice(uint8_t c) {
  return (1u << kChoicePos[c][0]) | (1u << kChoicePos[c][1]);
}

// A dense 2-D weight as bytes. `name` only feeds error messages.
struct DenseRef {
  std::string name;
  DType dtype = DType::kBF16;
  int64_t rows = 0;
  int64_t cols = 0;
  std::span<const std::byte> bytes;
};

// Checks that the weight can be packed at all: floating dtype, 2-D, cols a multiple of 4, byte
// count matching. Throws ps::Error naming the tensor otherwise.
void CheckPackable(const DenseRef& w);

// One choice per group, row-major (rows × cols/4). Throws ps::Error naming the tensor, row and
// columns when a group has more than two nonzeros (the weight is not 2:4 sparse).
std::vector<uint8_t> SelectChoices(const DenseRef& w);

// Choices for a weight that must equal `base` ⊙ mask exactly (the masks-only artifact): each kept
// position must hold the base's element bit for bit (zeros of either sign match), each dropped
// one must be a zero. Throws
// ps::Error when no such 2-of-4 mask exists for some group (the pruned weight differs from the
// base, or a group keeps fewer than two of the base's values).
std::vector<uint8_t> SelectChoicesAgainstBase(const DenseRef& pruned, const DenseRef& base);

// Kept values [rows, cols/2] in the original dtype, in position order within each group; -0.0
// is stored as +0.0.
std::vector<std::byte> GatherKept(const DenseRef& w, std::span<const uint8_t> choices);
// Dense bytes [rows, cols]: kept values scattered to their positions, +0.0 elsewhere (a kept
// -0.0 becomes +0.0 too).
std::vector<std::byte> ScatterKept(DType dtype, int64_t rows, int64_t cols,
                                   std::span<const std::byte> values,
                                   std::span<const uint8_t> choices);
// `base` ⊙ mask: the base's elements at kept positions, +0.0 elsewhere.
std::vector<std::byte> ApplyChoices(const DenseRef& base, std::span<const uint8_t> choices);

// Encoders. Sizes: bitmask rows × ceil(cols/8); nibbles rows × ceil(cols/8) (= ceil(groups/2));
// base6 ceil(rows·cols/4 / 3).
int64_t BitmaskRowBytes(int64_t cols);
int64_t Base6Bytes(int64_t rows, int64_t cols);
std::vector<uint8_t> EncodeBitmask(int64_t rows, int64_t cols, std::span<const uint8_t> choices);
std::vector<uint8_t> EncodeNibbles(int64_t rows, int64_t cols, std::span<const uint8_t> choices);
std::vector<uint8_t> EncodeBase6(std::span<const uint8_t> choices);

// Decoders validate everything they read (exactly two bits per group, distinct ordered indices,
// zero padding, codes < 216) and throw ps::Error naming `what` and the first bad place.
std::vector<uint8_t> DecodeBitmask(const std::string& what, int64_t rows, int64_t cols,
                                   std::span<const std::byte> bits);
std::vector<uint8_t> DecodeNibbles(const std::string& what, int64_t rows, int64_t cols,
                                   std::span<const std::byte> meta);
std::vector<uint8_t> DecodeBase6(const std::string& what, int64_t groups,
                                 std::span<const std::byte> codes);

}  // namespace ps::pack
