#include "common/job_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/bounded_read.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/method_registry.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

std::string Join(const std::vector<std::string>& items, std::string_view sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? std::string(sep) : "") + items[i];
  return out;
}

// Shared state of one parse: where messages point.
struct ParseContext {
  std::string source;
  fs::path base_dir;
  [[noreturn]] void Fail(const std::string& key, const std::string& problem,
                         const YAML::Node* at = nullptr) const {
    std::string where = source;
    if (at && at->Mark().line >= 0) where += " line " + std::to_string(at->Mark().line + 1);
    throw Error(key + ": " + problem + " (" + where + ")");
  }
};

// Reads one YAML mapping, remembering which keys were consumed so that leftovers (typos, keys of
// another method) are reported by Finish().
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path, const ParseContext& ctx)
      : node_(node), path_(std::move(path)), ctx_(ctx) {
    if (node_ && !node_.IsNull() && !node_.IsMap())
      ctx_.Fail(path_.empty() ? "(top level)" : path_, "must be a mapping", &node_);
  }

  std::string Key(std::string_view k) const {
    return path_.empty() ? std::string(k) : path_ + "." + std::string(k);
  }
  bool Has(std::string_view k) const {
    return node_ && node_.IsMap() && node_[std::string(k)] && !node_[std::string(k)].IsNull();
  }
  YAML::Node Node(std::string_view k) {
    seen_.insert(std::string(k));
    if (!node_ || !node_.IsMap()) return YAML::Node();
    return node_[std::string(k)];
  }

  std::string Str(std::string_view k, const std::string& def) {
    YAML::Node n = Node(k);
    if (!n || n.IsNull()) return def;
    if (!n.IsScalar()) ctx_.Fail(Key(k), "must be a string", &n);
    return n.Scalar();
  }
  std::string Choice(std::string_view k, const std::string& def,
                     std::initializer_list<std::string_view> allowed) {
    return Choice(k, def, std::vector<std::string_view>(allowed));
  }
  std::string Choice(std::string_view k, const std::string& def,
                     const std::vector<std::string_view>& allowed) {
    std::string v = Str(k, def);
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::vector<std::string> names(allowed.begin(), allowed.end());
      YAML::Node n = Node(k);
      ctx_.Fail(Key(k), "'" + v + "' is not one of " + Join(names, " | "), &n);
    }
    return v;
  }
  // One of the enum's spellings (job_choices.h); `only` narrows the accepted values.
  template <class E>
  E Enum(std::string_view k, E def, std::vector<E> only = {}) {
    std::vector<std::string_view> names;
    for (const auto& [v, name] : ChoiceTable<E>::kEntries)
      if (only.empty() || std::find(only.begin(), only.end(), v) != only.end())
        names.push_back(name);
    return *ParseChoice<E>(Choice(k, std::string(ChoiceName(def)), names));
  }
  int64_t Int(std::string_view k, int64_t def, int64_t min,
              int64_t max = std::numeric_limits<int64_t>::max()) {
    YAML::Node n = Node(k);
    if (!n || n.IsNull()) return def;
    int64_t v = 0;
    if (!n.IsScalar() || !YAML::convert<int64_t>::decode(n, v))
      ctx_.Fail(Key(k), "must be an integer, got '" + Text(n) + "'", &n);
    if (v < min) ctx_.Fail(Key(k), "must be >= " + std::to_string(min), &n);
    if (v > max) ctx_.Fail(Key(k), "must be <= " + std::to_string(max), &n);
    return v;
  }
  bool Bool(std::string_view k, bool def) {
    YAML::Node n = Node(k);
    if (!n || n.IsNull()) return def;
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v))
      ctx_.Fail(Key(k), "must be true or false, got '" + Text(n) + "'", &n);
    return v;
  }
  double Num(std::string_view k, double def, double min, bool min_exclusive = false) {
    YAML::Node n = Node(k);
    if (!n || n.IsNull()) return def;
    return CheckNum(n, Key(k), min, min_exclusive);
  }
  double CheckNum(const YAML::Node& n, const std::string& key, double min, bool min_exclusive) {
    double v = 0;
    if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v))
      ctx_.Fail(key, "must be a number, got '" + Text(n) + "'", &n);
    if (min_exclusive ? !(v > min) : !(v >= min))
      ctx_.Fail(key, std::string("must be ") + (min_exclusive ? "> " : ">= ") + Fmt(min), &n);
    return v;
  }
  std::array<double, 2> Pair(std::string_view k, std::array<double, 2> def, double min_exclusive) {
    YAML::Node n = Node(k);
    if (!n || n.IsNull()) return def;
    if (!n.IsSequence() || n.size() != 2)
      ctx_.Fail(Key(k), "must be a list of two numbers [start, end]", &n);
    return {CheckNum(n[0], Key(k) + "[0]", min_exclusive, true),
            CheckNum(n[1], Key(k) + "[1]", min_exclusive, true)};
  }
  fs::path Path(std::string_view k) {
    YAML::Node n = Node(k);
    if (!n || n.IsNull()) return {};
    return ResolvePath(n, Key(k));
  }
  std::vector<fs::path> Paths(std::string_view k) {
    YAML::Node n = Node(k);
    std::vector<fs::path> out;
    if (!n || n.IsNull()) return out;
    if (n.IsScalar()) {
      out.push_back(ResolvePath(n, Key(k)));
      return out;
    }
    if (!n.IsSequence()) ctx_.Fail(Key(k), "must be a path or a list of paths", &n);
    for (size_t i = 0; i < n.size(); ++i)
      out.push_back(ResolvePath(n[i], Key(k) + "[" + std::to_string(i) + "]"));
    return out;
  }
  fs::path ResolvePath(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar() || n.Scalar().empty()) ctx_.Fail(key, "must be a non-empty path", &n);
    fs::path p(n.Scalar());
    if (p.is_relative()) p = ctx_.base_dir / p;
    return p.lexically_normal();
  }

  // Keys present in the mapping but never read: typos or keys that do not apply here.
  void Finish(const std::string& hint = "") {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      std::string k = kv.first.Scalar();
      if (!seen_.count(k)) {
        std::vector<std::string> known(seen_.begin(), seen_.end());
        ctx_.Fail(Key(k),
                  "unknown key" + (hint.empty() ? "" : " " + hint) +
                      (known.empty() ? "" : " (known here: " + Join(known) + ")"),
                  &kv.first);
      }
    }
  }

 private:
  static std::string Text(const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    YAML::Emitter e;
    e << YAML::Flow << n;
    return e.c_str();
  }
  static std::string Fmt(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }

  YAML::Node node_;
  std::string path_;
  const ParseContext& ctx_;
  std::set<std::string> seen_;
};

