#include "worker/tokenizers/bpe_tokenizer.h"

#include <re2/re2.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/bounded_read.h"
#include "common/error.h"
#include "common/file_util.h"
#include "worker/tokenizers/added_tokens.h"
#include "worker/tokenizers/bpe_model.h"
#include "worker/tokenizers/byte_level.h"
#include "worker/tokenizers/normalizer.h"
#include "worker/tokenizers/regex_split.h"

namespace ps {
namespace {

using json = nlohmann::json;

struct PreTokenizerStep {
  std::unique_ptr<RegexSplitter> splitter;  // null for ByteLevel with use_regex = false
  bool removed = false;                     // Split behavior Removed (else Isolated)
  bool byte_level = false;                  // the final ByteLevel step
  bool add_prefix_space = false;
};

struct TemplateSpecials {
  std::optional<int32_t> prefix;  // special token before the sequence (BOS)
  std::optional<int32_t> suffix;  // special token after it (EOS)
};

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(BpeModel model, std::vector<AddedToken> added, Normalizer normalizer,
               std::vector<PreTokenizerStep> steps, TemplateSpecials specials)
      : model_(std::move(model)),
        normalizer_(std::move(normalizer)),
        steps_(std::move(steps)),
        raw_matcher_(Select(added, false), Patterns(added, false, nullptr)),
        norm_matcher_(Select(added, true), Patterns(added, true, &normalizer_)) {
    vocab_size_ = model_.size();
    for (auto& t : added) {
      vocab_size_ = std::max(vocab_size_, t.id + 1);
      added_by_content_[t.content] = t.id;
      added_by_id_[t.id] = t.content;
    }
    bos_ = specials.prefix;
    eos_ = specials.suffix;
    add_bos_ = specials.prefix.has_value();
    add_eos_ = specials.suffix.has_value();
  }

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> out;
    std::vector<TextSegment> raw, norm;
    raw_matcher_.Split(text, raw);
    for (const TextSegment& seg : raw) {
      if (seg.id >= 0) {
        out.push_back(seg.id);
        continue;
      }
      std::string normalized =
          normalizer_.empty() ? std::string(seg.text) : normalizer_.Apply(seg.text);
      norm.clear();
      norm_matcher_.Split(normalized, norm);
      for (const TextSegment& s : norm) {
        if (s.id >= 0) {
          out.push_back(s.id);
        } else {
          EncodePlain(s.text, out);
        }
      }
    }
    return out;
  }

  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      const std::string& tok = TokenRef(id);
      if (auto bytes = ByteLevelDecode(tok)) {
        out += *bytes;
      } else {
        out += tok;  // not a byte-level token: its own text (Hugging Face's ByteLevel decoder)
      }
    }
    return out;
  }

  int32_t vocab_size() const override { return vocab_size_; }

  std::optional<int32_t> TokenToId(std::string_view token) const override {
    auto it = added_by_content_.find(std::string(token));
    if (it != added_by_content_.end()) return it->second;
    return model_.TokenToId(token);
  }

  std::string IdToToken(int32_t id) const override { return TokenRef(id); }

 private:
  static std::vector<AddedToken> Select(const std::vector<AddedToken>& all, bool normalized) {
    std::vector<AddedToken> out;
    for (const auto& t : all)
      if (t.normalized == normalized) out.push_back(t);
    return out;
  }
  static std::vector<std::string> Patterns(const std::vector<AddedToken>& all, bool normalized,
                                           const Normalizer* n) {
    std::vector<std::string> out;
    for (const auto& t : all)
      if (t.normalized == normalized) out.push_back(n ? n->Apply(t.content) : t.content);
    return out;
  }

  const std::string& TokenRef(int32_t id) const {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return it->second;
    const std::string& tok = model_.IdToToken(id);
    if (tok.empty() && !model_.TokenToId(""))
      throw Error("tokenizer: id " + std::to_string(id) + " is not in the vocabulary (size " +
                  std::to_string(vocab_size_) + ")");
    return tok;
  }

  void EncodePlain(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<std::string> pieces{std::string(text)}, next;
    std::vector<std::string_view> views;
    for (const PreTokenizerStep& step : steps_) {
      next.clear();
      for (std::string& p : pieces) {
        if (step.byte_level && step.add_prefix_space && p[0] != ' ') p.insert(0, 1, ' ');
        if (!step.splitter) {
          next.push_back(std::move(p));
          continue;
        }
        views.clear();
        if (step.removed) {
          step.splitter->SplitRemoved(p, views);
        } else {
          step.splitter->SplitIsolated(p, views);
        }
        for (std::string_view v : views)
          if (!v.empty()) next.emplace_back(v);
      }
      pieces.swap(next);
    }
    for (const std::string& p : pieces) TokenizeCached(p, out);
  }

  // Words repeat a lot (identifiers, keywords, common words), so BPE results are cached. The
  // cache is bounded: when full it is cleared, which only costs recomputation.
  void TokenizeCached(const std::string& word, std::vector<int32_t>& out) const {
    if (word.size() > kMaxCachedWordBytes) {
      model_.Tokenize(word, out);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    size_t first = out.size();
    model_.Tokenize(word, out);
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(word,
                   std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(first), out.end()));
  }

  BpeModel model_;
  Normalizer normalizer_;
  std::vector<PreTokenizerStep> steps_;
  AddedTokenMatcher raw_matcher_;
  AddedTokenMatcher norm_matcher_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::unordered_map<int32_t, std::string> added_by_id_;
  int32_t vocab_size_ = 0;
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 17;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// ---- parsing -------------------------------------------------------------------------------

