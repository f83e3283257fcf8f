// Calibration / training samples drawn from documents, seeded and deterministic on every
// platform (std::mt19937_64 with this project's own range mapping, see rng.h).
//
// Two ways, both from the papers' official code:
//  - Random windows (Wanda / SparseGPT get_c4): for each of n samples, draw documents uniformly
//    (with replacement) until one has MORE than seqlen tokens, then a window start uniformly in
//    [0, len - seqlen - 1], and take seqlen tokens. Tokens include BOS when the tokenizer adds it,
//    as Hugging Face's tokenizer(text) does there.
//  - Document per sample (the official ProxSparse run): shuffle the documents in a seeded order,
//    take the first n that have at least min_tokens tokens, each truncated to ctx tokens (one
//    document per sample, no packing, short documents stay short).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ps {

class Tokenizer;

// Documents by index, tokenized on demand (sampling touches only the documents it draws, which
// matters for a 356k-document C4 shard).
struct DocumentSource {
  size_t size = 0;
  std::function<std::vector<int32_t>(size_t)> tokens;
};

// Each document through tokenizer.EncodeForModel (BOS first when the model's config says so).
// `docs` and `tokenizer` must outlive the returned source.
DocumentSource TokenizeOnDemand(const std::vector<std::string>& docs, const Tokenizer& tokenizer);
// Already tokenized documents (copied out on access). `docs` must outlive the source.
DocumentSource FromTokenized(const std::vector<std::vector<int32_t>>& docs);

struct CalibrationSample {
  size_t document = 0;  // index into the source
  size_t start = 0;     // first token taken from that document
  std::vector<int32_t> tokens;
};

struct RandomWindowOptions {
  size_t num_samples = 128;
  size_t seqlen = 2048;
  uint64_t seed = 0;
};

// Throws ps::Error when there are no documents, seqlen is 0, or every document has <= seqlen
// tokens (the reference loops forever there).
std::vector<CalibrationSample> SampleRandomWindows(const DocumentSource& source,
                                                   const RandomWindowOptions& options);

struct DocumentSampleOptions {
  size_t num_samples = 400;
  size_t ctx = 4096;  // truncate each document to this many tokens
  uint64_t seed = 42;
  size_t min_tokens = 2;  // skip documents shorter than this (nothing to predict)
};

// Throws ps::Error when fewer than num_samples documents qualify.
std::vector<CalibrationSample> SampleDocuments(const DocumentSource& source,
                                               const DocumentSampleOptions& options);

// A seeded permutation of [0, n) for epoch `epoch` (each epoch a different, reproducible order).
std::vector<size_t> EpochOrder(size_t n, uint64_t seed, uint64_t epoch);

}  // namespace ps
