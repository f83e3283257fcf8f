// SentencePiece tokenizer (Llama-1/2, Mistral, the default model) through libsentencepiece, which
// is reached through the dlopen()ed shim module (sentencepiece_shim.h says why).
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "common/error.h"
#include "worker/tokenizers/sentencepiece_shim.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

struct ShimApi {
  decltype(&ps_spm_load) load;
  decltype(&ps_spm_free) free;
  decltype(&ps_spm_encode) encode;
  decltype(&ps_spm_decode) decode;
  decltype(&ps_spm_piece_size) piece_size;
  decltype(&ps_spm_bos_id) bos_id;
  decltype(&ps_spm_eos_id) eos_id;
  decltype(&ps_spm_piece_to_id) piece_to_id;
  decltype(&ps_spm_id_to_piece) id_to_piece;
  decltype(&ps_spm_free_buffer) free_buffer;
};

// Where the shim is: $PS_SPM_SHIM, else beside the executable, else where the build put it.
std::vector<std::string> ShimCandidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("PS_SPM_SHIM")) out.emplace_back(env);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((exe.parent_path() / PS_SPM_SHIM_NAME).string());
  out.emplace_back(PS_SPM_SHIM_PATH);
  return out;
}

const ShimApi& Shim() {
  static ShimApi api;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    void* h = nullptr;
    std::string tried;
    for (const auto& path : ShimCandidates()) {
      if (!std::filesystem::exists(path)) {
        tried += " " + path + " (absent)";
        continue;
      }
      h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (h) break;
      tried += " " + path + " (" + ::dlerror() + ")";
    }
    if (!h) {
      error = "cannot load the SentencePiece module; tried:" + tried;
      return;
    }
    auto sym = [&](const char* name) {
      void* p = ::dlsym(h, name);
      if (!p) error = std::string("SentencePiece module lacks ") + name;
      return p;
    };
    api.load = reinterpret_cast<decltype(api.load)>(sym("ps_spm_load"));
    api.free = reinterpret_cast<decltype(api.free)>(sym("ps_spm_free"));
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("ps_spm_encode"));
    api.decode = reinterpret_cast<decltype(api.decode)>(sym("ps_spm_decode"));
    api.piece_size = reinterpret_cast<decltype(api.piece_size)>(sym("ps_spm_piece_size"));
    api.bos_id = reinterpret_cast<decltype(api.bos_id)>(sym("ps_spm_bos_id"));
    api.eos_id = reinterpret_cast<decltype(api.eos_id)>(sym("ps_spm_eos_id"));
    api.piece_to_id = reinterpret_cast<decltype(api.piece_to_id)>(sym("ps_spm_piece_to_id"));
    api.id_to_piece = reinterpret_cast<decltype(api.id_to_piece)>(sym("ps_spm_id_to_piece"));
    api.free_buffer = reinterpret_cast<decltype(api.free_buffer)>(sym("ps_spm_free_buffer"));
  });
  if (!error.empty()) throw Error(error);
  return api;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& file) : api_(Shim()) {
    char err[512];
    if (api_.load(file.string().c_str(), &sp_, err, sizeof(err)) != 0) {
      throw Error("tokenizer " + file.string() + ": " + err);
    }
    if (api_.bos_id(sp_) >= 0) bos_ = api_.bos_id(sp_);
    if (api_.eos_id(sp_) >= 0) eos_ = api_.eos_id(sp_);
    add_bos_ = bos_.has_value();
  }
  ~SentencePieceTokenizer() override { api_.free(sp_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int32_t> Encode(std::string_view text) const override {
    char err[512];
    int* ids = nullptr;
    size_t n = 0;
    if (api_.encode(sp_, text.data(), text.size(), &ids, &n, err, sizeof(err)) != 0) {
      throw Error(std::string("tokenizer: ") + err);
    }
    std::vector<int32_t> out(ids, ids + n);
    api_.free_buffer(ids);
    return out;
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids)
      if (id < 0 || id >= vocab_size())
        throw Error("tokenizer: cannot decode id " + std::to_string(id) + " (vocabulary has " +
                    std::to_string(vocab_size()) + ")");
    char err[512];
    std::vector<int> v(ids.begin(), ids.end());
    char* text = nullptr;
    size_t len = 0;
    if (api_.decode(sp_, v.data(), v.size(), &text, &len, err, sizeof(err)) != 0) {
      throw Error(std::string("tokenizer: ") + err);
    }
    std::string out(text, len);
    api_.free_buffer(text);
    return out;
  }

  int32_t vocab_size() const override { return api_.piece_size(sp_); }

  std::optional<int32_t> TokenToId(std::string_view token) const override {
    // Only a piece that maps back is a hit (PieceToId answers unk's id for unknown pieces).
    int id = api_.piece_to_id(sp_, token.data(), token.size());
    if (id < 0) return std::nullopt;
    return id;
  }

  std::string IdToToken(int32_t id) const override {
    char err[512];
    char* piece = nullptr;
    size_t len = 0;
    if (id < 0 || id >= vocab_size() ||
        api_.id_to_piece(sp_, id, &piece, &len, err, sizeof(err)) != 0) {
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (" +
                  std::to_string(vocab_size()) + ")");
    }
    std::string out(piece, len);
    api_.free_buffer(piece);
    return out;
  }

 private:
  const ShimApi& api_;
  void* sp_ = nullptr;
};

}  // namespace

std::unique_ptr<Tokenizer> LoadSentencePiece(const std::filesystem::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

}  // namespace ps
