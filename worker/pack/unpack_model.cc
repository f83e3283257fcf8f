// Unpacking: any of the three artifact kinds back to the dense checkpoint, bit for bit.
#include <cstring>
#include <optional>
#include <set>
#include <tuple>

#include "common/error.h"
#include "worker/pack/pack_io.h"
#include "worker/pack/pack_model.h"
#include "worker/pack/pack_names.h"
#include "worker/pack/targets.h"

namespace ps::pack {

namespace fs = std::filesystem;

nlohmann::json UnpackReport::ToJson() const {
  return {{"event", "unpack"},
          {"format", format},
          {"restored_tensors", restored_tensors},
          {"output_bytes", output_bytes}};
}

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Stem(const std::string& s, const std::string& suffix) {
  return s.substr(0, s.size() - suffix.size());
}

std::string Describe(const SafetensorsFile& f, const std::string& tensor) {
  return f.path().string() + ": tensor " + tensor;
}

// Reads a 2-element integer tensor (I64 or I32, shape [2], [2,1] or [1,2]) as rows, cols.
std::pair<int64_t, int64_t> ReadShape(const SafetensorsFile& f, const TensorInfo& t) {
  if ((t.dtype != DType::kI64 && t.dtype != DType::kI32) || t.Numel() != 2)
    throw Error(Describe(f, t.name) + " must hold the two dims of the dense weight as integers");
  const auto d = f.Data(t);
  int64_t v[2];
  for (int i = 0; i < 2; ++i) {
    if (t.dtype == DType::kI64) {
      std::memcpy(&v[i], d.data() + 8 * i, 8);
    } else {
      int32_t x;
      std::memcpy(&x, d.data() + 4 * i, 4);
      v[i] = x;
    }
  }
  if (v[0] <= 0 || v[1] <= 0 || v[1] % 4 != 0)
    throw Error(Describe(f, t.name) + " gives shape [" + std::to_string(v[0]) + ", " +
                std::to_string(v[1]) + "], not a 2:4 weight shape");
  return {v[0], v[1]};
}

void ExpectShape(const SafetensorsFile& f, const TensorInfo& t, std::vector<int64_t> shape,
                 bool floating) {
  if (floating ? !IsFloating(t.dtype) : t.dtype != DType::kU8)
    throw Error(Describe(f, t.name) + " has dtype " + std::string(DTypeName(t.dtype)) +
                (floating ? ", expected a floating type" : ", expected U8"));
  if (t.shape != shape) {
    std::string want, got;
    for (auto x : shape) want += (want.empty() ? "" : ", ") + std::to_string(x);
    for (auto x : t.shape) got += (got.empty() ? "" : ", ") + std::to_string(x);
    throw Error(Describe(f, t.name) + " has shape [" + got + "], expected [" + want + "]");
  }
}

// The compressed-tensors and native layouts: the tensors of each module (parts[0] emits the
// dense weight, the others ride along) must sit in the same file.
void UnpackWeights(const fs::path& in, const fs::path& out, bool ct, UnpackReport& rep) {
  const auto ckpt = Checkpoint::Open(in);
  const std::vector<std::string> parts =
      ct ? std::vector<std::string>{kCtCompressed, kCtBitmask, kCtShape}
         : std::vector<std::string>{kNativeValues, kNativeMeta};
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  for (const auto& file : ckpt.files()) {
    const auto tensors = IndexedTensors(ckpt, *file);
    std::set<std::string> modules;  // modules whose first part is in this file
    for (const TensorInfo* t : tensors)
      if (EndsWith(t->name, parts[0])) modules.insert(Stem(t->name, parts[0]));
    auto part = [&](const std::string& mod, size_t i) -> const TensorInfo& {
      const TensorInfo* t = file->Find(mod + parts[i]);
      if (!t || !ckpt.Contains(mod + parts[i]))
        throw Error(file->path().string() + ": " + mod + parts[0] + " has no " + mod + parts[i] +
                    " beside it (truncated or malformed artifact)");
      return *t;
    };
    ShardWriter w;
    for (const TensorInfo* t : tensors) {
      bool is_part = false;
      for (size_t i = 1; i < parts.size(); ++i)
        if (EndsWith(t->name, parts[i]) && modules.count(Stem(t->name, parts[i]))) is_part = true;
      if (is_part) continue;
      for (size_t i = 1; i < parts.size(); ++i)
        if (EndsWith(t->name, parts[i]))
          throw Error(Describe(*file, t->name) + " has no " + Stem(t->name, parts[i]) + parts[0] +
                      " beside it (truncated or malformed artifact)");
      if (!EndsWith(t->name, parts[0])) {
        w.Borrow(t->name, t->dtype, t->shape, file->Data(*t));
        continue;
      }
      const std::string mod = Stem(t->name, parts[0]);
      const TensorInfo& vals = *t;
      int64_t rows, cols;
      std::vector<uint8_t> choices;
      if (ct) {
        std::tie(rows, cols) = ReadShape(*file, part(mod, 2));
        ExpectShape(*file, vals, {rows, cols / 2}, true);
        const TensorInfo& bits = part(mod, 1);
        ExpectShape(*file, bits, {rows, BitmaskRowBytes(cols)}, false);
        choices = DecodeBitmask(Describe(*file, bits.name), rows, cols, file->Data(bits));
      } else {
        if (vals.shape.size() != 2 || vals.shape[1] % 2 != 0)
          throw Error(Describe(*file, vals.name) + " must be [out, in/2] with in a multiple of 4");
        rows = vals.shape[0];
        cols = vals.shape[1] * 2;
        ExpectShape(*file, vals, {rows, cols / 2}, true);
        const TensorInfo& meta = part(mod, 1);
        ExpectShape(*file, meta, {rows, BitmaskRowBytes(cols)}, false);
        choices = DecodeNibbles(Describe(*file, meta.name), rows, cols, file->Data(meta));
      }
      w.Own(mod + ".weight", vals.dtype, {rows, cols},
            ScatterKept(vals.dtype, rows, cols, file->Data(vals), choices));
      rep.restored_tensors += 1;
    }
    std::map<std::string, std::string> md = file->metadata();
    md.erase(kMetaFormat);
    md.erase(kMetaPattern);
    w.Write(out, file->path().filename().string(), md, weight_map, total);
  }
  if (rep.restored_tensors == 0)
    throw Error(in.string() + ": no packed 2:4 weights found (truncated or malformed artifact)");
  if (fs::exists(in / kIndexName)) WriteIndex(out, weight_map, total);
}

void UnpackMasks(const UnpackOptions& opt, const fs::path& out, UnpackReport& rep) {
  if (opt.base_model.empty())
    throw Error(opt.input.string() + " is a masks artifact: --base-model DIR is required");
  const auto masks = SafetensorsFile::Open(opt.input / kMasksFile);
  const auto& md = masks->metadata();
  auto meta = [&](const char* key) {
    auto it = md.find(key);
    if (it == md.end())
      throw Error(masks->path().string() + ": metadata has no " + key + " (not a masks artifact)");
    return it->second;
  };
  if (meta(kMetaFormat) != kMasksFormat || meta(kMetaPattern) != "2:4")
    throw Error(masks->path().string() + ": not a 2:4 masks artifact (format " + meta(kMetaFormat) +
                ", pattern " + meta(kMetaPattern) + ")");
  const MaskEncoding enc = ParseMaskEncoding(meta(kMetaEncoding));
  const std::string want = meta(kMetaBaseHash), have = BaseModelHash(opt.base_model);
  if (want != have)
    throw Error("the masks in " + opt.input.string() +
                " were made for the base model with "
                "SHA-256 " +
                want + ", but " + opt.base_model.string() + " has " + have +
                " (wrong --base-model)");
  // mask name -> (shape tensor, mask tensor)
  std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> by_weight;
  for (const auto& t : masks->tensors()) {
    if (EndsWith(t.name, kMaskShape)) {
      by_weight[Stem(t.name, kMaskShape)].first = &t;
    } else if (EndsWith(t.name, kMaskSuffix)) {
      by_weight[Stem(t.name, kMaskSuffix)].second = &t;
    } else {
      throw Error(Describe(*masks, t.name) + " is neither a .mask nor a .shape tensor");
    }
  }
  for (const auto& [name, p] : by_weight)
    if (!p.first || !p.second)
      throw Error(masks->path().string() + ": " + name + " lacks its " +
                  (p.first ? ".mask" : ".shape") + " tensor (truncated or malformed artifact)");
  const auto base = Checkpoint::Open(opt.base_model);
  for (const auto& [name, p] : by_weight)
    if (!base.Contains(name))
      throw Error(masks->path().string() + " has a mask for " + name +
                  ", which the base model does not have (wrong --base-model?)");
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  for (const auto& file : base.files()) {
    ShardWriter w;
    for (const TensorInfo* t : IndexedTensors(base, *file)) {
      auto it = by_weight.find(t->name);
      if (it == by_weight.end()) {
        if (IsPruneTarget(t->name))
          throw Error(masks->path().string() + " has no mask for " + t->name);
        w.Borrow(t->name, t->dtype, t->shape, file->Data(*t));
        continue;
      }
      const DenseRef ref = RefOf(*file, *t);
      const auto [rows, cols] = ReadShape(*masks, *it->second.first);
      if (rows != ref.rows || cols != ref.cols)
        throw Error("mask " + t->name + " is for shape [" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "] but the base model's tensor is [" +
                    std::to_string(ref.rows) + ", " + std::to_string(ref.cols) + "]");
      CheckPackable(ref);
      const TensorInfo& m = *it->second.second;
      const std::string what = Describe(*masks, m.name);
      std::vector<uint8_t> choices;
      if (enc == MaskEncoding::kBits) {
        ExpectShape(*masks, m, {rows, BitmaskRowBytes(cols)}, false);
        choices = DecodeBitmask(what, rows, cols, masks->Data(m));
      } else {
        ExpectShape(*masks, m, {Base6Bytes(rows, cols)}, false);
        choices = DecodeBase6(what, rows * cols / 4, masks->Data(m));
      }
      w.Own(t->name, t->dtype, t->shape, ApplyChoices(ref, choices));
      rep.restored_tensors += 1;
    }
    w.Write(out, file->path().filename().string(), file->metadata(), weight_map, total);
  }
  if (fs::exists(opt.base_model / kIndexName)) WriteIndex(out, weight_map, total);
  CopySideFiles(opt.base_model, out);
}

}  // namespace

