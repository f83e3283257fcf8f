// The tokenizer interface the worker uses. Implementations: SentencePiece (`tokenizer.model`,
// Llama-1/2, Mistral) and Hugging Face byte-level BPE (`tokenizer.json`, Llama-3, Qwen2, GPT-2).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace ps {

// A tokenizer file of a kind this project does not implement (LoadTokenizer then falls back to
// tokenizer.model when there is one).
class UnsupportedTokenizer : public Error {
 public:
  using Error::Error;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Plain text -> ids, without BOS/EOS (add them with EncodeForModel or by hand).
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  // A token's id (vocabulary and added/special tokens), nullopt when there is none.
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  // The token string of an id (the vocabulary's form, e.g. "Ġthe" or "▁the"); throws ps::Error
  // for an id outside the vocabulary.
  virtual std::string IdToToken(int32_t id) const = 0;
  std::optional<int32_t> bos_id() const { return bos_; }
  std::optional<int32_t> eos_id() const { return eos_; }
  // Whether the model expects BOS in front of a sequence (tokenizer_config's add_bos_token).
  bool add_bos() const { return add_bos_; }
  // Whether the model expects EOS after a sequence (tokenizer_config's add_eos_token).
  bool add_eos() const { return add_eos_; }
  // Encode, with BOS first / EOS last when the model's tokenizer config asks for them.
  std::vector<int32_t> EncodeForModel(std::string_view text) const;
  // Replaces the BOS/EOS settings (LoadTokenizer applies the model directory's configs with it).
  // Throws ps::Error when asked to add a token that is not set or ids outside the vocabulary.
  void SetSpecialTokens(std::optional<int32_t> bos, std::optional<int32_t> eos, bool add_bos,
                        bool add_eos);

 protected:
  std::optional<int32_t> bos_;
  std::optional<int32_t> eos_;
  bool add_bos_ = false;
  bool add_eos_ = false;
};

// Loads the tokenizer of a Hugging Face model directory: tokenizer.json (byte-level BPE) if
// present and supported, else tokenizer.model (SentencePiece); BOS/EOS settings from
// tokenizer_config.json and config.json (see docs/data.md). Throws ps::Error when none is usable.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::filesystem::path& model_dir);

// SentencePiece model file (through Debian's libsentencepiece). BOS is added when the model has
// one (LlamaTokenizer's default) until configs say otherwise.
std::unique_ptr<Tokenizer> LoadSentencePiece(const std::filesystem::path& model_file);

// Hugging Face tokenizer.json with a byte-level BPE model. BOS/EOS come from its
// TemplateProcessing post-processor when it has one. Throws UnsupportedTokenizer for
// tokenizer.json files of another kind (WordPiece, Unigram, SentencePiece-style BPE, ...) and
// ps::Error for malformed ones.
std::unique_ptr<Tokenizer> LoadTokenizerJson(const std::filesystem::path& file);

// Applies tokenizer_config.json (add_bos_token, add_eos_token, bos_token, eos_token) and
// config.json (bos_token_id, eos_token_id) found in `model_dir` to `tokenizer`.
void ApplyTokenizerConfigs(Tokenizer& tokenizer, const std::filesystem::path& model_dir);

}  // namespace ps
