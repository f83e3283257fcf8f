#include "worker/pack/pack_model.h"

#include <cstring>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/pack/pack_io.h"
#include "worker/pack/pack_names.h"
#include "worker/pack/targets.h"

namespace ps::pack {

namespace fs = std::filesystem;

Format ParseFormat(const std::string& s) {
  if (s == "compressed-tensors") return Format::kCompressedTensors;
  if (s == "native") return Format::kNative;
  if (s == "masks") return Format::kMasks;
  throw Error("unknown --format '" + s + "' (compressed-tensors, native or masks)");
}

MaskEncoding ParseMaskEncoding(const std::string& s) {
  if (s == "base6") return MaskEncoding::kBase6;
  if (s == "bits") return MaskEncoding::kBits;
  throw Error("unknown --mask-encoding '" + s + "' (base6 or bits)");
}

std::string FormatName(Format f) {
  switch (f) {
    case Format::kCompressedTensors:
      return "compressed-tensors";
    case Format::kNative:
      return "native";
    case Format::kMasks:
      return "masks";
  }
  return "?";
}

std::string MaskEncodingName(MaskEncoding e) { return e == MaskEncoding::kBits ? "bits" : "base6"; }

nlohmann::json PackReport::ToJson() const {
  nlohmann::json j{{"event", "pack"},
                   {"format", format},
                   {"dense_bytes", dense_bytes},
                   {"artifact_bytes", artifact_bytes},
                   {"artifact_vs_dense", dense_bytes ? double(artifact_bytes) / dense_bytes : 0.0},
                   {"target_tensors", target_tensors},
                   {"target_params", target_params},
                   {"target_dense_bytes", target_dense_bytes},
                   {"target_packed_bytes", target_packed_bytes},
                   {"target_packed_vs_dense",
                    target_dense_bytes ? double(target_packed_bytes) / target_dense_bytes : 0.0},
                   {"target_bits_per_param",
                    target_params ? 8.0 * double(target_packed_bytes) / target_params : 0.0}};
  if (!encoding.empty()) j["encoding"] = encoding;
  return j;
}

std::string BaseModelHash(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
  if (files.empty()) throw Error("base model " + dir.string() + " has no .safetensors files");
  std::sort(files.begin(), files.end());
  std::string lines;
  for (const auto& f : files) lines += f.filename().string() + " " + Sha256File(f) + "\n";
  return Sha256Hex(std::as_bytes(std::span(lines.data(), lines.size())));
}

namespace {

void CountTarget(PackReport& rep, const DenseRef& w) {
  rep.target_tensors += 1;
  rep.target_params += w.rows * w.cols;
  rep.target_dense_bytes += w.bytes.size();
}

// compressed-tensors names every Linear layer but lm_head as a target ("Linear" / ignore
// lm_head, the way llm-compressor writes 2:4 models), which is only true when the projections
// are the only other linear layers. Refuse anything else rather than write a wrong config.
void CheckLlamaFamily(const Checkpoint& ckpt) {
  for (const auto& name : ckpt.Names()) {
    const auto& info = ckpt.Info(name);
    if (IsPruneTarget(name) || info.shape.size() != 2) continue;
    if (name == "lm_head.weight" || name.find("embed") != std::string::npos) continue;
    throw Error("tensor " + name +
                " looks like a linear layer that is not a q/k/v/o/gate/up/down "
                "projection; the compressed-tensors export supports Llama-family checkpoints");
  }
}

nlohmann::json CompressedTensorsConfig(const Checkpoint& ckpt, int64_t dropped) {
  int64_t total = 0;
  for (const auto& name : ckpt.Names()) total += ckpt.Info(name).Numel();
  nlohmann::json sparsity{{"format", kCtFormat},
                          {"sparsity_structure", "2:4"},
                          {"targets", {"Linear"}},
                          {"ignore", {"lm_head"}},
                          {"global_sparsity", total ? double(dropped) / total : 0.0},
                          {"registry_requires_subclass", false}};
  return nlohmann::json{{"quant_method", "compressed-tensors"},
                        {"version", kCtVersion},
                        {"sparsity_config", sparsity}};
}

// compressed-tensors and native: every target weight replaced in place, shard by shard.
void PackWeights(const PackOptions& opt, const Checkpoint& ckpt, const fs::path& out,
                 PackReport& rep) {
  const bool ct = opt.format == Format::kCompressedTensors;
  nlohmann::json config;
  if (ct) {
    if (!fs::exists(opt.model / "config.json"))
      throw Error(opt.model.string() + " has no config.json; compressed-tensors loaders need it");
    config = ReadJsonFile(opt.model / "config.json");
    if (config.contains("quantization_config") || config.contains("compression_config"))
      throw Error(opt.model.string() +
                  "/config.json already has a quantization_config: the "
                  "model is already compressed or quantized");
    CheckLlamaFamily(ckpt);
  }
  std::map<std::string, std::string> weight_map;
  uint64_t total = 0;
  int64_t dropped = 0;
  for (const auto& file : ckpt.files()) {
    ShardWriter w;
    for (const TensorInfo* t : IndexedTensors(ckpt, *file)) {
      if (!IsPruneTarget(t->name)) {
        w.Borrow(t->name, t->dtype, t->shape, file->Data(*t));
        continue;
      }
      const DenseRef ref = RefOf(*file, *t);
      CountTarget(rep, ref);
      const auto choices = SelectChoices(ref);
      auto values = GatherKept(ref, choices);
      const std::string mod(ModuleOf(t->name));
      const int64_t rb = BitmaskRowBytes(ref.cols);
      rep.target_packed_bytes += values.size() + ref.rows * rb;
      dropped += ref.rows * ref.cols / 2;
      if (ct) {
        w.OwnI64(mod + kCtShape, {2, 1}, {ref.rows, ref.cols});
        w.Own(mod + kCtCompressed, ref.dtype, {ref.rows, ref.cols / 2}, std::move(values));
        w.Own(mod + kCtBitmask, {ref.rows, rb}, EncodeBitmask(ref.rows, ref.cols, choices));
        rep.target_packed_bytes += 2 * sizeof(int64_t);
      } else {
        w.Own(mod + kNativeValues, ref.dtype, {ref.rows, ref.cols / 2}, std::move(values));
        w.Own(mod + kNativeMeta, {ref.rows, rb}, EncodeNibbles(ref.rows, ref.cols, choices));
      }
    }
    std::map<std::string, std::string> extra;
    if (!ct) extra = {{kMetaFormat, kNativeFormat}, {kMetaPattern, "2:4"}};
    w.Write(out, file->path().filename().string(), OutputMetadata(*file, extra), weight_map, total);
  }
  if (rep.target_tensors == 0)
    throw Error("no q/k/v/o/gate/up/down projection weights in " + opt.model.string() +
                ": nothing to pack");
  if (fs::exists(opt.model / kIndexName)) WriteIndex(out, weight_map, total);
  if (ct) {
    config["quantization_config"] = CompressedTensorsConfig(ckpt, dropped);
    WriteJsonFile(out / "config.json", config);
    CopySideFiles(opt.model, out, {"config.json"});
  } else {
    CopySideFiles(opt.model, out);
  }
}

bool SameTensor(const Checkpoint& a, const Checkpoint& b, const std::string& name) {
  const auto &ia = a.Info(name), &ib = b.Info(name);
  if (ia.dtype != ib.dtype || ia.shape != ib.shape) return false;
  const auto da = a.Data(name), db = b.Data(name);
  return da.size() == db.size() &&
         (da.empty() || std::memcmp(da.data(), db.data(), da.size()) == 0);
}

// masks: one file of masks; everything else must be the base model's, bit for bit.
void PackMasks(const PackOptions& opt, const Checkpoint& ckpt, const fs::path& out,
               PackReport& rep) {
  const auto base = Checkpoint::Open(opt.base_model);
  const auto names = ckpt.Names(), base_names = base.Names();
  for (const auto& n : names)
    if (!base.Contains(n))
      throw Error("tensor " + n + " of " + opt.model.string() + " is not in the base model " +
                  opt.base_model.string() + " (wrong --base-model?)");
  for (const auto& n : base_names)
    if (!ckpt.Contains(n))
      throw Error("base model tensor " + n + " is missing from " + opt.model.string());
  ShardWriter w;
  for (const auto& name : names) {
    if (!IsPruneTarget(name)) {
      if (!SameTensor(ckpt, base, name))
        throw Error("tensor " + name +
                    " differs from the base model's; a masks artifact keeps "
                    "only masks, so every other tensor must be the base model's (wrong "
                    "--base-model, or use --format compressed-tensors / native)");
      continue;
    }
    const DenseRef p = RefOf(ckpt.FileOf(name), ckpt.Info(name));
    const DenseRef b = RefOf(base.FileOf(name), base.Info(name));
    CountTarget(rep, p);
    const auto choices = SelectChoicesAgainstBase(p, b);
    w.OwnI64(name + kMaskShape, {2}, {p.rows, p.cols});
    std::vector<uint8_t> mask;
    std::vector<int64_t> shape;
    if (opt.mask_encoding == MaskEncoding::kBits) {
      mask = EncodeBitmask(p.rows, p.cols, choices);
      shape = {p.rows, BitmaskRowBytes(p.cols)};
    } else {
      mask = EncodeBase6(choices);
      shape = {static_cast<int64_t>(mask.size())};
    }
    rep.target_packed_bytes += mask.size();
    w.Own(name + kMaskSuffix, shape, std::move(mask));
  }
  if (rep.target_tensors == 0)
    throw Error("no q/k/v/o/gate/up/down projection weights in " + opt.model.string() +
                ": nothing to pack");
  std::map<std::string, std::string> wm;
  uint64_t total = 0;
  w.Write(out, kMasksFile,
          {{kMetaFormat, kMasksFormat},
           {kMetaPattern, "2:4"},
           {kMetaEncoding, MaskEncodingName(opt.mask_encoding)},
           {kMetaBaseHash, BaseModelHash(opt.base_model)}},
          wm, total);
}

}  // namespace

PackReport PackModel(const PackOptions& opt) {
  if (opt.model.empty()) throw Error("--model DIR is required");
  if (opt.format == Format::kMasks && opt.base_model.empty())
    throw Error("--format masks needs --base-model DIR (the dense model the masks apply to)");
  const auto ckpt = Checkpoint::Open(opt.model);
  StagingDir stage(opt.output, opt.model);
  PackReport rep;
  rep.format = FormatName(opt.format);
  if (opt.format == Format::kMasks) {
    rep.encoding = MaskEncodingName(opt.mask_encoding);
    PackMasks(opt, ckpt, stage.path(), rep);
  } else {
    PackWeights(opt, ckpt, stage.path(), rep);
  }
  rep.dense_bytes = SafetensorsBytes(opt.base_model.empty() ? opt.model : opt.base_model);
  nlohmann::json manifest{{"format", rep.format}, {"pattern", "2:4"}, {"version", 1}};
  if (opt.format == Format::kCompressedTensors) manifest["compressed_tensors_version"] = kCtVersion;
  if (!rep.encoding.empty()) manifest["encoding"] = rep.encoding;
  WriteJsonFile(stage.path() / kManifestName, manifest);
  rep.artifact_bytes = DirBytes(stage.path());
  stage.Commit();
  return rep;
}

}  // namespace ps::pack
