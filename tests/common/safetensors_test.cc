#include "common/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  // Writes a raw file: 8-byte length + header text + data bytes.
  fs::path Raw(const std::string& header, const std::string& data, int64_t len_override = -1) {
    fs::path p = dir_ / "raw.safetensors";
    std::ofstream out(p, std::ios::binary);
    uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
    out << header << data;
    return p;
  }

  void ExpectError(const fs::path& p, const std::string& fragment) {
    try {
      SafetensorsFile::Open(p);
      FAIL() << "expected an error containing '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }

  testing::TempDir tmp_{"st_test"};
  const fs::path& dir_ = tmp_.path();
};

TEST_F(SafetensorsTest, RoundTripAllDTypes) {
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 1e-40f, -1e30f};
  std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x7f80, 0x0001};
  std::vector<uint16_t> f16 = {0x3c00, 0xfbff};
  std::vector<uint8_t> mask = {1, 0, 1, 1, 0};
  std::vector<int64_t> ids = {1, 2, 8191};
  auto bytes = [](const auto& v) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                                      v.size() * sizeof(v[0]));
  };
  fs::path p = dir_ / "a.safetensors";
  WriteSafetensors(p,
                   {{"w", DType::kF32, {2, 3}, bytes(f32)},
                    {"b", DType::kBF16, {4}, bytes(bf16)},
                    {"h", DType::kF16, {1, 2}, bytes(f16)},
                    {"m", DType::kBool, {5}, bytes(mask)},
                    {"i", DType::kI64, {3}, bytes(ids)},
                    {"empty", DType::kF32, {0, 4}, {}}},
                   {{"format", "pt"}});
  auto f = SafetensorsFile::Open(p);
  ASSERT_EQ(f->tensors().size(), 6u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const auto& w = f->Get("w");
  EXPECT_EQ(w.dtype, DType::kF32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(f->Data(w).data(), f32.data(), 24), 0);
  EXPECT_EQ(std::memcmp(f->Data(f->Get("b")).data(), bf16.data(), 8), 0);
  EXPECT_EQ(std::memcmp(f->Data(f->Get("m")).data(), mask.data(), 5), 0);
  EXPECT_EQ(f->Get("empty").Numel(), 0);
  EXPECT_EQ(f->Find("nope"), nullptr);
  EXPECT_THROW(f->Get("nope"), Error);
  // Header-only reading agrees.
  auto infos = ReadSafetensorsHeader(p);
  EXPECT_EQ(infos.size(), 6u);
  // The data section starts 8-byte aligned, as the reference writer does.
  uint64_t hl = 0;
  std::ifstream in(p, std::ios::binary);
  in.read(reinterpret_cast<char*>(&hl), 8);
  EXPECT_EQ((hl + 8) % 8, 0u);
}

TEST_F(SafetensorsTest, WriterRejectsWrongByteCount) {
  std::vector<float> v(3);
  EXPECT_THROW(
      WriteSafetensors(
          dir_ / "x.safetensors",
          {{"w", DType::kF32, {2, 2}, {reinterpret_cast<const std::byte*>(v.data()), 12}}}),
      Error);
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

// The streamed writer asks for each tensor's bytes once, in order, only when it writes them, and
// gives the file WriteSafetensors gives; a wrong size names the tensor and leaves no file.
TEST_F(SafetensorsTest, StreamedWriterAsksForEachTensorInTurn) {
  std::vector<std::vector<float>> data = {{1, 2, 3, 4}, {}, {-0.0f, 5}};
  const std::vector<TensorHeader> headers = {
      {"a", DType::kF32, {2, 2}}, {"e", DType::kF32, {0}}, {"b", DType::kF32, {2}}};
  std::vector<size_t> asked;
  auto bytes_of = [&](size_t i) {
    asked.push_back(i);
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(data[i].data()),
                                      data[i].size() * sizeof(float));
  };
  WriteSafetensorsStreamed(dir_ / "s.safetensors", headers, bytes_of, {{"format", "pt"}});
  EXPECT_EQ(asked, (std::vector<size_t>{0, 1, 2}));
  std::vector<TensorToWrite> whole;
  for (size_t i = 0; i < headers.size(); ++i)
    whole.push_back({headers[i].name, headers[i].dtype, headers[i].shape, bytes_of(i)});
  WriteSafetensors(dir_ / "w.safetensors", whole, {{"format", "pt"}});
  EXPECT_EQ(ReadFile(dir_ / "s.safetensors"), ReadFile(dir_ / "w.safetensors"));

  data[2].push_back(7);  // 12 bytes where [2] f32 needs 8
  try {
    WriteSafetensorsStreamed(dir_ / "bad.safetensors", headers, bytes_of);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'b' has 12 bytes"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "bad.safetensors"));
}

TEST_F(SafetensorsTest, TruncatedFile) {
  fs::path p = dir_ / "short.safetensors";
  std::ofstream(p) << "abc";
  ExpectError(p, "shorter than the 8-byte header length");
}

TEST_F(SafetensorsTest, HeaderLengthPastEof) {
  ExpectError(Raw("{}", "", 1000), "past the end of the file");
}

TEST_F(SafetensorsTest, HugeHeaderLength) {
  ExpectError(Raw("{}", "", int64_t{1} << 62), "past the end of the file");
}

TEST_F(SafetensorsTest, MalformedJson) { ExpectError(Raw("{\"a\": [1,", ""), "malformed JSON"); }

TEST_F(SafetensorsTest, HeaderNotObject) { ExpectError(Raw("[1,2]", ""), "not a JSON object"); }

TEST_F(SafetensorsTest, UnknownDType) {
  ExpectError(Raw(R"({"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", "x"),
              "unknown dtype 'F8_E9'");
}

TEST_F(SafetensorsTest, OffsetsPastData) {
  ExpectError(Raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"),
              "past the end of the data");
}

TEST_F(SafetensorsTest, OffsetsReversed) {
  ExpectError(Raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "12345678"),
              "begin > end");
}

TEST_F(SafetensorsTest, OffsetsDoNotMatchShape) {
  ExpectError(Raw(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"),
              "shape x dtype needs 12");
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  "12345678"),
              "overlap");
}

