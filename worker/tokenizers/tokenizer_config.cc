// BOS/EOS settings of a Hugging Face model directory. Precedence (most specific first):
//   1. tokenizer_config.json: add_bos_token / add_eos_token (booleans) and bos_token / eos_token
//      (a string, or an AddedToken object with "content"; null means none);
//   2. the tokenizer itself: tokenizer.json's TemplateProcessing post-processor (a special token
//      before / after the sequence means "add BOS / EOS"), or the SentencePiece model's BOS
//      (added by default, as LlamaTokenizer does) and EOS;
//   3. config.json: bos_token_id / eos_token_id (for EOS possibly a list; its first entry),
//      used only for ids that 1 and 2 leave unset.
#include <nlohmann/json.hpp>

#include "common/bounded_read.h"
#include "common/error.h"
#include "common/file_util.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

using json = nlohmann::json;

json ReadJsonIfPresent(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return json();
  try {
    return json::parse(ReadRegularFileBounded(path, kMaxMetadataBytes, "tokenizer config"));
  } catch (const json::parse_error& e) {
    throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

std::optional<int32_t> IdFromConfig(const json& cfg, const char* key,
                                    const std::filesystem::path& path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int32_t>();
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
    return (*it)[0].get<int32_t>();
  if (it->is_array() && it->empty()) return std::nullopt;
  throw Error(path.string() + ": \"" + key + "\" must be an integer or a list of integers");
}

// Whether tokenizer_config.json names the token, and which id it has (nullopt for null).
bool TokenFromTokenizerConfig(const Tokenizer& tok, const json& cfg, const char* key,
                              const std::filesystem::path& path, std::optional<int32_t>* id) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return false;
  if (it->is_null()) {
    *id = std::nullopt;
    return true;
  }
  std::string content;
  if (it->is_string()) {
    content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && it->at("content").is_string()) {
    content = it->at("content").get<std::string>();
  } else {
    throw Error(path.string() + ": \"" + key +
                "\" must be a string, an object with \"content\", or null");
  }
  *id = tok.TokenToId(content);
  if (!*id)
    throw Error(path.string() + ": " + key + " \"" + content +
                "\" is not in the tokenizer's vocabulary");
  return true;
}

std::optional<bool> FlagFromTokenizerConfig(const json& cfg, const char* key,
                                            const std::filesystem::path& path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw Error(path.string() + ": \"" + key + "\" must be true or false");
  return it->get<bool>();
}

}  // namespace

void ApplyTokenizerConfigs(Tokenizer& tok, const std::filesystem::path& model_dir) {
  auto tc_path = model_dir / "tokenizer_config.json";
  auto c_path = model_dir / "config.json";
  json tc = ReadJsonIfPresent(tc_path);
  json c = ReadJsonIfPresent(c_path);
  if (!tc.is_null() && !tc.is_object()) throw Error(tc_path.string() + ": not a JSON object");
  if (!c.is_null() && !c.is_object()) throw Error(c_path.string() + ": not a JSON object");

  std::optional<int32_t> bos = tok.bos_id(), eos = tok.eos_id();
  bool add_bos = tok.add_bos(), add_eos = tok.add_eos();
  if (c.is_object()) {
    if (!bos) bos = IdFromConfig(c, "bos_token_id", c_path);
    if (!eos) eos = IdFromConfig(c, "eos_token_id", c_path);
  }
  if (tc.is_object()) {
    TokenFromTokenizerConfig(tok, tc, "bos_token", tc_path, &bos);
    TokenFromTokenizerConfig(tok, tc, "eos_token", tc_path, &eos);
    if (auto f = FlagFromTokenizerConfig(tc, "add_bos_token", tc_path)) add_bos = *f;
    if (auto f = FlagFromTokenizerConfig(tc, "add_eos_token", tc_path)) add_eos = *f;
  }
  // A BOS named null with nothing to add is fine; asking to add a missing one is not.
  if (add_bos && !bos)
    throw Error(model_dir.string() + ": add_bos_token is true but no BOS token is defined");
  if (add_eos && !eos)
    throw Error(model_dir.string() + ": add_eos_token is true but no EOS token is defined");
  tok.SetSpecialTokens(bos, eos, add_bos, add_eos);
}

}  // namespace ps
