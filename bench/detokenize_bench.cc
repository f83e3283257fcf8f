// The server's streaming detokenizer under a 32-stream decode: per decode step, the time to turn
// each stream's new token into text with IncrementalText (a window of a few tokens) against
// decoding each stream's whole sequence (prompt + completion so far), the baseline, in the same
// run. Random token ids, as bench/serve_client.py sends.
// Usage: detokenize_bench MODEL_DIR [--streams 32] [--prompt 512] [--output 256]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_timer.h"
#include "common/error.h"
#include "worker/serve/incremental_text.h"
#include "worker/tokenizers/tokenizer.h"

int main(int argc, char** argv) {
  CLI::App app{"streaming detokenizer: windowed vs whole-sequence decode per token"};
  std::string model;
  int streams = 32, prompt = 512, output = 256;
  app.add_option("model", model, "model directory (its tokenizer)")->required();
  app.add_option("--streams", streams)->capture_default_str();
  app.add_option("--prompt", prompt, "prompt tokens per stream")->capture_default_str();
  app.add_option("--output", output, "generated tokens per stream")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const auto tok = ps::LoadTokenizer(model);
    std::mt19937 rng(0);
    std::uniform_int_distribution<int32_t> any(0, tok->vocab_size() - 1);
    std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(streams));
    std::vector<std::unique_ptr<ps::serve::IncrementalText>> texts;
    for (auto& s : seqs) {
      for (int i = 0; i < prompt; ++i) s.push_back(any(rng));
      texts.push_back(
          std::make_unique<ps::serve::IncrementalText>(*tok, s, std::vector<std::string>{}));
    }
    double windowed = 0, whole = 0;
    size_t bytes = 0;
    for (int step = 0; step < output; ++step) {
      std::vector<int32_t> next;
      for (int s = 0; s < streams; ++s) next.push_back(any(rng));
      const ps::bench::Stopwatch a;
      for (int s = 0; s < streams; ++s)
        bytes += texts[static_cast<size_t>(s)]->Add(next[static_cast<size_t>(s)]).size();
      windowed += a.Seconds();
      const ps::bench::Stopwatch b;
      for (int s = 0; s < streams; ++s) {
        auto& q = seqs[static_cast<size_t>(s)];
        q.push_back(next[static_cast<size_t>(s)]);
        bytes += tok->Decode(q).size();
      }
      whole += b.Seconds();
    }
    std::printf(
        "{\"streams\":%d,\"prompt\":%d,\"output\":%d,\"windowed_ms_per_step\":%.4f,"
        "\"whole_decode_ms_per_step\":%.4f,\"speedup\":%.1f,\"bytes\":%zu}\n",
        streams, prompt, output, windowed / output * 1e3, whole / output * 1e3, whole / windowed,
        bytes);
  } catch (const ps::Error& e) {
    std::fprintf(stderr, "detokenize_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
