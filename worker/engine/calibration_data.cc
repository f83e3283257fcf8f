#include "worker/engine/calibration_data.h"

#include "common/error.h"
#include "worker/data/calibration.h"
#include "worker/data/documents.h"
#include "worker/data/token_file.h"

namespace ps {
namespace {

bool IsTokenFormat(const std::string& f) { return f == "tokens-u16" || f == "tokens-u32"; }

std::string ResolveFormat(const CalibrationSpec& spec) {
  if (spec.format != "auto") return spec.format;
  auto ext = spec.path.extension().string();
  if (ext == ".bin") return "tokens-u16";  // nanoGPT/llm.c default; the llm.c header overrides
  return IsJsonLinesPath(spec.path) ? "jsonl" : "text";
}

TokenFile ReadTokens(const std::filesystem::path& path, const std::string& format,
                     int64_t vocab_size) {
  TokenFileOptions o;
  o.dtype = format == "tokens-u32" ? TokenDtype::kUint32 : TokenDtype::kUint16;
  o.vocab_size = vocab_size;
  return ReadTokenFile(path, o);
}

}  // namespace

std::vector<std::vector<int32_t>> LoadCalibration(const CalibrationSpec& spec, uint64_t seed,
                                                  const Tokenizer& tokenizer, int64_t vocab_size) {
  const std::string format = ResolveFormat(spec);
  std::vector<std::string> docs;
  std::vector<std::vector<int32_t>> token_docs;
  DocumentSource source;
  if (IsTokenFormat(format)) {
    // A flat id stream has no document boundaries: cut it into seqlen-token documents.
    TokenFile tf = ReadTokens(spec.path, format, vocab_size);
    const size_t len =
        static_cast<size_t>(spec.sampling == "window" ? spec.seqlen + 1 : spec.seqlen);
    for (size_t i = 0; i + len <= tf.tokens.size(); i += len)
      token_docs.emplace_back(tf.tokens.begin() + static_cast<std::ptrdiff_t>(i),
                              tf.tokens.begin() + static_cast<std::ptrdiff_t>(i + len));
    source = FromTokenized(token_docs);
  } else {
    DocumentReadOptions ro;
    if (format == "text") ro.text_split = TextSplit::kBlankLines;
    docs = format == "jsonl" ? ReadJsonLines(spec.path, ro) : ReadDocuments(spec.path, ro);
    source = TokenizeOnDemand(docs, tokenizer);
  }
  std::vector<CalibrationSample> samples;
  if (spec.sampling == "window") {
    RandomWindowOptions o;
    o.num_samples = static_cast<size_t>(spec.samples);
    o.seqlen = static_cast<size_t>(spec.seqlen);
    o.seed = seed;
    samples = SampleRandomWindows(source, o);
  } else {
    DocumentSampleOptions o;
    o.num_samples = static_cast<size_t>(spec.samples);
    o.ctx = static_cast<size_t>(spec.seqlen);
    o.seed = seed;
    samples = SampleDocuments(source, o);
  }
  std::vector<std::vector<int32_t>> out;
  out.reserve(samples.size());
  for (auto& s : samples) {
    for (int32_t id : s.tokens) {
      if (id < 0 || id >= vocab_size)
        throw Error("calibration.path: token id " + std::to_string(id) +
                    " is outside the vocabulary");
    }
    out.push_back(std::move(s.tokens));
  }
  return out;
}

std::vector<int32_t> LoadEvaluationTokens(const std::filesystem::path& path,
                                          const Tokenizer& tokenizer, int64_t vocab_size) {
  if (path.extension() == ".bin") return ReadTokens(path, "tokens-u16", vocab_size).tokens;
  return tokenizer.EncodeForModel(ReadTextFile(path));
}

}  // namespace ps