UnpackReport UnpackModel(const UnpackOptions& opt) {
  if (opt.input.empty()) throw Error("--input DIR is required");
  if (!fs::is_directory(opt.input)) throw Error(opt.input.string() + " is not a directory");
  UnpackReport rep;
  std::optional<StagingDir> stage;
  if (fs::exists(opt.input / kMasksFile)) {
    rep.format = "masks";
    stage.emplace(opt.output, opt.input);
    UnpackMasks(opt, stage->path(), rep);
  } else {
    nlohmann::json config, qc;
    if (fs::exists(opt.input / "config.json")) config = ReadJsonFile(opt.input / "config.json");
    if (config.is_object()) {
      for (const char* key : {"quantization_config", "compression_config"})
        if (config.contains(key)) qc = config[key];
    }
    const bool ct = qc.is_object() && qc.contains("sparsity_config");
    if (ct) {
      const auto& sc = qc["sparsity_config"];
      const std::string fmt = sc.value("format", "");
      if (fmt != kCtFormat)
        throw Error(opt.input.string() + "/config.json: sparsity format '" + fmt +
                    "' is not supported (only " + kCtFormat + ")");
      for (auto it = qc.begin(); it != qc.end(); ++it)
        if (it.key() != "quant_method" && it.key() != "version" && it.key() != "sparsity_config")
          throw Error(opt.input.string() + "/config.json: quantization_config." + it.key() +
                      " present; quantized compressed-tensors checkpoints are not supported");
      rep.format = "compressed-tensors";
    } else {
      const fs::path manifest = opt.input / kManifestName;
      if (!fs::exists(manifest) || ReadJsonFile(manifest).value("format", "") != "native")
        throw Error(opt.input.string() + " is not a 2:4 artifact: no " + kMasksFile +
                    ", no compressed-tensors sparsity_config in config.json, and no " +
                    kManifestName + " of a native artifact");
      rep.format = "native";
    }
    if (!opt.base_model.empty())
      throw Error("--base-model is only for masks artifacts; " + opt.input.string() + " is " +
                  rep.format);
    stage.emplace(opt.output, opt.input);
    UnpackWeights(opt.input, stage->path(), ct, rep);
    if (ct) {
      config.erase("quantization_config");
      config.erase("compression_config");
      WriteJsonFile(stage->path() / "config.json", config);
      CopySideFiles(opt.input, stage->path(), {"config.json"});
    } else {
      CopySideFiles(opt.input, stage->path());
    }
  }
  rep.output_bytes = DirBytes(stage->path());
  stage->Commit();
  return rep;
}

}  // namespace ps::pack