// The method keys and which methods take them (common/method_registry.h).
const std::map<std::string, std::set<std::string>>& MethodKeys() {
  static const std::map<std::string, std::set<std::string>> keys = [] {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& m : Methods()) out[std::string(m.name)] = {m.keys.begin(), m.keys.end()};
    return out;
  }();
  return keys;
}

std::vector<std::string_view> MethodNameList() {
  std::vector<std::string_view> names;
  for (const auto& m : Methods()) names.push_back(m.name);
  return names;
}

MethodSpec ParseMethod(const YAML::Node& node, const ParseContext& ctx) {
  if (!node || node.IsNull())
    ctx.Fail("method", "missing (method.name is one of " + MethodNames() + ")");
  MapReader r(node, "method", ctx);
  MethodSpec m;
  if (!r.Has("name")) ctx.Fail("method.name", "missing", &node);
  m.name = r.Choice("name", "", MethodNameList());
  const std::set<std::string>& allowed = MethodKeys().at(m.name);
  // Keys valid for some other method are reported as such rather than as typos.
  for (const auto& kv : node) {
    std::string k = kv.first.Scalar();
    if (k == "name" || allowed.count(k)) continue;
    std::vector<std::string> users;
    for (const auto& [method, keys] : MethodKeys())
      if (keys.count(k)) users.push_back(method);
    if (!users.empty()) {
      std::vector<std::string> mine(allowed.begin(), allowed.end());
      ctx.Fail("method." + k,
               "not a key of method " + m.name + " (it belongs to " + Join(users) + "; " + m.name +
                   " takes " + (mine.empty() ? "no other keys" : Join(mine)) + ")",
               &kv.first);
    }
  }
  if (allowed.count("lr")) {
    m.lr = r.Num("lr", m.lr, 0, true);
    m.warmup_ratio = r.Num("warmup_ratio", m.warmup_ratio, 0);
    if (m.warmup_ratio > 1) {
      YAML::Node n = r.Node("warmup_ratio");
      ctx.Fail("method.warmup_ratio", "must be <= 1", &n);
    }
    m.epochs = static_cast<int>(r.Int("epochs", m.epochs, 1, 1000000));
    m.max_steps = r.Int("max_steps", m.max_steps, 0);
    m.batch_size = static_cast<int>(r.Int("batch_size", m.batch_size, 1, 1 << 20));
    m.grad_accum = static_cast<int>(r.Int("grad_accum", m.grad_accum, 1, 1 << 20));
    m.master_dtype =
        r.Enum("master_dtype", m.master_dtype, {ComputeDType::kFp32, ComputeDType::kBf16});
    m.overlap_update = r.Bool("overlap_update", m.overlap_update);
  }
  if (m.name == "proxsparse") {
    m.lambda1 = r.Num("lambda1", m.lambda1, 0);
    m.lambda2 = r.Num("lambda2", m.lambda2, 0);
    m.epsilon = r.Num("epsilon", m.epsilon, 0, true);
    m.trainable = r.Enum("trainable", m.trainable);
    m.hard = r.Enum("hard", m.hard);
  }
  if (m.name == "sparsegpt") {
    m.blocksize = static_cast<int>(r.Int("blocksize", m.blocksize, 1, 1 << 20));
    m.percdamp = r.Num("percdamp", m.percdamp, 0);
  }
  if (m.name == "maskllm") {
    m.tau = r.Pair("tau", m.tau, 0);
    m.kappa = r.Pair("kappa", m.kappa, 0);
    m.prior = r.Choice("prior", m.prior, {"magnitude", "wanda", "sparsegpt", "none"});
    m.prior_alpha = r.Num("prior_alpha", m.prior_alpha, 0);
    m.sparse_reg = r.Num("sparse_reg", m.sparse_reg, 0);
  }
  r.Finish("for method " + m.name);
  return m;
}

