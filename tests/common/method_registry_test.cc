// The method registry is the one list of methods and their keys: the parser takes exactly the
// registered keys, the enums round-trip through their spellings, and docs/job-file.md's table of
// method keys says what the registry says.
#include "common/method_registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "common/job_choices.h"
#include "common/job_spec.h"
#include "tests/testing/error_of.h"

namespace ps {
namespace {

std::set<std::string> Set(const std::vector<std::string_view>& v) { return {v.begin(), v.end()}; }

TEST(MethodRegistry, NamesAreUniqueAndFlagsConsistent) {
  std::set<std::string> names;
  for (const auto& m : Methods()) {
    EXPECT_TRUE(names.insert(std::string(m.name)).second) << m.name;
    EXPECT_EQ(FindMethod(m.name), &m);
    // A training method takes every training key; the others take none of them.
    for (auto k : TrainingKeys())
      EXPECT_EQ(std::count(m.keys.begin(), m.keys.end(), k), m.trains ? 1 : 0)
          << m.name << " " << k;
  }
  EXPECT_EQ(FindMethod("prune-everything"), nullptr);
  const std::string e = testing::ErrorOf([] { GetMethod("prune-everything"); });
  EXPECT_NE(e.find("not one of proxsparse | magnitude"), std::string::npos) << e;
  EXPECT_FALSE(GetMethod("magnitude").needs_calibration);
  EXPECT_TRUE(GetMethod("sparsegpt").changes_weights);
  EXPECT_TRUE(GetMethod("proxsparse").trains);
}

// Every registered key parses for its method, and is refused, naming its owner, for the others.
TEST(MethodRegistry, ParserTakesExactlyTheRegisteredKeys) {
  const std::map<std::string, std::string> value = {{"lr", "0.1"},
                                                    {"warmup_ratio", "0.1"},
                                                    {"epochs", "1"},
                                                    {"max_steps", "1"},
                                                    {"batch_size", "1"},
                                                    {"grad_accum", "1"},
                                                    {"master_dtype", "fp32"},
                                                    {"overlap_update", "true"},
                                                    {"lambda1", "1"},
                                                    {"lambda2", "0"},
                                                    {"epsilon", "0.1"},
                                                    {"trainable", "all"},
                                                    {"hard", "snap"},
                                                    {"blocksize", "64"},
                                                    {"percdamp", "0.01"},
                                                    {"tau", "[4, 0.05]"},
                                                    {"kappa", "[100, 500]"},
                                                    {"prior", "wanda"},
                                                    {"prior_alpha", "3"},
                                                    {"sparse_reg", "0"}};
  for (const auto& m : Methods()) {
    for (const auto& other : Methods()) {
      for (auto k : other.keys) {
        const std::string key(k);
        ASSERT_TRUE(value.count(key)) << "no sample value for " << key;
        const std::string yaml = "model: m\nmethod:\n  name: " + std::string(m.name) + "\n  " +
                                 key + ": " + value.at(key) + "\ncalibration: {path: c}\n";
        const std::string e = testing::ErrorOf([&] { ParseJobSpec(yaml, "/j"); });
        const bool mine = std::find(m.keys.begin(), m.keys.end(), k) != m.keys.end();
        if (mine) {
          EXPECT_EQ(e, "") << m.name << " " << key;
        } else {
          EXPECT_NE(e.find("method." + key + ": not a key of method " + std::string(m.name)),
                    std::string::npos)
              << e;
        }
      }
    }
  }
}

TEST(JobChoices, SpellingsRoundTrip) {
  for (auto name : ChoiceNames<HardMode>())
    EXPECT_EQ(ChoiceName(*ParseChoice<HardMode>(name)), name);
  for (auto name : ChoiceNames<Device>()) EXPECT_EQ(ChoiceName(*ParseChoice<Device>(name)), name);
  for (auto name : ChoiceNames<ComputeDType>())
    EXPECT_EQ(ChoiceName(*ParseChoice<ComputeDType>(name)), name);
  for (auto name : ChoiceNames<Trainable>())
    EXPECT_EQ(ChoiceName(*ParseChoice<Trainable>(name)), name);
  EXPECT_FALSE(ParseChoice<HardMode>("Snap").has_value());
  const JobSpec s = ParseJobSpec(
      "model: m\ndevice: cuda\ndtype: bf16\nresources: {gpus_per_rank: 1}\nmethod: {name: "
      "proxsparse, hard: project, trainable: all, master_dtype: bf16}\ncalibration: {path: c}\n",
      "/j");
  EXPECT_EQ(s.device, Device::kCuda);
  EXPECT_EQ(s.dtype, ComputeDType::kBf16);
  EXPECT_EQ(s.method.hard, HardMode::kProject);
  EXPECT_EQ(s.method.trainable, Trainable::kAll);
  EXPECT_EQ(s.method.master_dtype, ComputeDType::kBf16);
}

// docs/job-file.md's table "| method | keys besides `name` |" lists each method's own keys and
// "+ training keys" for the training methods; the line after it lists the training keys.
TEST(MethodRegistry, JobFileDocsListTheRegisteredKeys) {
  std::ifstream in(std::string(PS_SOURCE_DIR) + "/docs/job-file.md");
  ASSERT_TRUE(in) << "docs/job-file.md";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  const std::regex row(R"(\|\s*([a-z, ]+?)\s*\|\s*(.*?)\s*\|)");
  std::map<std::string, std::string> cells;  // method -> keys cell
  std::istringstream lines(doc);
  for (std::string line; std::getline(lines, line);) {
    std::smatch mt;
    if (!std::regex_search(line, mt, row)) continue;
    std::stringstream names(mt[1].str());
    for (std::string n; std::getline(names, n, ',');) {
      n.erase(0, n.find_first_not_of(' '));
      if (FindMethod(n)) cells[n] = mt[2].str();
    }
  }
  const std::regex ticked("`([^`]*)`");
  auto keys_in = [&](const std::string& text) {
    std::set<std::string> keys;
    for (std::sregex_iterator it(text.begin(), text.end(), ticked), end; it != end; ++it) {
      std::stringstream words((*it)[1].str());
      for (std::string w; words >> w;) keys.insert(w);
    }
    return keys;
  };
  for (const auto& m : Methods()) {
    ASSERT_TRUE(cells.count(std::string(m.name))) << m.name << " missing from the docs table";
    const std::string& cell = cells.at(std::string(m.name));
    std::set<std::string> own;
    for (auto k : m.keys)
      if (!Set(TrainingKeys()).count(std::string(k))) own.insert(std::string(k));
    EXPECT_EQ(keys_in(cell), own) << m.name << ": " << cell;
    EXPECT_EQ(cell.find("+ training keys") != std::string::npos, m.trains) << m.name;
  }
  const size_t at = doc.find("Training keys:");
  ASSERT_NE(at, std::string::npos);
  const std::string training = doc.substr(at, doc.find('`', doc.find('`', at) + 1) - at + 1);
  EXPECT_EQ(keys_in(training), Set(TrainingKeys())) << training;
}

}  // namespace
}  // namespace ps
