#include "worker/data/calibration.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/error.h"
#include "worker/data/documents.h"
#include "worker/data/rng.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

// Document i has 10*i + 3 tokens whose values encode (document, position), so every sample can
// be checked against where it claims to come from.
std::vector<std::vector<int32_t>> MakeDocs(int n) {
  std::vector<std::vector<int32_t>> docs(n);
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < 10 * i + 3; ++p) docs[i].push_back(i * 1000 + p);
  return docs;
}

TEST(Rng, Mt19937_64IsTheStandardOne) {
  // The C++ standard fixes this value ([rand.predef]): the 10000th output of a default-seeded
  // mt19937_64. If it ever failed, sampling would not be reproducible across platforms.
  std::mt19937_64 rng;
  rng.discard(9999);
  EXPECT_EQ(rng(), 9981545732273789042ULL);
}

TEST(Rng, UniformBelowPinnedAndUniform) {
  // Pinned draws: these are a function of mt19937_64 (standard) and our mapping only.
  std::mt19937_64 a(1234), b(1234);
  for (int i = 0; i < 100; ++i) {
    uint64_t n = 1 + static_cast<uint64_t>(i) * 7919;
    uint64_t x = UniformBelow(a, n);
    EXPECT_LT(x, n);
    uint64_t raw = b();
    // For these small n the rejection threshold (2^64 mod n) is tiny, so no draw is rejected
    // and the result is the raw output reduced mod n.
    ASSERT_GE(raw, (0 - n) % n);
    EXPECT_EQ(x, raw % n);
  }
  // Chi-square on 6 buckets, 60000 draws: far below the 0.001 critical value (20.5) unless biased.
  std::mt19937_64 rng(7);
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) ++counts[UniformBelow(rng, 6)];
  double chi2 = 0;
  for (int c : counts) chi2 += (c - 10000.0) * (c - 10000.0) / 10000.0;
  EXPECT_LT(chi2, 20.5);
  // n = 1 and huge n.
  EXPECT_EQ(UniformBelow(rng, 1), 0u);
  EXPECT_LT(UniformBelow(rng, (1ULL << 63) + 12345), (1ULL << 63) + 12345);
  EXPECT_EQ(UniformInclusive(rng, 5, 5), 5u);
}

TEST(Rng, ShuffleIsAPermutationAndSeeded) {
  std::vector<int> v(100);
  for (int i = 0; i < 100; ++i) v[i] = i;
  auto w = v;
  std::mt19937_64 r1(3), r2(3), r3(4);
  DeterministicShuffle(v, r1);
  auto v2 = w;
  DeterministicShuffle(v2, r2);
  auto v3 = w;
  DeterministicShuffle(v3, r3);
  EXPECT_EQ(v, v2);
  EXPECT_NE(v, v3);
  EXPECT_NE(v, w);
  std::sort(v.begin(), v.end());
  EXPECT_EQ(v, w);
}

TEST(RandomWindows, SlicesComeFromLongDocumentsAndAreSeeded) {
  auto docs = MakeDocs(30);  // lengths 3, 13, ..., 293
  auto src = FromTokenized(docs);
  RandomWindowOptions o{.num_samples = 64, .seqlen = 100, .seed = 0};
  auto s = SampleRandomWindows(src, o);
  ASSERT_EQ(s.size(), 64u);
  std::set<size_t> used_docs;
  std::set<size_t> starts;
  for (const auto& x : s) {
    ASSERT_EQ(x.tokens.size(), 100u);
    const auto& d = docs[x.document];
    EXPECT_GT(d.size(), 100u);               // strictly longer than seqlen
    EXPECT_LE(x.start + 100, d.size() - 1);  // start in [0, len - seqlen - 1]
    for (size_t k = 0; k < 100; ++k) EXPECT_EQ(x.tokens[k], d[x.start + k]);
    used_docs.insert(x.document);
    starts.insert(x.start);
  }
  EXPECT_GT(used_docs.size(), 5u);
  EXPECT_GT(starts.size(), 10u);

  auto again = SampleRandomWindows(src, o);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(again[i].document, s[i].document);
    EXPECT_EQ(again[i].start, s[i].start);
  }
  o.seed = 1;
  auto other = SampleRandomWindows(src, o);
  size_t same = 0;
  for (size_t i = 0; i < s.size(); ++i)
    same += other[i].document == s[i].document && other[i].start == s[i].start;
  EXPECT_LT(same, 5u);
}

TEST(RandomWindows, FollowsTheReferenceDrawOrder) {
  // Re-derive the first samples by hand from the generator: draw a document; skip it while too
  // short; then draw the start in [0, len - seqlen - 1].
  auto docs = MakeDocs(12);
  auto s = SampleRandomWindows(FromTokenized(docs), {.num_samples = 5, .seqlen = 50, .seed = 99});
  std::mt19937_64 rng(99);
  for (const auto& x : s) {
    size_t d;
    do {
      d = UniformBelow(rng, docs.size());
    } while (docs[d].size() <= 50);
    EXPECT_EQ(x.document, d);
    EXPECT_EQ(x.start, UniformInclusive(rng, 0, docs[d].size() - 50 - 1));
  }
}

