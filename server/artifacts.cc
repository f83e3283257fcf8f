#include "server/artifacts.h"

#include <algorithm>

#include "common/file_util.h"

namespace ps {

namespace fs = std::filesystem;

namespace {

bool Published(const fs::path& rel) {
  for (const auto& part : rel) {
    std::string p = part.string();
    if (p == "checkpoints" || p.rfind(".", 0) == 0) return false;  // resumable state, hidden
    if (p.find(".tmp.") != std::string::npos) return false;        // AtomicFileWriter's temps
  }
  return true;
}

}  // namespace

std::vector<ArtifactInfo> ListArtifactFiles(const fs::path& output_dir, bool with_hashes) {
  std::vector<ArtifactInfo> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  fs::path root = fs::canonical(output_dir, ec);
  if (ec) return out;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    // Regular files only; symlinks (even to files inside) are not followed or published.
    if (it->is_symlink() || !it->is_regular_file()) continue;
    fs::path rel = fs::relative(it->path(), root);
    if (!Published(rel)) continue;
    ArtifactInfo a;
    a.path = rel.generic_string();
    a.size = static_cast<int64_t>(it->file_size());
    if (with_hashes) a.sha256 = Sha256File(it->path());
    out.push_back(std::move(a));
  }
  std::sort(out.begin(), out.end(),
            [](const ArtifactInfo& a, const ArtifactInfo& b) { return a.path < b.path; });
  return out;
}

std::optional<fs::path> ResolveArtifact(const fs::path& output_dir, const std::string& relative) {
  for (const auto& a : ListArtifactFiles(output_dir, false))
    if (a.path == relative) return fs::canonical(output_dir) / fs::path(a.path);
  return std::nullopt;
}

}  // namespace ps
