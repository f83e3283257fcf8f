#include "common/progress.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/result_summary.h"

namespace ps {
namespace {

bool Known(double v) { return !std::isnan(v); }

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Compact(double v) {
  char buf[64];
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace

std::string FormatDuration(double s) {
  if (!Known(s) || s < 0) return "?";
  auto t = static_cast<int64_t>(std::llround(s));
  char buf[64];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600),
                  static_cast<long long>((t % 3600) / 60));
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
  return buf;
}

std::string FormatProgressLine(const ProgressEvent& e, int width, std::string_view pattern) {
  std::string out;
  if (!e.stage.empty()) out += e.stage + " ";
  out += (e.unit.empty() ? std::string("step") : e.unit) + " " + std::to_string(e.step);
  if (e.total_steps > 0) {
    out += "/" + std::to_string(e.total_steps);
    double frac =
        std::clamp(static_cast<double>(e.step) / static_cast<double>(e.total_steps), 0.0, 1.0);
    if (width > 0) {
      int filled = static_cast<int>(frac * width);
      out += " [";
      for (int i = 0; i < width; ++i) out += i < filled ? '=' : (i == filled ? '>' : ' ');
      out += "]";
    }
    out += " " + std::to_string(static_cast<int>(frac * 100)) + "%";
  }
  if (Known(e.loss)) out += " loss " + Fixed(e.loss, 4);
  if (Known(e.nm_ratio)) out += " " + std::string(pattern) + " " + Fixed(e.nm_ratio * 100, 1) + "%";
  if (e.mask_flips >= 0) out += " flips " + std::to_string(e.mask_flips);
  if (e.prox_capped_groups > 0) out += " prox-capped " + std::to_string(e.prox_capped_groups);
  if (Known(e.tokens_per_s)) out += " tok/s " + Compact(e.tokens_per_s);
  if (Known(e.eta_s)) out += " ETA " + FormatDuration(e.eta_s);
  return out;
}

std::string ProgressEventToJson(const ProgressEvent& e) {
  nlohmann::json j;
  j["type"] = "progress";
  j["step"] = e.step;
  j["total_steps"] = e.total_steps;
  if (!e.stage.empty()) j["stage"] = e.stage;
  if (!e.unit.empty()) j["unit"] = e.unit;
  auto put = [&](const char* k, double v) {
    if (Known(v)) j[k] = v;
  };
  put("loss", e.loss);
  put("nm_ratio", e.nm_ratio);
  put("mid_ratio", e.mid_ratio);
  put("dense_ratio", e.dense_ratio);
  if (e.mask_flips >= 0) j["mask_flips"] = e.mask_flips;
  if (e.prox_capped_groups >= 0) j["prox_capped_groups"] = e.prox_capped_groups;
  put("lr", e.lr);
  put("tokens_per_s", e.tokens_per_s);
  put("eta_s", e.eta_s);
  if (!e.phase_seconds.empty()) j["phase_seconds"] = e.phase_seconds;
  j["rank"] = e.rank;
  if (e.gpu_mem_bytes >= 0) j["gpu_mem_bytes"] = e.gpu_mem_bytes;
  put("gpu_util", e.gpu_util);
  return j.dump();
}

ProgressEvent ProgressEventFromJson(std::string_view text) {
  ProgressEvent e;
  try {
    auto j = nlohmann::json::parse(text);
    e.step = j.value("step", int64_t{0});
    e.total_steps = j.value("total_steps", int64_t{0});
    e.stage = j.value("stage", std::string());
    e.unit = j.value("unit", std::string());
    auto get = [&](const char* k, double& v) {
      if (j.contains(k)) v = j[k].get<double>();
    };
    get("loss", e.loss);
    get("nm_ratio", e.nm_ratio);
    get("mid_ratio", e.mid_ratio);
    get("dense_ratio", e.dense_ratio);
    e.mask_flips = j.value("mask_flips", int64_t{-1});
    e.prox_capped_groups = j.value("prox_capped_groups", int64_t{-1});
    get("lr", e.lr);
    get("tokens_per_s", e.tokens_per_s);
    get("eta_s", e.eta_s);
    if (j.contains("phase_seconds"))
      e.phase_seconds = j["phase_seconds"].get<std::map<std::string, double>>();
    e.rank = j.value("rank", 0);
    e.gpu_mem_bytes = j.value("gpu_mem_bytes", int64_t{-1});
    get("gpu_util", e.gpu_util);
  } catch (const nlohmann::json::exception& ex) {
    throw Error(std::string("progress event: not valid: ") + ex.what());
  }
  return e;
}

// ---- StderrProgressSink

StderrProgressSink::StderrProgressSink(std::FILE* out, std::string pattern)
    : out_(out), pattern_(std::move(pattern)), tty_(::isatty(fileno(out)) != 0) {}

void StderrProgressSink::EndBar() {
  if (bar_open_) std::fputc('\n', out_);
  bar_open_ = false;
}

void StderrProgressSink::Progress(const ProgressEvent& e) {
  std::lock_guard lock(mu_);
  std::string line = FormatProgressLine(e, tty_ ? 24 : 0, pattern_);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    bar_open_ = true;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void StderrProgressSink::Log(std::string_view line) {
  std::lock_guard lock(mu_);
  EndBar();
  std::fprintf(out_, "%.*s\n", static_cast<int>(line.size()), line.data());
  std::fflush(out_);
}

void StderrProgressSink::Checkpoint(int64_t step, const std::filesystem::path& dir) {
  std::lock_guard lock(mu_);
  EndBar();
  std::fprintf(out_, "checkpoint at step %lld: %s\n", static_cast<long long>(step), dir.c_str());
  std::fflush(out_);
}

void StderrProgressSink::Result(bool ok, std::string_view message,
                                const std::filesystem::path& output_dir) {
  std::lock_guard lock(mu_);
  EndBar();
  std::fprintf(out_, "%s: %.*s%s%s\n", ok ? "done" : "failed", static_cast<int>(message.size()),
               message.data(), output_dir.empty() ? "" : "; outputs in ", output_dir.c_str());
  // What the job achieved, where a user looks first: the end of its output.
  if (ok)
    if (auto summary = SummarizeReportIn(output_dir))
      for (const auto& line : FormatResultLines(*summary)) std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

// ---- JsonLinesProgressSink

JsonLinesProgressSink::JsonLinesProgressSink(const std::filesystem::path& path)
    : f_(std::fopen(path.c_str(), "a")) {
  if (!f_)
    throw Error("cannot open " + path.string() + " for progress events: " + std::strerror(errno));
}

JsonLinesProgressSink::~JsonLinesProgressSink() { std::fclose(f_); }

void JsonLinesProgressSink::Write(const std::string& line) {
  std::lock_guard lock(mu_);
  std::fprintf(f_, "%s\n", line.c_str());
  std::fflush(f_);
}

void JsonLinesProgressSink::Progress(const ProgressEvent& e) { Write(ProgressEventToJson(e)); }

void JsonLinesProgressSink::Log(std::string_view line) {
  Write(nlohmann::json{{"type", "log"}, {"line", std::string(line)}}.dump());
}

void JsonLinesProgressSink::Checkpoint(int64_t step, const std::filesystem::path& dir) {
  Write(nlohmann::json{{"type", "checkpoint"}, {"step", step}, {"dir", dir.string()}}.dump());
}

void JsonLinesProgressSink::Result(bool ok, std::string_view message,
                                   const std::filesystem::path& output_dir) {
  Write(nlohmann::json{{"type", "result"},
                       {"ok", ok},
                       {"message", std::string(message)},
                       {"output_dir", output_dir.string()}}
            .dump());
}

// ---- TeeProgressSink

void TeeProgressSink::Progress(const ProgressEvent& e) {
  for (auto* s : sinks_) s->Progress(e);
}
void TeeProgressSink::Log(std::string_view line) {
  for (auto* s : sinks_) s->Log(line);
}
void TeeProgressSink::Checkpoint(int64_t step, const std::filesystem::path& dir) {
  for (auto* s : sinks_) s->Checkpoint(step, dir);
}
void TeeProgressSink::Result(bool ok, std::string_view message,
                             const std::filesystem::path& output_dir) {
  for (auto* s : sinks_) s->Result(ok, message, output_dir);
}
bool TeeProgressSink::CancelRequested() {
  bool any = false;
  for (auto* s : sinks_) any = s->CancelRequested() || any;
  return any;
}

}  // namespace ps
