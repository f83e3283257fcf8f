// Builds small tokenizer.json files for tests: the 256 byte-level characters as ids 0..255 (byte
// b has id b, which makes expected ids easy to derive by hand), then a handful of merges whose
// results get ids 256, 257, ... in rank order, then added tokens. Three pipeline styles mirror
// the real files: GPT-2 (ByteLevel with its own regex), Llama-3 (Split with the Llama-3 regex,
// merges as arrays, ignore_merges, a TemplateProcessing BOS) and Qwen2 (NFC, Split with the Qwen2
// regex).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "worker/tokenizers/byte_level.h"

namespace ps::testing {

inline constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class Style { kGpt2, kLlama3, kQwen2 };

// Merges of the test vocabulary, as raw bytes; merge r creates id 256 + r.
inline const std::vector<std::pair<std::string, std::string>>& TestMerges() {
  static const std::vector<std::pair<std::string, std::string>> m = {
      {" ", "t"},                // 256 " t"
      {"h", "e"},                // 257 "he"
      {" t", "he"},              // 258 " the"
      {"i", "n"},                // 259 "in"
      {" ", " "},                // 260 "  "
      {"1", "2"},                // 261 "12"
      {"\n", "\n"},              // 262 "\n\n"
      {"  ", "  "},              // 263 "    "
      {"e", "r"},                // 264 "er"
      {"\xF0", "\x9F"},          // 265
      {"\xF0\x9F", "\x98"},      // 266
      {"\xF0\x9F\x98", "\x80"},  // 267 U+1F600 grinning face
      {" ", "in"},               // 268 " in"
      {"'", "s"},                // 269 "'s"
      {"a", "a"},                // 270 "aa"
      {"aa", "a"},               // 271 "aaa"
      {"c", "a"},                // 272 "ca"
      {"\xC3", "\xA9"},          // 273 U+00E9
      {"ca", "f"},               // 274 "caf"
      {"caf", "\xC3\xA9"},       // 275 "café"
  };
  return m;
}
// Added tokens: ids 276.. (see MakeTokenizerJson).
inline constexpr int kEndOfText = 276, kUser = 277, kBracketX = 278, kMask = 279, kAbWord = 280,
                     kZz = 281, kBeginOfText = 282;

inline nlohmann::json AddedTokenJson(int id, const std::string& content, bool special,
                                     bool lstrip = false, bool rstrip = false,
                                     bool single_word = false) {
  return {{"id", id},          {"content", content}, {"single_word", single_word},
          {"lstrip", lstrip},  {"rstrip", rstrip},   {"normalized", !special},
          {"special", special}};
}

inline nlohmann::json MakeTokenizerJson(Style style) {
  using nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    vocab[ByteLevelEncode(std::string(&c, 1))] = b;
  }
  json merges = json::array();
  int next = 256;
  for (const auto& [a, b] : TestMerges()) {
    std::string ea = ByteLevelEncode(a), eb = ByteLevelEncode(b);
    vocab[ea + eb] = next++;
    if (style == Style::kLlama3) {
      merges.push_back(json::array({ea, eb}));
    } else {
      merges.push_back(ea + " " + eb);
    }
  }
  vocab["zz"] = kZz;  // reachable only whole (ignore_merges), no merge builds it
  json added = json::array({
      AddedTokenJson(kEndOfText, "<|endoftext|>", true),
      AddedTokenJson(kUser, "<|user|>", true),
      AddedTokenJson(kBracketX, "[X]", false),
      AddedTokenJson(kMask, "<mask>", true, /*lstrip=*/true, /*rstrip=*/true),
      AddedTokenJson(kAbWord, "ab", false, false, false, /*single_word=*/true),
      AddedTokenJson(kBeginOfText, "<|begin_of_text|>", true),
  });
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", merges}};
  json byte_level_split = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", true}};
  json byte_level_plain = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", false}};
  json root = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer", nullptr},
               {"decoder",
                {{"type", "ByteLevel"},
                 {"add_prefix_space", true},
                 {"trim_offsets", true},
                 {"use_regex", true}}},
               {"post_processor",
                {{"type", "ByteLevel"},
                 {"add_prefix_space", true},
                 {"trim_offsets", false},
                 {"use_regex", true}}}};
  if (style == Style::kGpt2) {
    root["pre_tokenizer"] = byte_level_split;
  } else {
    json split = {
        {"type", "Split"},
        {"pattern", {{"Regex", style == Style::kLlama3 ? kLlama3Pattern : kQwen2Pattern}}},
        {"behavior", "Isolated"},
        {"invert", false}};
    root["pre_tokenizer"] = {{"type", "Sequence"},
                             {"pretokenizers", json::array({split, byte_level_plain})}};
  }
  if (style == Style::kLlama3) {
    model["ignore_merges"] = true;
    root["post_processor"] = {
        {"type", "Sequence"},
        {"processors",
         json::array({root["post_processor"],
                      {{"type", "TemplateProcessing"},
                       {"single", json::array({{{"SpecialToken",
                                                 {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                               {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                       {"pair", json::array()},
                       {"special_tokens",
                        {{"<|begin_of_text|>",
                          {{"id", "<|begin_of_text|>"},
                           {"ids", json::array({kBeginOfText})},
                           {"tokens", json::array({"<|begin_of_text|>"})}}}}}}})}};
  }
  if (style == Style::kQwen2) root["normalizer"] = {{"type", "NFC"}};
  root["model"] = model;
  return root;
}

}  // namespace ps::testing