TEST(RandomWindows, ExactlyOneTokenLongerWorksAndAllShortFails) {
  std::vector<std::vector<int32_t>> docs = {{1, 2, 3}, {4, 5, 6, 7, 8}};
  auto s = SampleRandomWindows(FromTokenized(docs), {.num_samples = 10, .seqlen = 4, .seed = 5});
  for (const auto& x : s) {
    EXPECT_EQ(x.document, 1u);
    EXPECT_EQ(x.start, 0u);  // len 5, seqlen 4: the only start the reference allows is 0
    EXPECT_EQ(x.tokens, (std::vector<int32_t>{4, 5, 6, 7}));
  }
  EXPECT_THROW(SampleRandomWindows(FromTokenized(docs), {.num_samples = 1, .seqlen = 5}), Error);
  std::vector<std::vector<int32_t>> none;
  EXPECT_THROW(SampleRandomWindows(FromTokenized(none), {.num_samples = 1, .seqlen = 5}), Error);
  EXPECT_THROW(SampleRandomWindows(FromTokenized(docs), {.num_samples = 1, .seqlen = 0}), Error);
}

TEST(DocumentSamples, OneDocumentPerSampleTruncatedSeeded) {
  auto docs = MakeDocs(50);
  docs[7].clear();
  docs[8] = {8000};  // one token: below min_tokens = 2
  auto src = FromTokenized(docs);
  DocumentSampleOptions o{.num_samples = 40, .ctx = 64, .seed = 42, .min_tokens = 2};
  auto s = SampleDocuments(src, o);
  ASSERT_EQ(s.size(), 40u);
  std::set<size_t> seen;
  for (const auto& x : s) {
    EXPECT_TRUE(seen.insert(x.document).second) << "document used twice";
    EXPECT_NE(x.document, 7u);
    EXPECT_NE(x.document, 8u);
    EXPECT_EQ(x.start, 0u);
    const auto& d = docs[x.document];
    EXPECT_EQ(x.tokens.size(), std::min<size_t>(d.size(), 64));
    EXPECT_TRUE(std::equal(x.tokens.begin(), x.tokens.end(), d.begin()));
  }
  auto again = SampleDocuments(src, o);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(again[i].document, s[i].document);
  // The order is the seeded shuffle of all documents, short ones skipped.
  std::vector<size_t> order(docs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(42);
  DeterministicShuffle(order, rng);
  std::vector<size_t> expected;
  for (size_t d : order)
    if (docs[d].size() >= 2 && expected.size() < 40) expected.push_back(d);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i].document, expected[i]);

  o.num_samples = 49;
  EXPECT_THROW(SampleDocuments(src, o), Error);
  o.num_samples = 48;
  EXPECT_EQ(SampleDocuments(src, o).size(), 48u);
}

TEST(DocumentSamples, EpochOrder) {
  auto a = EpochOrder(100, 42, 0), b = EpochOrder(100, 42, 0), c = EpochOrder(100, 42, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::sort(c.begin(), c.end());
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(c[i], i);
  EXPECT_TRUE(EpochOrder(0, 1, 0).empty());
}

TEST(Calibration, SharedCalibrationSetWithDefaultTokenizer) {
  auto dir = std::filesystem::path(PS_SHARED_DATA);
  if (!std::filesystem::exists(dir / "codelm-19m")) GTEST_SKIP() << "no shared data at " << dir;
  auto tok = LoadTokenizer(dir / "codelm-19m");
  auto docs = ReadDocuments(dir / "code-calib.jsonl.gz");
  auto src = TokenizeOnDemand(docs, *tok);
  auto w = SampleRandomWindows(src, {.num_samples = 8, .seqlen = 512, .seed = 0});
  ASSERT_EQ(w.size(), 8u);
  for (const auto& s : w) {
    ASSERT_EQ(s.tokens.size(), 512u);
    auto full = tok->EncodeForModel(docs[s.document]);
    EXPECT_EQ(full[0], 1);  // BOS, as Hugging Face's tokenizer(text) gives the reference
    EXPECT_TRUE(std::equal(s.tokens.begin(), s.tokens.end(), full.begin() + s.start));
  }
  auto d = SampleDocuments(src, {.num_samples = 16, .ctx = 512, .seed = 42});
  for (const auto& s : d) {
    EXPECT_EQ(s.tokens[0], 1);
    EXPECT_LE(s.tokens.size(), 512u);
  }
}

}  // namespace
}  // namespace ps
