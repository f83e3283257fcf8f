#include "worker/eval/tasks.h"

#include <cctype>
#include <fstream>

#include "common/error.h"

namespace ps {
namespace {

using json = nlohmann::json;

std::string Str(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    throw Error(where + ": '" + key + "' must be a string");
  }
  return it->get<std::string>();
}

const json& Field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(where + ": missing '" + key + "'");
  return *it;
}

std::vector<std::string> StrList(const json& j, const std::string& what, const std::string& where) {
  if (!j.is_array() || j.empty()) throw Error(where + ": '" + what + "' must be a non-empty list");
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) throw Error(where + ": '" + what + "' must hold strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

// An integer label, also accepted as a numeric string ("2") or a bool (BoolQ).
int64_t Label(const json& v, const std::string& where) {
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    try {
      size_t used = 0;
      int64_t n = std::stoll(v.get<std::string>(), &used);
      if (used == v.get<std::string>().size()) return n;
    } catch (const std::exception&) {
    }
  }
  throw Error(where + ": label " + v.dump() + " is not an integer");
}

// Same context for every choice, delimiter in front of each choice.
McItem Standard(const std::string& context, const std::vector<std::string>& choices, int64_t label,
                const std::string& delimiter = " ") {
  McItem item;
  for (const auto& c : choices) {
    item.contexts.push_back(context);
    item.continuations.push_back(delimiter + c);
    item.norm_texts.push_back(c);
  }
  item.label = label;
  return item;
}

// ARC / OpenBookQA choices in either layout: HF {"text": [...], "label": [...]} or AI2's
// [{"text": ..., "label": ...}, ...]; the answer is the index of answerKey among the labels.
std::pair<std::vector<std::string>, int64_t> LetteredChoices(const json& choices,
                                                             const std::string& answer,
                                                             const std::string& where) {
  std::vector<std::string> texts, labels;
  if (choices.is_object()) {
    texts = StrList(Field(choices, "text", where), "choices.text", where);
    labels = StrList(Field(choices, "label", where), "choices.label", where);
  } else if (choices.is_array()) {
    for (const auto& c : choices) {
      texts.push_back(Str(c, "text", where));
      labels.push_back(Str(c, "label", where));
    }
  } else {
    throw Error(where + ": 'choices' must be an object or a list");
  }
  if (texts.size() != labels.size() || texts.empty()) {
    throw Error(where + ": choices.text and choices.label differ in length");
  }
  std::string key = answer;
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == key) return {texts, static_cast<int64_t>(i)};
  }
  throw Error(where + ": answerKey '" + answer + "' is not among the choice labels");
}

// ARC/OBQA question text and choices from either layout.
void QuestionAndChoices(const json& j, const char* flat_key, std::string* question,
                        const json** choices, const std::string& where) {
  const json& q = Field(j, j.contains(flat_key) ? flat_key : "question", where);
  if (q.is_object()) {  // AI2 layout: {"question": {"stem": ..., "choices": [...]}}
    *question = Str(q, "stem", where);
    *choices = &Field(q, "choices", where);
  } else {
    *question = Str(j, j.contains(flat_key) ? flat_key : "question", where);
    *choices = &Field(j, "choices", where);
  }
}

McItem FromArc(const json& j, const std::string& where) {
  std::string question;
  const json* choices = nullptr;
  QuestionAndChoices(j, "question", &question, &choices, where);
  auto [texts, label] = LetteredChoices(*choices, Str(j, "answerKey", where), where);
  return Standard("Question: " + question + "\nAnswer:", texts, label);
}

McItem FromOpenBookQA(const json& j, const std::string& where) {
  std::string question;
  const json* choices = nullptr;
  QuestionAndChoices(j, "question_stem", &question, &choices, where);
  auto [texts, label] = LetteredChoices(*choices, Str(j, "answerKey", where), where);
  return Standard(question, texts, label);
}

McItem FromPiqa(const json& j, const std::string& where) {
  return Standard("Question: " + Str(j, "goal", where) + "\nAnswer:",
                  {Str(j, "sol1", where), Str(j, "sol2", where)},
                  Label(Field(j, "label", where), where));
}

