#include <filesystem>

#include "common/error.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {

// tokenizer.json when it is a byte-level BPE we implement; otherwise (e.g. the SentencePiece-style
// BPE tokenizer.json that Llama-2 and Mistral ship beside tokenizer.model) tokenizer.model.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::filesystem::path& model_dir) {
  if (!std::filesystem::is_directory(model_dir))
    throw Error("model directory not found: " + model_dir.string());
  auto hf = model_dir / "tokenizer.json";
  auto sp = model_dir / "tokenizer.model";
  std::unique_ptr<Tokenizer> tok;
  if (std::filesystem::exists(hf)) {
    try {
      tok = LoadTokenizerJson(hf);
    } catch (const UnsupportedTokenizer& e) {
      if (!std::filesystem::exists(sp))
        throw Error(std::string(e.what()) + "; and there is no tokenizer.model in " +
                    model_dir.string());
    }
  }
  if (!tok && std::filesystem::exists(sp)) tok = LoadSentencePiece(sp);
  if (!tok)
    throw Error("no usable tokenizer in " + model_dir.string() +
                " (looked for tokenizer.json and tokenizer.model)");
  ApplyTokenizerConfigs(*tok, model_dir);
  return tok;
}

}  // namespace ps
