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
    for (int32_t id : ids)
      if (id < 0 || id >= sp_.GetPieceSize())
        throw Error("tokenizer: cannot decode id " + std::to_string(id) + " (vocabulary has " +
                    std::to_string(sp_.GetPieceSize()) + ")");
    std::vector<int> v(ids.begin(), ids.end());
    auto status = sp_.Decode(v, &out);
    if (!status.ok()) throw Error("tokenizer: " + status.ToString());
    return out;
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }

  std::optional<int32_t> TokenToId(std::string_view token) const override {
    // PieceToId answers unk's id for unknown pieces; only a piece that maps back is a hit.
    int id = sp_.PieceToId(token);
    if (id < 0 || id >= sp_.GetPieceSize() || sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }

  std::string IdToToken(int32_t id) const override {
    if (id < 0 || id >= sp_.GetPieceSize())
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (" +
                  std::to_string(sp_.GetPieceSize()) + ")");
    return sp_.IdToPiece(id);
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> LoadSentencePiece(const std::filesystem::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

}  // namespace ps