struct Parser {
  const std::string& origin;

  [[noreturn]] void Unsupported(const std::string& what) const {
    throw UnsupportedTokenizer(origin + ": " + what + " is not supported (byte-level BPE only)");
  }
  [[noreturn]] void Malformed(const std::string& what) const { throw Error(origin + ": " + what); }

  static std::string TypeOf(const json& j) {
    if (!j.is_object()) return "";
    auto it = j.find("type");
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  }
  bool Bool(const json& j, const char* key, bool dflt) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return dflt;
    if (!it->is_boolean()) Malformed(std::string("\"") + key + "\" must be true or false");
    return it->get<bool>();
  }
  std::optional<std::string> OptString(const json& j, const char* key) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) Malformed(std::string("\"") + key + "\" must be a string");
    return it->get<std::string>();
  }

  std::vector<UnicodeForm> Normalizers(const json& j) const {
    std::vector<UnicodeForm> forms;
    if (j.is_null()) return forms;
    std::string t = TypeOf(j);
    if (t == "Sequence") {
      for (const json& n : j.at("normalizers")) {
        auto sub = Normalizers(n);
        forms.insert(forms.end(), sub.begin(), sub.end());
      }
    } else if (t == "NFC") {
      forms.push_back(UnicodeForm::kNFC);
    } else if (t == "NFD") {
      forms.push_back(UnicodeForm::kNFD);
    } else if (t == "NFKC") {
      forms.push_back(UnicodeForm::kNFKC);
    } else if (t == "NFKD") {
      forms.push_back(UnicodeForm::kNFKD);
    } else {
      Unsupported("normalizer \"" + t + "\"");
    }
    return forms;
  }

  void PreTokenizers(const json& j, std::vector<PreTokenizerStep>& steps) const {
    std::string t = TypeOf(j);
    if (t == "Sequence") {
      for (const json& p : j.at("pretokenizers")) PreTokenizers(p, steps);
      return;
    }
    if (!steps.empty() && steps.back().byte_level)
      Unsupported("a pre-tokenizer after ByteLevel (\"" + t + "\")");
    PreTokenizerStep step;
    if (t == "ByteLevel") {
      step.byte_level = true;
      step.add_prefix_space = Bool(j, "add_prefix_space", true);
      if (Bool(j, "use_regex", true))
        step.splitter = std::make_unique<RegexSplitter>(kGpt2SplitPattern);
    } else if (t == "Split") {
      if (Bool(j, "invert", false)) Unsupported("Split with invert = true");
      std::string behavior = j.value("behavior", "");
      if (behavior == "Removed") {
        step.removed = true;
      } else if (behavior != "Isolated") {
        Unsupported("Split behavior \"" + behavior + "\"");
      }
      const json& pat = j.at("pattern");
      if (pat.contains("Regex")) {
        step.splitter = std::make_unique<RegexSplitter>(pat.at("Regex").get<std::string>());
      } else if (pat.contains("String")) {
        step.splitter =
            std::make_unique<RegexSplitter>(RE2::QuoteMeta(pat.at("String").get<std::string>()));
      } else {
        Malformed("Split pattern has neither \"Regex\" nor \"String\"");
      }
    } else {
      Unsupported("pre-tokenizer \"" + t + "\"");
    }
    steps.push_back(std::move(step));
  }

  // TemplateProcessing's "single" template: [SpecialToken]? Sequence A [SpecialToken]?
  void Template(const json& j, const std::unordered_map<std::string, int32_t>& ids_of,
                TemplateSpecials& out) const {
    const json& single = j.at("single");
    bool seen_a = false;
    for (const json& piece : single) {
      if (piece.contains("Sequence")) {
        if (piece.at("Sequence").at("id") != "A") Unsupported("template over sequence B");
        seen_a = true;
        continue;
      }
      if (!piece.contains("SpecialToken")) Malformed("unknown template piece " + piece.dump());
      std::string name = piece.at("SpecialToken").at("id").get<std::string>();
      std::optional<int32_t> id;
      auto st = j.find("special_tokens");
      if (st != j.end() && st->contains(name)) {
        const json& ids = st->at(name).at("ids");
        if (ids.size() != 1) Unsupported("template special token \"" + name + "\" of several ids");
        id = ids[0].get<int32_t>();
      } else if (auto it = ids_of.find(name); it != ids_of.end()) {
        id = it->second;
      } else {
        Malformed("template special token \"" + name + "\" has no id");
      }
      auto& slot = seen_a ? out.suffix : out.prefix;
      if (slot) Unsupported("template with several special tokens on one side");
      slot = id;
    }
    if (!seen_a) Malformed("TemplateProcessing \"single\" has no sequence A");
  }

  void PostProcessor(const json& j, const std::unordered_map<std::string, int32_t>& ids_of,
                     TemplateSpecials& out) const {
    if (j.is_null()) return;
    std::string t = TypeOf(j);
    if (t == "Sequence") {
      for (const json& p : j.at("processors")) PostProcessor(p, ids_of, out);
    } else if (t == "TemplateProcessing") {
      Template(j, ids_of, out);
    } else if (t != "ByteLevel") {  // ByteLevel only trims offsets, which we do not report
      Unsupported("post-processor \"" + t + "\"");
    }
  }

  std::unique_ptr<Tokenizer> Parse(const json& root) const {
    if (!root.is_object()) Malformed("not a JSON object");
    const json& m = root.at("model");
    std::string mtype = m.contains("type") ? TypeOf(m) : (m.contains("merges") ? "BPE" : "");
    if (mtype != "BPE") Unsupported("model type \"" + mtype + "\"");

    // The tokenizer must be byte-level end to end: ByteLevel pre-tokenizer and decoder.
    const json& pre = root.value("pre_tokenizer", json());
    if (pre.is_null()) Unsupported("a BPE without ByteLevel pre-tokenizer (SentencePiece-style)");
    const json& dec = root.value("decoder", json());
    if (TypeOf(dec) != "ByteLevel")
      Unsupported("decoder \"" + (dec.is_null() ? std::string("null") : TypeOf(dec)) + "\"");
    std::vector<UnicodeForm> forms = Normalizers(root.value("normalizer", json()));
    std::vector<PreTokenizerStep> steps;
    PreTokenizers(pre, steps);
    if (steps.empty() || !steps.back().byte_level)
      Unsupported("a pre-tokenizer chain that does not end in ByteLevel");

    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (auto v = OptString(m, key); v && !v->empty())
        Unsupported(std::string("BPE ") + key + " \"" + *v + "\"");

    BpeModelConfig cfg;
    const json& vocab = m.at("vocab");
    if (!vocab.is_object()) Malformed("model.vocab is not an object");
    cfg.vocab.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) Malformed("vocab entry \"" + it.key() + "\" has no id");
      cfg.vocab.emplace(it.key(), it.value().get<int32_t>());
    }
    const json& merges = m.at("merges");
    cfg.merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const json& e = merges[r];
      if (e.is_string()) {  // "a b": the older form; byte-level tokens never contain ' '
        const std::string& s = e.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          Malformed("merge " + std::to_string(r) + " \"" + s + "\" is not two tokens");
        cfg.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        cfg.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        Malformed("merge " + std::to_string(r) + " is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
    cfg.unk_token = OptString(m, "unk_token");
    cfg.fuse_unk = Bool(m, "fuse_unk", false);
    cfg.byte_fallback = Bool(m, "byte_fallback", false);
    cfg.ignore_merges = Bool(m, "ignore_merges", false);
    // "dropout" is a training-time regulariser; encoding here is always the deterministic one.

    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> ids_of;  // every known token, for templates
    if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
      for (const json& a : *it) {
        AddedToken t;
        t.id = a.at("id").get<int32_t>();
        t.content = a.at("content").get<std::string>();
        t.single_word = Bool(a, "single_word", false);
        t.lstrip = Bool(a, "lstrip", false);
        t.rstrip = Bool(a, "rstrip", false);
        t.special = Bool(a, "special", false);
        t.normalized = Bool(a, "normalized", !t.special);
        if (t.id < 0) Malformed("added token \"" + t.content + "\" has a negative id");
        ids_of[t.content] = t.id;
        added.push_back(std::move(t));
      }
    }
    for (const auto& [tok, id] : cfg.vocab) ids_of.emplace(tok, id);
    TemplateSpecials specials;
    PostProcessor(root.value("post_processor", json()), ids_of, specials);

    BpeModel model(std::move(cfg));
    return std::make_unique<BpeTokenizer>(std::move(model), std::move(added),
                                          Normalizer(std::move(forms)), std::move(steps), specials);
  }
};

}  // namespace

std::unique_ptr<Tokenizer> ParseTokenizerJson(std::string_view json_text,
                                              const std::string& origin) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw Error(origin + ": not valid JSON (" + e.what() + ")");
  }
  try {
    return Parser{origin}.Parse(root);
  } catch (const json::exception& e) {
    throw Error(origin + ": unexpected structure (" + e.what() + ")");
  }
}

std::unique_ptr<Tokenizer> LoadTokenizerJson(const std::filesystem::path& file) {
  if (!std::filesystem::is_regular_file(file))
    throw Error("tokenizer file not found: " + file.string());
  // tokenizer.json of large vocabularies is tens of MB; 1 GiB bounds a hostile one.
  return ParseTokenizerJson(ReadRegularFileBounded(file, 1ll << 30, "tokenizer"), file.string());
}

}  // namespace ps