JobSpec ParseRoot(const YAML::Node& root, const ParseContext& ctx) {
  if (!root || root.IsNull()) ctx.Fail("(top level)", "the job file is empty");
  MapReader r(root, "", ctx);
  JobSpec s;
  s.name = r.Str("name", "");
  if (s.name.size() > kMaxJobNameBytes)
    ctx.Fail("name",
             "is " + std::to_string(s.name.size()) + " bytes long; at most " +
                 std::to_string(kMaxJobNameBytes) + " are allowed",
             &root);
  for (unsigned char c : s.name)
    if (c < 0x20 || c == 0x7f)
      ctx.Fail("name",
               "contains a control character (byte " + std::to_string(c) + "); use printable text",
               &root);
  if (!r.Has("model")) ctx.Fail("model", "missing (a Hugging Face model directory)", &root);
  s.model = r.Path("model");
  {
    YAML::Node n = r.Node("pattern");
    if (n && !n.IsNull()) {
      if (!n.IsScalar()) ctx.Fail("pattern", "must be a string like \"2:4\"", &n);
      try {
        s.pattern = ParseNMPattern(n.Scalar());
      } catch (const Error& e) {
        ctx.Fail("pattern", std::string(e.what()).substr(std::string("pattern: ").size()), &n);
      }
    }
  }
  s.seed = static_cast<uint64_t>(r.Int("seed", 0, 0));
  s.device = r.Enum("device", s.device);
  s.dtype = r.Enum("dtype", s.dtype);
  s.method = ParseMethod(r.Node("method"), ctx);

  {
    MapReader mu(r.Node("masked_update"), "masked_update", ctx);
    s.masked_update.steps = mu.Int("steps", 0, 0);
    s.masked_update.lr = mu.Num("lr", s.masked_update.lr, 0, true);
    mu.Finish();
  }
  s.reconstruct = r.Choice("reconstruct", s.reconstruct, {"none", "obs", "lsq"});
  // `obs` on a method that already re-solves its kept weights would redo the same update; `lsq`
  // re-solves them exactly on that method's mask (e.g. SparseGPT's mask, for comparing masks).
  if (s.reconstruct == "obs" && GetMethod(s.method.name).changes_weights) {
    YAML::Node n = r.Node("reconstruct");
    ctx.Fail("reconstruct",
             "method " + s.method.name +
                 " already re-solves its kept weights (reconstruct: obs is for the masks of the "
                 "frozen-weight methods)",
             &n);
  }
  YAML::Node cn = r.Node("calibration");
  {
    MapReader c(cn, "calibration", ctx);
    s.calibration.path = c.Path("path");
    s.calibration.format =
        c.Choice("format", "auto", {"auto", "text", "jsonl", "tokens-u16", "tokens-u32"});
    s.calibration.samples = static_cast<int>(c.Int("samples", 64, 1, 1 << 24));
    s.calibration.seqlen = static_cast<int>(c.Int("seqlen", 512, 1, 1 << 24));
    s.calibration.sampling = c.Choice("sampling", "document", {"document", "window"});
    c.Finish();
  }
  {
    MapReader e(r.Node("evaluation"), "evaluation", ctx);
    s.evaluation.ppl = e.Paths("ppl");
    s.evaluation.ctx = static_cast<int>(e.Int("ctx", 512, 1, 1 << 24));
    s.evaluation.max_windows = static_cast<int>(e.Int("max_windows", 40, 0));
    s.evaluation.tasks = e.Paths("tasks");
    YAML::Node b = e.Node("baselines");
    if (b && !b.IsNull()) {
      if (!b.IsSequence())
        ctx.Fail("evaluation.baselines", "must be a list, e.g. [magnitude, wanda]", &b);
      for (size_t i = 0; i < b.size(); ++i) {
        const std::string key = "evaluation.baselines[" + std::to_string(i) + "]";
        const YAML::Node item = b[i];
        if (!item.IsScalar()) ctx.Fail(key, "must be a method name", &item);
        const std::string v = item.Scalar();
        if (v != "magnitude" && v != "wanda" && v != "sparsegpt")
          ctx.Fail(key, "'" + v + "' is not one of magnitude | wanda | sparsegpt", &item);
        if (std::count(s.evaluation.baselines.begin(), s.evaluation.baselines.end(), v))
          ctx.Fail(key, "'" + v + "' is listed twice", &item);
        s.evaluation.baselines.push_back(v);
      }
    }
    e.Finish();
  }
  {
    const std::string why = CalibrationNeed(s);
    if (!why.empty() && s.calibration.path.empty())
      ctx.Fail("calibration.path", "missing (" + why + " needs calibration data)",
               cn ? &cn : &root);
  }
  s.output = r.Path("output");
  {
    // A list of artifact kinds, each once; the packed ones only for 2:4.
    YAML::Node pn = r.Node("publish");
    s.publish = JobSpec::DefaultPublish(s.pattern);
    if (pn && !pn.IsNull()) {
      if (!pn.IsSequence() || pn.size() == 0)
        ctx.Fail("publish", "must be a non-empty list of: model, compressed-tensors, native, masks",
                 &pn);
      s.publish.clear();
      for (size_t i = 0; i < pn.size(); ++i) {
        const std::string key = "publish[" + std::to_string(i) + "]";
        std::string v = pn[i].IsScalar() ? pn[i].Scalar() : "";
        if (v != "model" && v != "compressed-tensors" && v != "native" && v != "masks")
          ctx.Fail(key, "'" + v + "' is not one of model | compressed-tensors | native | masks",
                   &pn);
        if (std::find(s.publish.begin(), s.publish.end(), v) != s.publish.end())
          ctx.Fail(key, "'" + v + "' is listed twice", &pn);
        s.publish.push_back(v);
      }
      const bool packed = s.Publishes("compressed-tensors") || s.Publishes("native");
      if (packed && !(s.pattern == k2of4))
        ctx.Fail("publish",
                 "compressed-tensors and native hold 2:4 weights; pattern is " +
                     s.pattern.ToString() + " (publish: [model, masks])",
                 &pn);
    }
  }
  {
    MapReader c(r.Node("checkpoint"), "checkpoint", ctx);
    s.checkpoint.every_steps = c.Int("every_steps", 50, 0);
    c.Finish();
  }
  s.log_every = static_cast<int>(r.Int("log_every", 1, 1));
  {
    YAML::Node rn = r.Node("resources");
    MapReader res(rn, "resources", ctx);
    s.resources.ranks = static_cast<int>(res.Int("ranks", 1, 1, kMaxJobRanks));
    s.resources.gpus_per_rank = static_cast<int>(res.Int("gpus_per_rank", 0, 0, 64));
    s.resources.cpus_per_rank = static_cast<int>(res.Int("cpus_per_rank", 1, 1, 1024));
    s.resources.memory_gb = res.Num("memory_gb", 4, 0, true);
    // A bound every launcher can express (Slurm --mem in MiB, Kubernetes Mi) without overflow.
    if (s.resources.memory_gb > kMaxJobMemoryGb) {
      YAML::Node mn = rn["memory_gb"];
      ctx.Fail("resources.memory_gb",
               "must be <= " + std::to_string(static_cast<int64_t>(kMaxJobMemoryGb)) +
                   " (GB for all ranks together)",
               &mn);
    }
    s.resources.time_limit_minutes =
        static_cast<int>(res.Int("time_limit_minutes", 60, 1, 60 * 24 * 365));
    res.Finish();
    if (s.device == Device::kCuda && s.resources.gpus_per_rank < 1)
      ctx.Fail("resources.gpus_per_rank", "must be >= 1 when device is cuda", rn ? &rn : &root);
    if (s.device == Device::kCpu && s.resources.gpus_per_rank > 0)
      ctx.Fail("resources.gpus_per_rank", "must be 0 when device is cpu (or set device: cuda)",
               rn ? &rn : &root);
  }
  {
    MapReader p(r.Node("parallel"), "parallel", ctx);
    s.parallel.shard = p.Choice("shard", "optimizer", {"optimizer", "params"});
    s.parallel.activation_checkpointing = p.Bool("activation_checkpointing", false);
    s.parallel.offload = p.Choice("offload", "none", {"none", "optimizer"});
    p.Finish();
    if (s.parallel.shard == "params" &&
        (s.method.name != "proxsparse" || s.method.trainable != Trainable::kTargets))
      ctx.Fail("parallel.shard",
               "params is supported for method proxsparse with trainable: targets only", &root);
    if (s.parallel.offload != "none" && s.method.name != "proxsparse")
      ctx.Fail("parallel.offload", "is supported for method proxsparse only", &root);
  }
  r.Finish();
  return s;
}

