#include "worker/data/calibration.h"

#include <numeric>
#include <random>

#include "common/error.h"
#include "worker/data/rng.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {

DocumentSource TokenizeOnDemand(const std::vector<std::string>& docs, const Tokenizer& tokenizer) {
  return {docs.size(), [&docs, &tokenizer](size_t i) { return tokenizer.EncodeForModel(docs[i]); }};
}

DocumentSource FromTokenized(const std::vector<std::vector<int32_t>>& docs) {
  return {docs.size(), [&docs](size_t i) { return docs[i]; }};
}

std::vector<CalibrationSample> SampleRandomWindows(const DocumentSource& source,
                                                   const RandomWindowOptions& options) {
  if (source.size == 0) throw Error("calibration sampling: no documents");
  if (options.seqlen == 0) throw Error("calibration sampling: seqlen must be > 0");
  std::mt19937_64 rng(options.seed);
  // Documents seen to be too short. Redrawing them consumes the generator exactly as the
  // reference loop does, so remembering them changes no draw; it only lets us stop with an error
  // once every document has proven too short instead of looping forever.
  std::vector<bool> too_short(source.size, false);
  size_t num_too_short = 0;
  std::vector<CalibrationSample> out;
  out.reserve(options.num_samples);
  while (out.size() < options.num_samples) {
    size_t d = static_cast<size_t>(UniformBelow(rng, source.size));
    if (too_short[d]) continue;
    std::vector<int32_t> toks = source.tokens(d);
    if (toks.size() <= options.seqlen) {
      too_short[d] = true;
      if (++num_too_short == source.size)
        throw Error("calibration sampling: no document is longer than seqlen = " +
                    std::to_string(options.seqlen) + " tokens (" + std::to_string(source.size) +
                    " documents)");
      continue;
    }
    size_t start = static_cast<size_t>(UniformInclusive(rng, 0, toks.size() - options.seqlen - 1));
    CalibrationSample s;
    s.document = d;
    s.start = start;
    s.tokens.assign(toks.begin() + static_cast<ptrdiff_t>(start),
                    toks.begin() + static_cast<ptrdiff_t>(start + options.seqlen));
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<CalibrationSample> SampleDocuments(const DocumentSource& source,
                                               const DocumentSampleOptions& options) {
  if (options.ctx == 0) throw Error("document sampling: ctx must be > 0");
  std::vector<size_t> order(source.size);
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(options.seed);
  DeterministicShuffle(order, rng);
  std::vector<CalibrationSample> out;
  out.reserve(options.num_samples);
  for (size_t d : order) {
    if (out.size() == options.num_samples) break;
    std::vector<int32_t> toks = source.tokens(d);
    if (toks.size() < options.min_tokens) continue;
    if (toks.size() > options.ctx) toks.resize(options.ctx);
    out.push_back({d, 0, std::move(toks)});
  }
  if (out.size() < options.num_samples)
    throw Error("document sampling: asked for " + std::to_string(options.num_samples) +
                " documents but only " + std::to_string(out.size()) + " of " +
                std::to_string(source.size) + " have at least " +
                std::to_string(options.min_tokens) + " tokens");
  return out;
}

std::vector<size_t> EpochOrder(size_t n, uint64_t seed, uint64_t epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // Distinct epochs get distinct, well-separated generator seeds (golden-ratio increment).
  std::mt19937_64 rng(seed + 0x9E3779B97F4A7C15ULL * (epoch + 1));
  DeterministicShuffle(order, rng);
  return order;
}

}  // namespace ps
