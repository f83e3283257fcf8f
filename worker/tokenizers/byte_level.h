// GPT-2's byte-to-unicode table, used by every byte-level BPE (GPT-2, Llama-3, Qwen2): each of the
// 256 byte values is shown as one printable code point so that vocabularies and merges are
// strings. Printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the
// other 68 bytes, in increasing order, map to U+0100, U+0101, ... (so ' ' is 'Ġ' U+0120 and '\n'
// is 'Ċ' U+010A).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ps {

const std::array<uint32_t, 256>& ByteToUnicode();

// Each byte of `bytes` as its code point, UTF-8 encoded (the form vocab and merges use).
std::string ByteLevelEncode(std::string_view bytes);

// Inverse: the bytes a byte-level token stands for, or nullopt when some code point of `token`
// is not in the table (e.g. an added token such as "<|im start|>" written with a plain space).
std::optional<std::string> ByteLevelDecode(std::string_view token);

}  // namespace ps
