// Each benchmark layout on hand-written examples, turned into the exact lm-eval requests.
#include "worker/eval/tasks.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/worker/models/tiny_models.h"

namespace ps {
namespace {

using nlohmann::json;

McItem Parse(const std::string& line, TaskFormat f = TaskFormat::kAuto) {
  return ParseTaskItem(json::parse(line), f, "test");
}

TEST(Tasks, NativeFormat) {
  auto item = Parse(R"({"context": "2 + 2 =", "choices": ["4", "5"], "label": 0})");
  EXPECT_EQ(item.contexts, (std::vector<std::string>{"2 + 2 =", "2 + 2 ="}));
  EXPECT_EQ(item.continuations, (std::vector<std::string>{" 4", " 5"}));
  EXPECT_EQ(item.norm_texts, (std::vector<std::string>{"4", "5"}));
  auto partial = Parse(R"({"contexts": ["A cat", "A dog"], "continuation": "barks.", "label": 1,
                           "delimiter": ""})");
  EXPECT_EQ(partial.contexts[1], "A dog");
  EXPECT_EQ(partial.continuations[0], "barks.");
  EXPECT_EQ(partial.label, 1);
}

TEST(Tasks, ArcBothLayouts) {
  auto hf = Parse(R"({"id": "x", "question": "Which is a mammal?",
      "choices": {"text": ["shark", "whale", "trout"], "label": ["A", "B", "C"]}, "answerKey": "B"})");
  EXPECT_EQ(hf.contexts[0], "Question: Which is a mammal?\nAnswer:");
  EXPECT_EQ(hf.continuations[2], " trout");
  EXPECT_EQ(hf.label, 1);
  auto ai2 = Parse(R"({"question": {"stem": "Pick 2", "choices": [{"text": "one", "label": "1"},
      {"text": "two", "label": "2"}]}, "answerKey": "2"})");
  EXPECT_EQ(ai2.contexts[0], "Question: Pick 2\nAnswer:");
  EXPECT_EQ(ai2.label, 1);
}

TEST(Tasks, OpenBookQA) {
  auto item = Parse(R"({"id": "7-980", "question_stem": "The sun is responsible for",
      "choices": {"text": ["puppies", "plants sprouting"], "label": ["A", "B"]}, "answerKey": "B"})");
  EXPECT_EQ(item.contexts[0], "The sun is responsible for");
  EXPECT_EQ(item.continuations[1], " plants sprouting");
  EXPECT_EQ(item.label, 1);
  // The AI2 layout is the same as ARC's, so it needs the format named.
  auto ai2 = Parse(R"({"question": {"stem": "Stem", "choices": [{"text": "a", "label": "A"},
      {"text": "b", "label": "B"}]}, "answerKey": "A"})",
                   TaskFormat::kOpenBookQA);
  EXPECT_EQ(ai2.contexts[0], "Stem");
}

TEST(Tasks, Piqa) {
  auto item = Parse(
      R"({"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0})");
  EXPECT_EQ(item.contexts[0], "Question: Open a jar\nAnswer:");
  EXPECT_EQ(item.continuations[1], " Eat the lid.");
  EXPECT_EQ(item.label, 0);
}

TEST(Tasks, HellaSwagPreprocessing) {
  auto item = Parse(
      R"({"activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow.",
      "ctx_b": "then", "endings": [" [header] The man  stops. ", "he drives [title] away"], "label": "1"})");
  // ctx = ctx_a + " " + ctx_b.capitalize(); then preprocess (strip, [title] -> ". ",
  // drop [..], "  " -> " ").
  EXPECT_EQ(item.contexts[0], "Removing ice from car: Then, the man writes over the snow. Then");
  EXPECT_EQ(item.norm_texts[0], " The man stops.");
  EXPECT_EQ(item.norm_texts[1], "he drives. away");
  EXPECT_EQ(item.label, 1);
  // capitalize() lowers the rest.
  auto lower = Parse(
      R"({"activity_label": "X", "ctx_a": "a.", "ctx_b": "the MAN", "endings": ["e"], "label": 0})");
  EXPECT_EQ(lower.contexts[0], "X: a. The man");
}

TEST(Tasks, WinoGrandePartialScoring) {
  auto item = Parse(
      R"({"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
      "option1": "Sarah", "option2": "Maria", "answer": "1"})");
  EXPECT_EQ(item.contexts[0], "Sarah was a much better surgeon than Maria so Sarah");
  EXPECT_EQ(item.contexts[1], "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(item.continuations[0], " always got the harder cases.");
  EXPECT_EQ(item.continuations[1], item.continuations[0]);
  EXPECT_EQ(item.label, 0);
}

TEST(Tasks, BoolQBothLabelSpellings) {
  auto google =
      Parse(R"({"question": "is the sky blue", "passage": "The sky is blue.", "answer": true})");
  EXPECT_EQ(google.contexts[0], "The sky is blue.\nQuestion: is the sky blue?\nAnswer:");
  EXPECT_EQ(google.continuations, (std::vector<std::string>{" no", " yes"}));
  EXPECT_EQ(google.label, 1);
  auto glue = Parse(R"({"question": "q", "passage": "p", "idx": 0, "label": 0})");
  EXPECT_EQ(glue.label, 0);
}

TEST(Tasks, ErrorsNameTheProblem) {
  auto expect = [](const std::string& line, const std::string& needle) {
    try {
      Parse(line);
      ADD_FAILURE() << "no error for " << line;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect(R"({"context": "c", "choices": ["a"], "label": 3})", "out of range");
  expect(R"({"context": "c", "choices": [], "label": 0})", "non-empty list");
  expect(R"({"foo": 1})", "unrecognised task layout (keys: foo)");
  expect(R"({"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "Z"})",
         "answerKey 'Z'");
  expect(R"({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"})", "no '_'");
  expect(R"({"context": "c", "choices": ["a"], "label": "x"})", "not an integer");
}

TEST(Tasks, FileLoadingWithFormatPrefixAndNativeRoundTrip) {
  auto dir = testing::TempDir("tasks");
  auto f = dir / "piqa_dev.jsonl";
  WriteFileAtomic(f, R"({"goal": "g1", "sol1": "a", "sol2": "b", "label": 1})"
                     "\n\n"
                     R"({"goal": "g2", "sol1": "c", "sol2": "d", "label": 0})"
                     "\n");
  auto items = LoadTaskFile(f.string());
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(TaskName(f.string()), "piqa_dev");
  EXPECT_EQ(TaskName("piqa:" + f.string()), "piqa_dev");
  EXPECT_EQ(LoadTaskFile("piqa:" + f.string()).size(), 2u);
  for (const auto& item : items) {
    auto back = ParseTaskItem(ToNativeJson(item), TaskFormat::kNative, "rt");
    EXPECT_EQ(back.contexts, item.contexts);
    EXPECT_EQ(back.continuations, item.continuations);
    EXPECT_EQ(back.norm_texts, item.norm_texts);
    EXPECT_EQ(back.label, item.label);
  }
  auto wg = ParseTaskItem(
      json::parse(R"({"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "2"})"),
      TaskFormat::kAuto, "wg");
  auto wg_back = ParseTaskItem(ToNativeJson(wg), TaskFormat::kNative, "rt");
  EXPECT_EQ(wg_back.contexts, wg.contexts);
  EXPECT_EQ(wg_back.continuations, wg.continuations);
  WriteFileAtomic(f, "{bad json\n");
  EXPECT_THROW(LoadTaskFile(f.string()), Error);
  EXPECT_THROW(LoadTaskFile((dir / "absent.jsonl").string()), Error);
}

}  // namespace
}  // namespace ps
