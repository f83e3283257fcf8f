// Tokenizer throughput: load time, Encode and Decode speed on a text file.
// Usage: tokenizer_bench MODEL_DIR_OR_TOKENIZER_JSON TEXT_FILE [REPEATS]
// Prints one JSON object. Encode runs single-threaded on the whole file at once.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bench/bench_timer.h"
#include "common/error.h"
#include "common/file_util.h"
#include "worker/tokenizers/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR_OR_TOKENIZER_JSON TEXT_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  try {
    std::filesystem::path model = argv[1];
    int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
    const ps::bench::Stopwatch load_clock;
    auto tok = std::filesystem::is_directory(model) ? ps::LoadTokenizer(model)
                                                    : ps::LoadTokenizerJson(model);
    const double load_s = load_clock.Seconds();
    std::string text = ps::ReadFile(argv[2]);
    double best_enc = 1e30, best_dec = 1e30;
    size_t n = 0;
    bool round_trip = true;
    for (int r = 0; r < repeats; ++r) {
      ps::bench::Stopwatch clock;
      auto ids = tok->Encode(text);
      best_enc = std::min(best_enc, clock.Seconds());
      clock.Reset();
      std::string back = tok->Decode(ids);
      best_dec = std::min(best_dec, clock.Seconds());
      n = ids.size();
      round_trip = round_trip && back == text;
    }
    double mb = static_cast<double>(text.size()) / 1e6;
    std::printf(
        "{\"tokenizer\": \"%s\", \"text_bytes\": %zu, \"tokens\": %zu, \"load_s\": %.3f, "
        "\"encode_s\": %.3f, \"encode_MB_per_s\": %.2f, \"decode_s\": %.3f, "
        "\"decode_MB_per_s\": %.1f, \"round_trip\": %s}\n",
        model.string().c_str(), text.size(), n, load_s, best_enc, mb / best_enc, best_dec,
        mb / best_dec, round_trip ? "true" : "false");
  } catch (const ps::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
