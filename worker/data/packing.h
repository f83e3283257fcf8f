// Packing token streams for evaluation the standard way (Wanda/SparseGPT eval_ppl, lm-eval's
// non-rolling variant): concatenate, then cut non-overlapping windows of ctx tokens; the tail
// shorter than ctx is dropped unless asked for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace ps {

struct Window {
  size_t begin = 0;
  size_t length = 0;
};

// Windows over a stream of num_tokens tokens. Throws ps::Error when ctx is 0.
std::vector<Window> EvalWindows(size_t num_tokens, size_t ctx, bool keep_partial_tail = false);

// Concatenates documents, with `separator` (e.g. EOS) between consecutive ones when given.
std::vector<int32_t> ConcatenateDocuments(const std::vector<std::vector<int32_t>>& docs,
                                          std::optional<int32_t> separator = std::nullopt);

// Splits a pre-tokenized stream into documents at each `separator` (llm.c / nanoGPT files put
// <|endoftext|> before every document): the separator stays as the first token of the document
// it introduces, as a BOS would; an empty stretch before the first separator is dropped.
std::vector<std::vector<int32_t>> SplitDocuments(const std::vector<int32_t>& stream,
                                                 int32_t separator);

}  // namespace ps
