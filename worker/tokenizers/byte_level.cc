#include "worker/tokenizers/byte_level.h"

#include "worker/tokenizers/utf8.h"

namespace ps {
namespace {

bool StandsForItself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) t[b] = StandsForItself(b) ? static_cast<uint32_t>(b) : next++;
  return t;
}

}  // namespace

const std::array<uint32_t, 256>& ByteToUnicode() {
  static const std::array<uint32_t, 256> table = MakeTable();
  return table;
}

std::string ByteLevelEncode(std::string_view bytes) {
  const auto& t = ByteToUnicode();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8::Append(out, t[b]);
  return out;
}

std::optional<std::string> ByteLevelDecode(std::string_view token) {
  // Code points used by the table: 0x21..0xFF minus a few, and 0x100..0x143.
  static const std::array<int, 0x144> inverse = [] {
    std::array<int, 0x144> inv;
    inv.fill(-1);
    const auto& t = ByteToUnicode();
    for (int b = 0; b < 256; ++b) inv[t[b]] = b;
    return inv;
  }();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    uint32_t cp;
    i += utf8::Decode(token, i, &cp);
    if (cp >= inverse.size() || inverse[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(inverse[cp]));
  }
  return out;
}

}  // namespace ps