// lm-eval's hellaswag preprocess(): strip, " [title]" -> ". ", drop [bracketed] bits, "  " -> " ".
std::string HellaSwagClean(std::string t) {
  size_t b = t.find_first_not_of(" \t\n\r\f\v");
  size_t e = t.find_last_not_of(" \t\n\r\f\v");
  t = b == std::string::npos ? "" : t.substr(b, e - b + 1);
  for (size_t p; (p = t.find(" [title]")) != std::string::npos;) t.replace(p, 8, ". ");
  // re.sub(r"\[.*?\]", "", t): '.' does not cross newlines.
  std::string out;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '[') {
      size_t close = t.find(']', i + 1);
      size_t nl = t.find('\n', i + 1);
      if (close != std::string::npos && (nl == std::string::npos || nl > close)) {
        i = close + 1;
        continue;
      }
    }
    out += t[i++];
  }
  // str.replace("  ", " ") replaces non-overlapping pairs left to right, once.
  std::string res;
  for (size_t i = 0; i < out.size(); ++i) {
    res += out[i];
    if (out[i] == ' ' && i + 1 < out.size() && out[i + 1] == ' ') ++i;
  }
  return res;
}

// Python's str.capitalize() for ASCII: first letter upper, the rest lower.
std::string Capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    s[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return s;
}

McItem FromHellaSwag(const json& j, const std::string& where) {
  std::string ctx = Str(j, "ctx_a", where) + " " + Capitalize(Str(j, "ctx_b", where));
  std::string query = HellaSwagClean(Str(j, "activity_label", where) + ": " + ctx);
  std::vector<std::string> endings;
  for (const auto& e : StrList(Field(j, "endings", where), "endings", where)) {
    endings.push_back(HellaSwagClean(e));
  }
  return Standard(query, endings, Label(Field(j, "label", where), where));
}

// WinoGrande (lm-eval's partial scoring): the blank is filled with each option in the context;
// the continuation (the rest of the sentence) is the same for both and is what gets scored.
McItem FromWinoGrande(const json& j, const std::string& where) {
  std::string sentence = Str(j, "sentence", where);
  size_t blank = sentence.find('_');
  if (blank == std::string::npos) throw Error(where + ": sentence has no '_' blank");
  std::string rest = sentence.substr(blank + 1);
  size_t b = rest.find_first_not_of(" \t\n\r\f\v");
  size_t e = rest.find_last_not_of(" \t\n\r\f\v");
  rest = b == std::string::npos ? "" : rest.substr(b, e - b + 1);
  McItem item;
  for (const char* key : {"option1", "option2"}) {
    item.contexts.push_back(sentence.substr(0, blank) + Str(j, key, where));
    item.continuations.push_back(" " + rest);
    item.norm_texts.push_back(rest);
  }
  item.label = Label(Field(j, "answer", where), where) - 1;
  return item;
}

McItem FromBoolQ(const json& j, const std::string& where) {
  const json& ans = j.contains("label") ? j["label"] : Field(j, "answer", where);
  return Standard(
      Str(j, "passage", where) + "\nQuestion: " + Str(j, "question", where) + "?\nAnswer:",
      {"no", "yes"}, Label(ans, where));
}

McItem FromNative(const json& j, const std::string& where) {
  std::string delim = j.contains("delimiter") ? Str(j, "delimiter", where) : " ";
  int64_t label = Label(Field(j, "label", where), where);
  if (j.contains("contexts")) {
    auto contexts = StrList(j["contexts"], "contexts", where);
    std::string cont = Str(j, "continuation", where);
    McItem item;
    for (const auto& c : contexts) {
      item.contexts.push_back(c);
      item.continuations.push_back(delim + cont);
      item.norm_texts.push_back(cont);
    }
    item.label = label;
    return item;
  }
  return Standard(Str(j, "context", where), StrList(Field(j, "choices", where), "choices", where),
                  label, delim);
}