TEST_F(SafetensorsTest, NegativeShape) {
  ExpectError(Raw(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""),
              "non-negative");
}

TEST_F(SafetensorsTest, ShapeOverflow) {
  ExpectError(Raw(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                  R"("data_offsets":[0,0]}})",
                  ""),
              "too large");
}

TEST_F(SafetensorsTest, MissingFields) {
  ExpectError(Raw(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "1234"), "missing dtype");
  ExpectError(Raw(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "1234"), "missing shape");
  ExpectError(Raw(R"({"w":{"dtype":"F32","shape":[1]}})", "1234"), "data_offsets");
}

TEST_F(SafetensorsTest, MissingFile) { ExpectError(dir_ / "absent.safetensors", "cannot open"); }

// Random garbage after a valid length never crashes: it is an error or a valid empty file.
TEST_F(SafetensorsTest, FuzzedHeadersNeverCrash) {
  std::mt19937 rng(7);
  const std::string good =
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"a":"b"}})";
  for (int i = 0; i < 2000; ++i) {
    std::string h = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) h[rng() % h.size()] = static_cast<char>(rng() % 128);
    fs::path p = Raw(h, "12345678");
    try {
      auto f = SafetensorsFile::Open(p);
      for (const auto& t : f->tensors()) ASSERT_LE(t.end, f->file_size());
    } catch (const Error&) {
    }
  }
}

TEST_F(SafetensorsTest, ShardedCheckpoint) {
  std::vector<float> a = {1, 2}, b = {3, 4, 5};
  auto bytes = [](const auto& v) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(v.data()),
                                      v.size() * sizeof(v[0]));
  };
  WriteSafetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", DType::kF32, {2}, bytes(a)}});
  WriteSafetensors(dir_ / "model-00002-of-00002.safetensors", {{"b", DType::kF32, {3}, bytes(b)}});
  WriteFileAtomic(dir_ / "model.safetensors.index.json",
                  R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                  R"("b":"model-00002-of-00002.safetensors"}})");
  auto c = Checkpoint::Open(dir_);
  EXPECT_EQ(c.Names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.Info("b").shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(std::memcmp(c.Data("b").data(), b.data(), 12), 0);
  EXPECT_THROW(c.Info("c"), Error);

  WriteFileAtomic(dir_ / "model.safetensors.index.json",
                  R"({"weight_map":{"a":"model-00002-of-00002.safetensors"}})");
  EXPECT_THROW(Checkpoint::Open(dir_), Error);
  WriteFileAtomic(dir_ / "model.safetensors.index.json",
                  R"({"weight_map":{"a":"missing.safetensors"}})");
  EXPECT_THROW(Checkpoint::Open(dir_), Error);
}

TEST_F(SafetensorsTest, CheckpointNeedsAModelFile) { EXPECT_THROW(Checkpoint::Open(dir_), Error); }

TEST(FileUtil, Sha256KnownAnswer) {
  std::string abc = "abc";
  EXPECT_EQ(Sha256Hex({reinterpret_cast<const std::byte*>(abc.data()), abc.size()}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace ps
