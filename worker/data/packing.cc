#include "worker/data/packing.h"

#include "common/error.h"

namespace ps {

std::vector<Window> EvalWindows(size_t num_tokens, size_t ctx, bool keep_partial_tail) {
  if (ctx == 0) throw Error("eval windows: ctx must be > 0");
  std::vector<Window> out;
  size_t full = num_tokens / ctx;
  out.reserve(full + 1);
  for (size_t i = 0; i < full; ++i) out.push_back({i * ctx, ctx});
  if (keep_partial_tail && num_tokens % ctx) out.push_back({full * ctx, num_tokens % ctx});
  return out;
}

std::vector<int32_t> ConcatenateDocuments(const std::vector<std::vector<int32_t>>& docs,
                                          std::optional<int32_t> separator) {
  size_t total = 0;
  for (const auto& d : docs) total += d.size() + 1;
  std::vector<int32_t> out;
  out.reserve(total);
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i && separator) out.push_back(*separator);
    out.insert(out.end(), docs[i].begin(), docs[i].end());
  }
  return out;
}

std::vector<std::vector<int32_t>> SplitDocuments(const std::vector<int32_t>& stream,
                                                 int32_t separator) {
  std::vector<std::vector<int32_t>> docs;
  size_t start = 0;
  for (size_t i = 1; i <= stream.size(); ++i) {
    if (i == stream.size() || stream[i] == separator) {
      if (i > start)
        docs.emplace_back(stream.begin() + static_cast<ptrdiff_t>(start),
                          stream.begin() + static_cast<ptrdiff_t>(i));
      start = i;
    }
  }
  return docs;
}

}  // namespace ps
