// The job's calibration sequences: read the configured file (text, JSON lines, gzip'd or not, or
// pre-tokenized ids), tokenize, and sample the way the job says (document per sample, the official
// ProxSparse run; or random windows, the Wanda/SparseGPT way). Deterministic for a seed.
#pragma once

#include <cstdint>
#include <vector>

#include "common/job_spec.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {

std::vector<std::vector<int32_t>> LoadCalibration(const CalibrationSpec& spec, uint64_t seed,
                                                  const Tokenizer& tokenizer, int64_t vocab_size);

// The whole text of an evaluation file as model tokens (BOS first when the tokenizer says so);
// token files are taken as they are.
std::vector<int32_t> LoadEvaluationTokens(const std::filesystem::path& path,
                                          const Tokenizer& tokenizer, int64_t vocab_size);

}  // namespace ps
