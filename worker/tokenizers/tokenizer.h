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

namespace ps {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Plain text -> ids, without BOS/EOS (add them with EncodeForModel or by hand).
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  std::optional<int32_t> bos_id() const { return bos_; }
  std::optional<int32_t> eos_id() const { return eos_; }
  // Whether the model expects BOS in front of a sequence (tokenizer_config's add_bos_token).
  bool add_bos() const { return add_bos_; }
  // Encode, with BOS first when the model's tokenizer config asks for it.
  std::vector<int32_t> EncodeForModel(std::string_view text) const;

 protected:
  std::optional<int32_t> bos_;
  std::optional<int32_t> eos_;
  bool add_bos_ = false;
};

// Loads the tokenizer of a Hugging Face model directory: tokenizer.json (byte-level BPE) if
// present and supported, else tokenizer.model (SentencePiece); BOS/EOS settings from
// tokenizer_config.json and config.json. Throws ps::Error when none is usable.
std::unique_ptr<Tokenizer> LoadTokenizer(const std::filesystem::path& model_dir);

// SentencePiece model file (through Debian's libsentencepiece).
std::unique_ptr<Tokenizer> LoadSentencePiece(const std::filesystem::path& model_file);

}  // namespace ps
