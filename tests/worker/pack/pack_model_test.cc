// Whole-checkpoint pack/unpack: exact round trips for every artifact kind and dtype, the
// compressed-tensors layout and config, and clear errors on bad or mismatched inputs.
#include "worker/pack/pack_model.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/error_of.h"
#include "tests/worker/pack/pack_test_util.h"
#include "worker/pack/codec24.h"
#include "worker/pack/pack_io.h"
#include "worker/pack/pack_names.h"
#include "worker/pack/targets.h"

namespace ps::pack {
namespace {

using ps::testing::ErrorOf;
using testing::ExpectSameCheckpoint;
using testing::TempDir;
using testing::WriteModel;
namespace fs = std::filesystem;

PackReport Pack(const fs::path& model, const fs::path& out, Format f, const fs::path& base = {},
                MaskEncoding e = MaskEncoding::kBase6) {
  PackOptions o;
  o.model = model;
  o.output = out;
  o.base_model = base;
  o.format = f;
  o.mask_encoding = e;
  return PackModel(o);
}

UnpackReport Unpack(const fs::path& in, const fs::path& out, const fs::path& base = {}) {
  return UnpackModel(UnpackOptions{in, out, base});
}

struct Case {
  Format format;
  MaskEncoding enc;
  DType dtype;
  int shards;
};

class RoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(RoundTrip, UnpackOfPackIsBitExact) {
  const Case c = GetParam();
  TempDir tmp("rt");
  WriteModel(tmp / "base", testing::RandomLlama(7, c.dtype, /*pruned=*/false), c.shards);
  WriteModel(tmp / "pruned", testing::RandomLlama(7, c.dtype, /*pruned=*/true), c.shards);
  const bool masks = c.format == Format::kMasks;
  const auto rep = Pack(tmp / "pruned", tmp / "art", c.format, tmp / "base", c.enc);
  EXPECT_EQ(rep.target_tensors, 14);
  EXPECT_GT(rep.artifact_bytes, 0u);
  EXPECT_EQ(rep.artifact_bytes, DirBytes(tmp / "art"));
  const auto un = Unpack(tmp / "art", tmp / "dense", masks ? tmp / "base" : fs::path());
  EXPECT_EQ(un.restored_tensors, 14);
  // Bit exact, except that zeros come back as +0.0 (RandomFloats makes some -0.0).
  ExpectSameCheckpoint(tmp / "pruned", tmp / "dense", /*plus_zeros=*/true);
  EXPECT_TRUE(fs::exists(tmp / "dense" / "tokenizer_config.json"));
  EXPECT_EQ(fs::exists(tmp / "dense" / "model.safetensors.index.json"), c.shards > 1);
  EXPECT_FALSE(ReadJsonFile(tmp / "dense" / "config.json").contains("quantization_config"));
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, RoundTrip,
    ::testing::Values(Case{Format::kCompressedTensors, MaskEncoding::kBase6, DType::kBF16, 2},
                      Case{Format::kCompressedTensors, MaskEncoding::kBase6, DType::kF16, 1},
                      Case{Format::kCompressedTensors, MaskEncoding::kBase6, DType::kF32, 3},
                      Case{Format::kNative, MaskEncoding::kBase6, DType::kBF16, 2},
                      Case{Format::kNative, MaskEncoding::kBase6, DType::kF16, 1},
                      Case{Format::kNative, MaskEncoding::kBase6, DType::kF32, 1},
                      Case{Format::kMasks, MaskEncoding::kBase6, DType::kBF16, 2},
                      Case{Format::kMasks, MaskEncoding::kBits, DType::kF16, 1},
                      Case{Format::kMasks, MaskEncoding::kBase6, DType::kF32, 3}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string n =
          FormatName(i.param.format) + "_" +
          (i.param.format == Format::kMasks ? MaskEncodingName(i.param.enc) + "_" : std::string()) +
          std::string(DTypeName(i.param.dtype)) + "_" + std::to_string(i.param.shards) + "shards";
      for (char& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(PackModel, CompressedTensorsLayoutFollowsTheSpec) {
  TempDir tmp("ct");
  const auto model = testing::RandomLlama(9, DType::kBF16, true);
  WriteModel(tmp / "pruned", model, 1);
  Pack(tmp / "pruned", tmp / "art", Format::kCompressedTensors);
  auto f = SafetensorsFile::Open(tmp / "art" / "model.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const std::string m = "model.layers.1.mlp.down_proj";  // [24, 40]
  EXPECT_EQ(f->Find(m + ".weight"), nullptr);
  const auto& shape = f->Get(m + ".shape");
  EXPECT_EQ(shape.dtype, DType::kI64);
  EXPECT_EQ(shape.shape, (std::vector<int64_t>{2, 1}));
  int64_t dims[2];
  std::memcpy(dims, f->Data(shape).data(), 16);
  EXPECT_EQ(dims[0], 24);
  EXPECT_EQ(dims[1], 40);
  EXPECT_EQ(f->Get(m + ".compressed").dtype, DType::kBF16);
  EXPECT_EQ(f->Get(m + ".compressed").shape, (std::vector<int64_t>{24, 20}));
  EXPECT_EQ(f->Get(m + ".bitmask").dtype, DType::kU8);
  EXPECT_EQ(f->Get(m + ".bitmask").shape, (std::vector<int64_t>{24, 5}));
  // The values are the row-major nonzeros (compressed-tensors: tensor[bytemask].reshape).
  const auto& dense = model.at(m + ".weight").bytes;
  const auto comp = f->Data(f->Get(m + ".compressed"));
  const auto bits = f->Data(f->Get(m + ".bitmask"));
  size_t v = 0;
  for (int64_t r = 0; r < 24; ++r)
    for (int64_t j = 0; j < 40; ++j) {
      const bool kept = (std::to_integer<unsigned>(bits[r * 5 + j / 8]) >> (j % 8)) & 1u;
      const bool nonzero =
          dense[(r * 40 + j) * 2] != std::byte{0} || dense[(r * 40 + j) * 2 + 1] != std::byte{0};
      if (nonzero) {
        EXPECT_TRUE(kept);
      }
      if (kept) {
        EXPECT_EQ(0, std::memcmp(&comp[v * 2], &dense[(r * 40 + j) * 2], 2));
        ++v;
      }
    }
  EXPECT_EQ(v, 24u * 20u);
  EXPECT_NE(f->Find("lm_head.weight"), nullptr);
  EXPECT_NE(f->Find("model.embed_tokens.weight"), nullptr);
  const auto cfg = ReadJsonFile(tmp / "art" / "config.json");
  const auto& qc = cfg.at("quantization_config");
  EXPECT_EQ(qc.at("quant_method"), "compressed-tensors");
  EXPECT_TRUE(qc.contains("version"));
  const auto& sc = qc.at("sparsity_config");
  EXPECT_EQ(sc.at("format"), "sparse-24-bitmask");
  EXPECT_EQ(sc.at("sparsity_structure"), "2:4");
  EXPECT_EQ(sc.at("targets"), nlohmann::json({"Linear"}));
  EXPECT_EQ(sc.at("ignore"), nlohmann::json({"lm_head"}));
  EXPECT_GT(sc.at("global_sparsity").get<double>(), 0.3);
  EXPECT_LT(sc.at("global_sparsity").get<double>(), 0.5);
  EXPECT_EQ(cfg.at("architectures"), nlohmann::json({"LlamaForCausalLM"}));
}

TEST(PackModel, NativeLayoutHasValuesAndTwoBitPositions) {
  TempDir tmp("nat");
  const auto model = testing::RandomLlama(10, DType::kF16, true);
  WriteModel(tmp / "pruned", model, 1);
  Pack(tmp / "pruned", tmp / "art", Format::kNative);
  auto f = SafetensorsFile::Open(tmp / "art" / "model.safetensors");
  const std::string m = "model.layers.0.self_attn.k_proj";  // [8, 24]
  EXPECT_EQ(f->Get(m + ".sparse24.values").shape, (std::vector<int64_t>{8, 12}));
  EXPECT_EQ(f->Get(m + ".sparse24.values").dtype, DType::kF16);
  EXPECT_EQ(f->Get(m + ".sparse24.meta").shape, (std::vector<int64_t>{8, 3}));
  EXPECT_EQ(f->metadata().at("ps.pack_format"), "native-24");
  const auto& dense = model.at(m + ".weight").bytes;
  const auto vals = f->Data(f->Get(m + ".sparse24.values"));
  const auto meta = f->Data(f->Get(m + ".sparse24.meta"));
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t g = 0; g < 6; ++g) {
      const unsigned nib = (std::to_integer<unsigned>(meta[r * 3 + g / 2]) >> (4 * (g % 2))) & 15;
      for (int k = 0; k < 2; ++k) {
        const unsigned idx = (nib >> (2 * k)) & 3;
        EXPECT_EQ(
            0, std::memcmp(&vals[(r * 12 + g * 2 + k) * 2], &dense[(r * 24 + g * 4 + idx) * 2], 2));
      }
    }
}

TEST(PackModel, SizesAreReportedAgainstTheDenseCheckpoint) {
  TempDir tmp("size");
  WriteModel(tmp / "base", testing::RandomLlama(11, DType::kBF16, false), 1);
  WriteModel(tmp / "pruned", testing::RandomLlama(11, DType::kBF16, true), 1);
  const auto ct = Pack(tmp / "pruned", tmp / "ct", Format::kCompressedTensors, tmp / "base");
  const auto b6 = Pack(tmp / "pruned", tmp / "b6", Format::kMasks, tmp / "base");
  const auto bits =
      Pack(tmp / "pruned", tmp / "bits", Format::kMasks, tmp / "base", MaskEncoding::kBits);
  EXPECT_EQ(ct.dense_bytes, fs::file_size(tmp / "base" / "model.safetensors"));
  // bf16 values (8 bits/param) + bitmask (1 bit/param) = 9 bits per target parameter.
  // The 14 .shape tensors (16 bytes each) count too.
  EXPECT_DOUBLE_EQ(ct.ToJson()["target_bits_per_param"].get<double>(),
                   9.0 + 14 * 16 * 8.0 / ct.target_params);
  EXPECT_NEAR(b6.ToJson()["target_bits_per_param"].get<double>(), 8.0 / 12.0, 0.01);
  EXPECT_NEAR(bits.ToJson()["target_bits_per_param"].get<double>(), 1.0, 0.01);
  EXPECT_LT(b6.artifact_bytes, bits.artifact_bytes);
  EXPECT_LT(ct.artifact_bytes, ct.dense_bytes);
}

TEST(PackModel, DenseInputIsNotTwoFourSparse) {
  TempDir tmp("dense");
  WriteModel(tmp / "base", testing::RandomLlama(12, DType::kBF16, false), 1);
  const auto e = ErrorOf([&] { Pack(tmp / "base", tmp / "art", Format::kNative); });
  EXPECT_NE(e.find("not 2:4 sparse"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(tmp / "art")) << "a failed pack must leave nothing behind";
}

TEST(PackModel, MasksRejectTheWrongBaseModel) {
  TempDir tmp("wrongbase");
  WriteModel(tmp / "base", testing::RandomLlama(13, DType::kBF16, false), 2);
  WriteModel(tmp / "other", testing::RandomLlama(14, DType::kBF16, false), 2);
  WriteModel(tmp / "pruned", testing::RandomLlama(13, DType::kBF16, true), 2);
  // Packing against a base the pruned model did not come from.
  auto e = ErrorOf([&] { Pack(tmp / "pruned", tmp / "x", Format::kMasks, tmp / "other"); });
  EXPECT_NE(e.find("base model"), std::string::npos) << e;
  EXPECT_THROW(Pack(tmp / "pruned", tmp / "y", Format::kMasks), Error);  // no base at all
  // Unpacking against another base: the hash check.
  Pack(tmp / "pruned", tmp / "art", Format::kMasks, tmp / "base");
  e = ErrorOf([&] { Unpack(tmp / "art", tmp / "out", tmp / "other"); });
  EXPECT_NE(e.find("SHA-256"), std::string::npos) << e;
  EXPECT_NE(e.find("wrong --base-model"), std::string::npos) << e;
  e = ErrorOf([&] { Unpack(tmp / "art", tmp / "out2"); });
  EXPECT_NE(e.find("--base-model"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

TEST(PackModel, TruncatedAndMalformedArtifactsAreErrors) {
  TempDir tmp("bad");
  const auto model = testing::RandomLlama(15, DType::kBF16, true);
  WriteModel(tmp / "pruned", model, 1);
  Pack(tmp / "pruned", tmp / "art", Format::kCompressedTensors);
  const fs::path st = tmp / "art" / "model.safetensors";
  const std::string bytes = ReadFile(st);
  // Truncated file.
  WriteFileAtomic(st, bytes.substr(0, bytes.size() - 100));
  auto e = ErrorOf([&] { Unpack(tmp / "art", tmp / "o1"); });
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  // A .bitmask missing, and a .shape that disagrees with the values.
  auto rewrite = [&](const std::string& drop, const std::string& bad_shape) {
    WriteFileAtomic(st, bytes);
    auto f = SafetensorsFile::Open(st);
    std::vector<TensorToWrite> out;
    std::vector<std::vector<std::byte>> keep;
    keep.reserve(f->tensors().size());
    for (const auto& t : f->tensors()) {
      if (t.name == drop) continue;
      auto d = f->Data(t);
      keep.emplace_back(d.begin(), d.end());
      if (t.name == bad_shape) {
        int64_t wrong[2] = {24, 48};
        std::memcpy(keep.back().data(), wrong, 16);
      }
      out.push_back({t.name, t.dtype, t.shape, keep.back()});
    }
    f.reset();
    WriteSafetensors(st, out, {{"format", "pt"}});
  };
  rewrite("model.layers.0.mlp.up_proj.bitmask", "");
  e = ErrorOf([&] { Unpack(tmp / "art", tmp / "o2"); });
  EXPECT_NE(e.find("model.layers.0.mlp.up_proj.bitmask"), std::string::npos) << e;
  rewrite("", "model.layers.1.mlp.down_proj.shape");
  e = ErrorOf([&] { Unpack(tmp / "art", tmp / "o3"); });
  EXPECT_NE(e.find("model.layers.1.mlp.down_proj.compressed"), std::string::npos) << e;
  EXPECT_NE(e.find("expected [24, 24]"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(tmp / "o3"));
  // Not an artifact at all; output directory not empty.
  e = ErrorOf([&] { Unpack(tmp / "pruned", tmp / "o4"); });
  EXPECT_NE(e.find("not a 2:4 artifact"), std::string::npos) << e;
  e = ErrorOf([&] { Pack(tmp / "pruned", tmp / "art", Format::kNative); });
  EXPECT_NE(e.find("not empty"), std::string::npos) << e;
}

TEST(PackModel, MaskOfWrongShapeForTheBaseIsAnError) {
  TempDir tmp("shape");
  WriteModel(tmp / "base", testing::RandomLlama(16, DType::kBF16, false), 1);
  WriteModel(tmp / "pruned", testing::RandomLlama(16, DType::kBF16, true), 1);
  Pack(tmp / "pruned", tmp / "art", Format::kMasks, tmp / "base");
  // Rewrite one mask's .shape: the hash still matches, the shapes do not.
  const fs::path st = tmp / "art" / "masks.safetensors";
  auto f = SafetensorsFile::Open(st);
  std::vector<TensorToWrite> out;
  std::vector<std::vector<std::byte>> keep;
  keep.reserve(f->tensors().size());
  for (const auto& t : f->tensors()) {
    auto d = f->Data(t);
    keep.emplace_back(d.begin(), d.end());
    if (t.name == "model.layers.0.self_attn.q_proj.weight.shape") {
      int64_t wrong[2] = {12, 48};
      std::memcpy(keep.back().data(), wrong, 16);
    }
    out.push_back({t.name, t.dtype, t.shape, keep.back()});
  }
  const auto md = f->metadata();
  f.reset();
  WriteSafetensors(st, out, md);
  const auto e = ErrorOf([&] { Unpack(tmp / "art", tmp / "out", tmp / "base"); });
  EXPECT_NE(e.find("q_proj.weight is for shape [12, 48]"), std::string::npos) << e;
}

// `W * mask` as torch computes it, on raw bits: the product of each element (bf16/fp32) with 1.0
// or 0.0 in fp32, so a masked negative weight becomes -0.0 (what most pruned checkpoints hold).
testing::TensorMap TimesMask(const testing::TensorMap& dense, const testing::TensorMap& pruned) {
  testing::TensorMap out = dense;
  for (auto& [name, t] : out) {
    if (!IsPruneTarget(name)) continue;
    const size_t es = DTypeSize(t.dtype);
    const auto& p = pruned.at(name).bytes;
    for (size_t i = 0; i < t.bytes.size(); i += es) {
      uint32_t bits = 0, pbits = 0;
      std::memcpy(es == 2 ? reinterpret_cast<char*>(&bits) + 2 : reinterpret_cast<char*>(&bits),
                  &t.bytes[i], es);
      std::memcpy(&pbits, &p[i], es);
      float w;
      std::memcpy(&w, &bits, 4);
      const float m = pbits != 0 ? 1.0f : 0.0f;  // the mask: where the pruned weight kept a value
      const float y = w * m;
      std::memcpy(&bits, &y, 4);
      std::memcpy(&t.bytes[i],
                  es == 2 ? reinterpret_cast<char*>(&bits) + 2 : reinterpret_cast<char*>(&bits),
                  es);
    }
  }
  return out;
}

// A checkpoint made by `W * mask` holds -0.0 in its dropped positions: it packs as
// compressed-tensors and native (no "3 nonzero values" refusal), the packed values hold only
// +0.0 zeros, and it unpacks bit for bit with every zero as +0.0.
TEST(PackModel, WTimesMaskCheckpointPacksAndUnpacksWithPlusZeros) {
  for (DType t : {DType::kBF16, DType::kF32}) {
    TempDir tmp("wmask");
    const auto m = TimesMask(testing::RandomLlama(11, t, false), testing::RandomLlama(11, t, true));
    int64_t negative_zeros = 0;
    const size_t es = DTypeSize(t);
    const uint64_t sign = uint64_t{1} << (8 * es - 1);
    for (const auto& [name, tensor] : m)
      for (size_t i = 0; IsPruneTarget(name) && i < tensor.bytes.size(); i += es) {
        uint64_t v = 0;
        std::memcpy(&v, &tensor.bytes[i], es);
        negative_zeros += v == sign;
      }
    ASSERT_GT(negative_zeros, 100) << "the W * mask checkpoint should hold many -0.0";
    WriteModel(tmp / "wmask", m, 2);
    for (Format f : {Format::kCompressedTensors, Format::kNative}) {
      const std::string dir = FormatName(f);
      Pack(tmp / "wmask", tmp / dir, f);
      for (const auto& file : fs::directory_iterator(tmp / dir)) {
        if (file.path().extension() != ".safetensors") continue;
        const auto st = SafetensorsFile::Open(file.path());
        for (const auto& info : st->tensors()) {
          const auto d = st->Data(info);
          const bool packed =
              info.name.ends_with(kCtCompressed) || info.name.ends_with(kNativeValues);
          if (!packed) continue;
          EXPECT_EQ(testing::PlusZeros(info.dtype, d), std::vector<std::byte>(d.begin(), d.end()))
              << info.name << " stores a -0.0";
        }
      }
      Unpack(tmp / dir, tmp / (dir + "_dense"));
      ExpectSameCheckpoint(tmp / "wmask", tmp / (dir + "_dense"), /*plus_zeros=*/true);
    }
  }
}

// The real model: 2:4-magnitude-prune codelm-19m, pack every kind, unpack, compare.
TEST(PackModel, CodelmRoundTripsAndShrinks) {
  const fs::path data = fs::path(PS_SHARED_DATA) / "codelm-19m";
  if (!fs::exists(data / "config.json")) GTEST_SKIP() << "no " << data;
  TempDir tmp("codelm");
  const auto base = Checkpoint::Open(data);
  testing::TensorMap pruned;
  for (const auto& name : base.Names()) {
    const auto& info = base.Info(name);
    auto d = base.Data(name);
    testing::Tensor t{info.dtype, info.shape, {d.begin(), d.end()}};
    if (IsPruneTarget(name)) testing::PruneTop2(t.bytes, DTypeSize(info.dtype));
    pruned[name] = std::move(t);
  }
  WriteModel(tmp / "pruned", pruned, 3);
  for (const char* side : {"config.json", "tokenizer.model", "tokenizer_config.json"})
    fs::copy_file(data / side, tmp / "pruned" / side, fs::copy_options::overwrite_existing);
  struct Kind {
    Format f;
    MaskEncoding e;
    const char* dir;
  };
  for (const Kind k : {Kind{Format::kCompressedTensors, MaskEncoding::kBase6, "ct"},
                       Kind{Format::kNative, MaskEncoding::kBase6, "native"},
                       Kind{Format::kMasks, MaskEncoding::kBits, "bits"},
                       Kind{Format::kMasks, MaskEncoding::kBase6, "base6"}}) {
    const auto rep = Pack(tmp / "pruned", tmp / k.dir, k.f, data, k.e);
    std::cout << rep.ToJson().dump() << "\n";
    EXPECT_EQ(rep.target_tensors, 56);
    EXPECT_EQ(rep.dense_bytes, SafetensorsBytes(data));
    const bool masks = k.f == Format::kMasks;
    Unpack(tmp / k.dir, tmp / (std::string(k.dir) + "_dense"), masks ? data : fs::path());
    ExpectSameCheckpoint(tmp / "pruned", tmp / (std::string(k.dir) + "_dense"),
                         /*plus_zeros=*/true);
    if (!masks) {
      EXPECT_LT(rep.artifact_bytes, rep.dense_bytes * 3 / 4);
    } else if (k.e == MaskEncoding::kBase6) {
      EXPECT_LT(rep.artifact_bytes, rep.dense_bytes / 20);
    }
  }
}

}  // namespace
}  // namespace ps::pack
