#include <filesystem>

#include "common/error.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {

// Today: SentencePiece only; the byte-level BPE (tokenizer.json) loader plugs in here.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::filesystem::path& model_dir) {
  auto sp = model_dir / "tokenizer.model";
  if (std::filesystem::exists(sp)) return LoadSentencePiece(sp);
  throw Error("no usable tokenizer in " + model_dir.string() +
              " (looked for tokenizer.json and tokenizer.model)");
}

}  // namespace ps
