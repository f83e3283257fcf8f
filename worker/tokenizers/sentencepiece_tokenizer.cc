// SentencePiece tokenizer (Llama-1/2, Mistral, the default model) through libsentencepiece.
#include <sentencepiece_processor.h>

#include "common/error.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& file) {
    auto status = sp_.Load(file.string());
    if (!status.ok()) throw Error("tokenizer " + file.string() + ": " + status.ToString());
    if (sp_.bos_id() >= 0) bos_ = sp_.bos_id();
    if (sp_.eos_id() >= 0) eos_ = sp_.eos_id();
    add_bos_ = bos_.has_value();
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int> ids;
    auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw Error("tokenizer: " + status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    std::vector<int> v(ids.begin(), ids.end());
    auto status = sp_.Decode(v, &out);
    if (!status.ok()) throw Error("tokenizer: " + status.ToString());
    return out;
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> LoadSentencePiece(const std::filesystem::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

std::vector<int32_t> Tokenizer::EncodeForModel(std::string_view text) const {
  std::vector<int32_t> ids;
  if (add_bos_ && bos_) ids.push_back(*bos_);
  auto body = Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

}  // namespace ps