// Length of the UTF-8 sequence starting at text[i], or 0 when it is not valid UTF-8 (overlong
// forms, surrogates and code points past U+10FFFF are invalid, as in RFC 3629).
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (n == 0 || c > 0xf4 || i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  if (c == 0xe0 && b(i + 1) < 0xa0) return 0;   // overlong
  if (c == 0xed && b(i + 1) >= 0xa0) return 0;  // surrogates
  if (c == 0xf0 && b(i + 1) < 0x90) return 0;   // overlong
  if (c == 0xf4 && b(i + 1) >= 0x90) return 0;  // past U+10FFFF
  return n;
}

// What must hold before the YAML parser sees the text: bounded size, UTF-8 text, no NUL bytes
// (binary files), so that every failure is a message naming the line instead of a parser error
// without one.
void CheckJobTextImpl(std::string_view text, std::string_view source) {
  const std::string src(source);
  if (static_cast<int64_t>(text.size()) > kMaxJobFileBytes)
    throw Error(src + ": the job file is " + std::to_string(text.size()) + " bytes; at most " +
                std::to_string(kMaxJobFileBytes) + " (1 MiB) are accepted");
  int line = 1;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0)
      throw Error(src + ": line " + std::to_string(line) + ": a NUL byte (offset " +
                  std::to_string(i) + "): this is not a text file; a job file is YAML text");
    size_t n = Utf8SequenceLength(text, i);
    if (n == 0)
      throw Error(src + ": line " + std::to_string(line) + ": invalid UTF-8 at byte offset " +
                  std::to_string(i) + "; save the job file as UTF-8 text");
    if (c == '\n') ++line;
    i += n;
  }
}