TaskFormat Detect(const json& j, const std::string& where) {
  if (j.contains("context") || j.contains("contexts")) return TaskFormat::kNative;
  if (j.contains("question_stem")) return TaskFormat::kOpenBookQA;
  if (j.contains("goal") && j.contains("sol1")) return TaskFormat::kPiqa;
  if (j.contains("endings") && j.contains("ctx_a")) return TaskFormat::kHellaSwag;
  if (j.contains("option1") && j.contains("sentence")) return TaskFormat::kWinoGrande;
  if (j.contains("passage") && j.contains("question")) return TaskFormat::kBoolQ;
  if (j.contains("question") && j.contains("answerKey")) return TaskFormat::kArc;
  throw Error(where + ": unrecognised task layout (keys: " + [&] {
    std::string keys;
    for (auto& [k, v] : j.items()) keys += (keys.empty() ? "" : ", ") + k;
    return keys;
  }() + "); see docs/eval.md");
}

std::pair<TaskFormat, std::string> SplitSpec(const std::string& spec) {
  size_t colon = spec.find(':');
  if (colon != std::string::npos) {
    if (auto f = ParseTaskFormat(spec.substr(0, colon))) return {*f, spec.substr(colon + 1)};
  }
  return {TaskFormat::kAuto, spec};
}

}  // namespace

std::optional<TaskFormat> ParseTaskFormat(const std::string& name) {
  if (name == "native") return TaskFormat::kNative;
  if (name == "arc" || name == "arc_easy" || name == "arc_challenge") return TaskFormat::kArc;
  if (name == "piqa") return TaskFormat::kPiqa;
  if (name == "hellaswag") return TaskFormat::kHellaSwag;
  if (name == "winogrande") return TaskFormat::kWinoGrande;
  if (name == "openbookqa") return TaskFormat::kOpenBookQA;
  if (name == "boolq") return TaskFormat::kBoolQ;
  return std::nullopt;
}

McItem ParseTaskItem(const json& j, TaskFormat format, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": each line must be a JSON object");
  if (format == TaskFormat::kAuto) format = Detect(j, where);
  McItem item;
  switch (format) {
    case TaskFormat::kAuto:
    case TaskFormat::kNative:
      item = FromNative(j, where);
      break;
    case TaskFormat::kArc:
      item = FromArc(j, where);
      break;
    case TaskFormat::kPiqa:
      item = FromPiqa(j, where);
      break;
    case TaskFormat::kHellaSwag:
      item = FromHellaSwag(j, where);
      break;
    case TaskFormat::kWinoGrande:
      item = FromWinoGrande(j, where);
      break;
    case TaskFormat::kOpenBookQA:
      item = FromOpenBookQA(j, where);
      break;
    case TaskFormat::kBoolQ:
      item = FromBoolQ(j, where);
      break;
  }
  if (item.label < 0 || item.label >= static_cast<int64_t>(item.contexts.size())) {
    throw Error(where + ": label " + std::to_string(item.label) + " is out of range for " +
                std::to_string(item.contexts.size()) + " choices");
  }
  return item;
}

std::vector<McItem> LoadTaskFile(const std::string& spec) {
  auto [format, file] = SplitSpec(spec);
  std::ifstream in(file);
  if (!in) throw Error(file + ": cannot open task file");
  std::vector<McItem> items;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = file + ":" + std::to_string(n);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      throw Error(where + ": not valid JSON: " + e.what());
    }
    items.push_back(ParseTaskItem(j, format, where));
  }
  if (items.empty()) throw Error(file + ": no task items");
  return items;
}

std::string TaskName(const std::string& spec) {
  return std::filesystem::path(SplitSpec(spec).second).stem().string();
}

json ToNativeJson(const McItem& item) {
  bool same_context = true;
  for (const auto& c : item.contexts) same_context = same_context && c == item.contexts[0];
  // Recover the delimiter: continuation = delimiter + norm_text.
  const std::string& c0 = item.continuations[0];
  std::string delim = c0.substr(0, c0.size() - item.norm_texts[0].size());
  if (same_context) {
    return {{"context", item.contexts[0]},
            {"choices", item.norm_texts},
            {"label", item.label},
            {"delimiter", delim}};
  }
  return {{"contexts", item.contexts},
          {"continuation", item.norm_texts[0]},
          {"label", item.label},
          {"delimiter", delim}};
}

}  // namespace ps
