// Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, Llama-3, Qwen2), as a Tokenizer.
// The pipeline, in Hugging Face's order:
//   1. added tokens with normalized=false are split off the raw text;
//   2. the rest is normalized (none, or NFC/NFD/NFKC/NFKD);
//   3. added tokens with normalized=true are split off the normalized text;
//   4. pre-tokenizers: Split (a regex, behavior Isolated or Removed) any number of times, then
//      ByteLevel (optionally prefixing a space to each piece, optionally splitting with GPT-2's
//      regex); empty pieces are dropped at every step;
//   5. each piece goes through the BPE model byte by byte.
// Decoding maps each token back through the byte-level table (tokens with characters outside the
// table, such as most special tokens, stand for their own UTF-8 text) and returns the bytes as
// they are; Hugging Face then replaces invalid UTF-8 with U+FFFD, which only matters when a
// sequence is cut inside a character.
#pragma once

#include <filesystem>
#include <memory>

#include "worker/tokenizers/tokenizer.h"

namespace ps {

// Parses `json_text` (the contents of a tokenizer.json; `origin` names it in errors).
std::unique_ptr<Tokenizer> ParseTokenizerJson(std::string_view json_text,
                                              const std::string& origin);

}  // namespace ps