// yaml-cpp keeps the first of two equal keys and drops the second silently; a job file with both
// almost always means an edit that did not take effect.
void CheckDuplicateKeys(const YAML::Node& node, const std::string& path, const ParseContext& ctx) {
  if (node.IsMap()) {
    std::map<std::string, int> seen;
    for (const auto& kv : node) {
      std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
      std::string key = path.empty() ? k : path + "." + k;
      if (kv.first.IsScalar()) {
        auto [it, fresh] = seen.emplace(k, kv.first.Mark().line + 1);
        if (!fresh)
          ctx.Fail(key, "duplicate key (first at line " + std::to_string(it->second) + ")",
                   &kv.first);
      }
      CheckDuplicateKeys(kv.second, key, ctx);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      CheckDuplicateKeys(node[i], path + "[" + std::to_string(i) + "]", ctx);
  }
}

void EmitPaths(YAML::Emitter& e, const std::vector<fs::path>& paths) {
  e << YAML::Flow << YAML::BeginSeq;
  for (const auto& p : paths) e << p.string();
  e << YAML::EndSeq;
}

}  // namespace

JobSpec ParseJobSpec(std::string_view yaml_text, const fs::path& base_dir,
                     std::string_view source) {
  ParseContext ctx{std::string(source), base_dir.empty() ? fs::current_path() : base_dir};
  if (ctx.base_dir.is_relative()) ctx.base_dir = fs::absolute(ctx.base_dir);
  CheckJobTextImpl(yaml_text, source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    throw Error(std::string(source) + ": not valid YAML: line " + std::to_string(e.mark.line + 1) +
                ": " + e.msg);
  }
  try {
    CheckDuplicateKeys(root, "", ctx);
    return ParseRoot(root, ctx);
  } catch (const YAML::Exception& e) {
    throw Error(std::string(source) + ": " + e.what());
  }
}

