// Zero-shot multiple-choice tasks: the project's JSON-lines format and loaders for the layouts the
// common benchmarks are distributed in (ARC, PIQA, HellaSwag, WinoGrande, OpenBookQA, BoolQ),
// each turned into the same requests lm-evaluation-harness makes (docs/eval.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ps {

// One question: for each choice a (context, continuation) pair to score, and the text whose
// length normalises acc_norm (lm-eval: the choice without the delimiter).
struct McItem {
  std::vector<std::string> contexts;       // one per choice
  std::vector<std::string> continuations;  // one per choice, delimiter included
  std::vector<std::string> norm_texts;     // one per choice
  int64_t label = 0;
};

enum class TaskFormat { kAuto, kNative, kArc, kPiqa, kHellaSwag, kWinoGrande, kOpenBookQA, kBoolQ };

// "native", "arc" (also arc_easy, arc_challenge), "piqa", "hellaswag", "winogrande",
// "openbookqa", "boolq"; nullopt otherwise.
std::optional<TaskFormat> ParseTaskFormat(const std::string& name);

// Converts one JSON line. kAuto picks the layout from the keys present (docs/eval.md).
// `where` (file:line) prefixes error messages.
McItem ParseTaskItem(const nlohmann::json& j, TaskFormat format, const std::string& where);

// A task spec is FILE or FORMAT:FILE (e.g. "openbookqa:obqa.jsonl"); blank lines are skipped.
std::vector<McItem> LoadTaskFile(const std::string& spec);
// The task's name in results: the file's stem.
std::string TaskName(const std::string& spec);

// The native JSON line for an item (what `pstool eval --convert-task` writes).
nlohmann::json ToNativeJson(const McItem& item);

}  // namespace ps