void CheckJobText(std::string_view text, std::string_view source) {
  CheckJobTextImpl(text, source);
}

JobSpec LoadJobSpec(const fs::path& file) {
  if (!fs::exists(file)) throw Error(file.string() + ": job file not found");
  fs::path abs = fs::absolute(file);
  return ParseJobSpec(ReadRegularFileBounded(abs, kMaxJobFileBytes, "job file"), abs.parent_path(),
                      file.string());
}

namespace {

// A double in the fewest significant digits that read back as the same value ("0.1", not
// "0.10000000000000001"), so the canonical YAML shows what the user wrote.
struct Shortest {
  double v;
};

YAML::Emitter& operator<<(YAML::Emitter& e, Shortest s) {
  int p = 1;
  char buf[64];
  for (; p < 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, s.v);
    if (std::strtod(buf, nullptr) == s.v) break;
  }
  return e << YAML::DoublePrecision(p) << s.v;
}

template <class E>
std::string Spelling(E value) {
  return std::string(ChoiceName(value));
}
}  // namespace

std::string JobSpecToYaml(const JobSpec& s) {
  const auto& allowed = MethodKeys().at(s.method.name);
  auto uses = [&](const char* k) { return allowed.count(k) > 0; };
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << s.name;
  e << YAML::Key << "model" << YAML::Value << s.model.string();
  e << YAML::Key << "pattern" << YAML::Value << YAML::DoubleQuoted << s.pattern.ToString();
  e << YAML::Key << "seed" << YAML::Value << s.seed;
  e << YAML::Key << "device" << YAML::Value << Spelling(s.device);
  e << YAML::Key << "dtype" << YAML::Value << Spelling(s.dtype);
  const MethodSpec& m = s.method;
  e << YAML::Key << "method" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << m.name;
  if (uses("lambda1")) {
    e << YAML::Key << "lambda1" << YAML::Value << Shortest{m.lambda1};
    e << YAML::Key << "lambda2" << YAML::Value << Shortest{m.lambda2};
    e << YAML::Key << "epsilon" << YAML::Value << Shortest{m.epsilon};
  }
  if (uses("lr")) {
    e << YAML::Key << "lr" << YAML::Value << Shortest{m.lr};
    e << YAML::Key << "warmup_ratio" << YAML::Value << Shortest{m.warmup_ratio};
    e << YAML::Key << "epochs" << YAML::Value << m.epochs;
    e << YAML::Key << "max_steps" << YAML::Value << m.max_steps;
    e << YAML::Key << "batch_size" << YAML::Value << m.batch_size;
    e << YAML::Key << "grad_accum" << YAML::Value << m.grad_accum;
    // Only when on: a performance switch with identical results, so jobs written before it
    // existed keep their canonical form (and hash).
    if (m.overlap_update) e << YAML::Key << "overlap_update" << YAML::Value << true;
  }
  if (uses("trainable")) e << YAML::Key << "trainable" << YAML::Value << Spelling(m.trainable);
  if (uses("master_dtype"))
    e << YAML::Key << "master_dtype" << YAML::Value << Spelling(m.master_dtype);
  if (uses("hard")) e << YAML::Key << "hard" << YAML::Value << Spelling(m.hard);
  if (uses("blocksize")) {
    e << YAML::Key << "blocksize" << YAML::Value << m.blocksize;
    e << YAML::Key << "percdamp" << YAML::Value << Shortest{m.percdamp};
  }
  if (uses("tau")) {
    e << YAML::Key << "tau" << YAML::Value << YAML::Flow << YAML::BeginSeq << Shortest{m.tau[0]}
      << Shortest{m.tau[1]} << YAML::EndSeq;
    e << YAML::Key << "kappa" << YAML::Value << YAML::Flow << YAML::BeginSeq << Shortest{m.kappa[0]}
      << Shortest{m.kappa[1]} << YAML::EndSeq;
    e << YAML::Key << "prior" << YAML::Value << m.prior;
    e << YAML::Key << "prior_alpha" << YAML::Value << Shortest{m.prior_alpha};
    e << YAML::Key << "sparse_reg" << YAML::Value << Shortest{m.sparse_reg};
  }
  e << YAML::EndMap;
  e << YAML::Key << "masked_update" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "steps" << YAML::Value << s.masked_update.steps;
  e << YAML::Key << "lr" << YAML::Value << Shortest{s.masked_update.lr};
  e << YAML::EndMap;
  // Only when on, so that jobs written before the key existed keep their canonical form and hash.
  if (s.reconstruct != "none") e << YAML::Key << "reconstruct" << YAML::Value << s.reconstruct;
  e << YAML::Key << "calibration" << YAML::Value << YAML::BeginMap;
  if (!s.calibration.path.empty())
    e << YAML::Key << "path" << YAML::Value << s.calibration.path.string();
  e << YAML::Key << "format" << YAML::Value << s.calibration.format;
  e << YAML::Key << "samples" << YAML::Value << s.calibration.samples;
  e << YAML::Key << "seqlen" << YAML::Value << s.calibration.seqlen;
  e << YAML::Key << "sampling" << YAML::Value << s.calibration.sampling;
  e << YAML::EndMap;
  e << YAML::Key << "evaluation" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "ppl" << YAML::Value;
  EmitPaths(e, s.evaluation.ppl);
  e << YAML::Key << "ctx" << YAML::Value << s.evaluation.ctx;
  e << YAML::Key << "max_windows" << YAML::Value << s.evaluation.max_windows;
  e << YAML::Key << "tasks" << YAML::Value;
  EmitPaths(e, s.evaluation.tasks);
  if (!s.evaluation.baselines.empty()) {  // only when set (canonical form and hash unchanged)
    e << YAML::Key << "baselines" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& b : s.evaluation.baselines) e << b;
    e << YAML::EndSeq;
  }
  e << YAML::EndMap;
  if (!s.output.empty()) e << YAML::Key << "output" << YAML::Value << s.output.string();
  // Only when not the default, so that jobs written before the key existed keep their hash.
  if (s.publish != JobSpec::DefaultPublish(s.pattern)) {
    e << YAML::Key << "publish" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& p : s.publish) e << p;
    e << YAML::EndSeq;
  }
  e << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "every_steps" << YAML::Value << s.checkpoint.every_steps;
  e << YAML::EndMap;
  e << YAML::Key << "log_every" << YAML::Value << s.log_every;
  e << YAML::Key << "resources" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "ranks" << YAML::Value << s.resources.ranks;
  e << YAML::Key << "gpus_per_rank" << YAML::Value << s.resources.gpus_per_rank;
  e << YAML::Key << "cpus_per_rank" << YAML::Value << s.resources.cpus_per_rank;
  e << YAML::Key << "memory_gb" << YAML::Value << Shortest{s.resources.memory_gb};
  e << YAML::Key << "time_limit_minutes" << YAML::Value << s.resources.time_limit_minutes;
  e << YAML::EndMap;
  if (!s.parallel.IsDefault()) {  // absent by default: earlier job files keep their hashes
    e << YAML::Key << "parallel" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "shard" << YAML::Value << s.parallel.shard;
    e << YAML::Key << "activation_checkpointing" << YAML::Value
      << s.parallel.activation_checkpointing;
    e << YAML::Key << "offload" << YAML::Value << s.parallel.offload;
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
  if (!e.good()) throw Error(std::string("cannot write the job spec as YAML: ") + e.GetLastError());
  return std::string(e.c_str()) + "\n";
}

std::string JobSpecHash(const JobSpec& spec) {
  std::string y = JobSpecToYaml(spec);
  return Sha256Hex(std::as_bytes(std::span<const char>(y.data(), y.size())));
}

namespace {

// Inputs are regular files: a FIFO would block the reader and a device such as /dev/zero would
// never end (bounded_read.h).
void CheckReadable(const fs::path& p, const std::string& key) { CheckRegularFile(p, key); }

}  // namespace

void CheckJobInputs(const JobSpec& s) {
  if (!fs::is_directory(s.model))
    throw Error("model: " + s.model.string() +
                " is not a directory (a Hugging Face model "
                "directory with config.json and *.safetensors)");
  fs::path cfg = s.model / "config.json";
  CheckReadable(cfg, "model");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ReadRegularFileBounded(cfg, kMaxMetadataBytes, "model"));
  } catch (const nlohmann::json::exception& e) {
    throw Error("model: " + cfg.string() + " is not valid JSON: " + e.what());
  }
  bool has_weights = false;
  for (const auto& entry : fs::directory_iterator(s.model))
    if (entry.path().extension() == ".safetensors") has_weights = true;
  if (!has_weights) throw Error("model: no *.safetensors file in " + s.model.string());
  // Targets are q/k/v/o/gate/up/down: their input dimensions are hidden_size, the attention
  // width (heads * head_dim) and intermediate_size; each must split into groups of M.
  auto dim = [&](const char* k) -> int64_t {
    if (!j.contains(k)) return -1;
    if (!j[k].is_number_integer() || j[k].get<int64_t>() <= 0)
      throw Error("model: " + cfg.string() + ": " + k + " must be a positive integer");
    return j[k].get<int64_t>();
  };
  int64_t hidden = dim("hidden_size");
  if (hidden < 0) throw Error("model: " + cfg.string() + " has no hidden_size");
  std::vector<std::pair<std::string, int64_t>> dims = {
      {"hidden_size", hidden}, {"intermediate_size", dim("intermediate_size")}};
  int64_t heads = dim("num_attention_heads");
  int64_t head_dim = dim("head_dim");
  if (heads > 0 && head_dim > 0) dims.push_back({"num_attention_heads*head_dim", heads * head_dim});
  for (const auto& [k, v] : dims)
    if (v > 0 && v % s.pattern.m != 0)
      throw Error("pattern: " + k + " = " + std::to_string(v) + " of " + cfg.string() +
                  " is not a multiple of M = " + std::to_string(s.pattern.m));
  if (!s.calibration.path.empty()) CheckReadable(s.calibration.path, "calibration.path");
  for (size_t i = 0; i < s.evaluation.ppl.size(); ++i)
    CheckReadable(s.evaluation.ppl[i], "evaluation.ppl[" + std::to_string(i) + "]");
  for (size_t i = 0; i < s.evaluation.tasks.size(); ++i)
    CheckReadable(s.evaluation.tasks[i], "evaluation.tasks[" + std::to_string(i) + "]");
}

std::string CalibrationNeed(const JobSpec& s) {
  // The methods that read data (method registry), the masked update, reconstruction and the
  // baselines that read data.
  if (GetMethod(s.method.name).needs_calibration) return "method " + s.method.name;
  if (s.masked_update.steps > 0) return "masked_update";
  if (s.reconstruct != "none") return "reconstruct: " + s.reconstruct;
  for (const auto& b : s.evaluation.baselines)
    if (GetMethod(b).needs_calibration) return "evaluation.baselines: " + b;
  return "";
}

bool MethodSpec::Trains() const {
  const MethodInfo* m = FindMethod(name);
  return m && m->trains;
}

bool operator==(const MethodSpec& a, const MethodSpec& b) {
  return a.name == b.name && a.lr == b.lr && a.warmup_ratio == b.warmup_ratio &&
         a.epochs == b.epochs && a.max_steps == b.max_steps && a.batch_size == b.batch_size &&
         a.grad_accum == b.grad_accum && a.master_dtype == b.master_dtype &&
         a.overlap_update == b.overlap_update && a.lambda1 == b.lambda1 && a.lambda2 == b.lambda2 &&
         a.epsilon == b.epsilon && a.trainable == b.trainable && a.hard == b.hard &&
         a.blocksize == b.blocksize && a.percdamp == b.percdamp && a.tau == b.tau &&
         a.kappa == b.kappa && a.prior == b.prior && a.prior_alpha == b.prior_alpha &&
         a.sparse_reg == b.sparse_reg;
}

bool operator==(const JobSpec& a, const JobSpec& b) {
  auto tie = [](const JobSpec& s) {
    return std::tie(s.name, s.model, s.pattern, s.seed, s.device, s.dtype, s.masked_update.steps,
                    s.masked_update.lr, s.reconstruct, s.calibration.path, s.calibration.format,
                    s.calibration.samples, s.calibration.seqlen, s.calibration.sampling,
                    s.evaluation.ppl, s.evaluation.ctx, s.evaluation.max_windows,
                    s.evaluation.tasks, s.evaluation.baselines, s.output, s.publish,
                    s.checkpoint.every_steps, s.log_every, s.resources.ranks,
                    s.resources.gpus_per_rank, s.resources.cpus_per_rank, s.resources.memory_gb,
                    s.resources.time_limit_minutes, s.parallel.shard,
                    s.parallel.activation_checkpointing, s.parallel.offload);
  };
  return a.method == b.method && tie(a) == tie(b);
}

}  // namespace ps
