// psctl's YAML output: block style, and every scalar reads back as what it was.
#include "client/psctl_format.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace ps {
namespace {

using oj = nlohmann::ordered_json;

TEST(PsctlYaml, QuotesWhatWouldReadBackAsSomethingElse) {
  for (const char* s :
       {"2:4",        "1:2:3",  "124",   "1e3",   ".5",   ".inf", ".NaN", "yes",   "No",
        "on",         "OFF",    "y",     "n",     "null", "~",    "true", "False", "",
        " lead",      "trail ", "a: b",  "#x",    "-x",   "- x",  "[a]",  "{a}",   "*a",
        "&a",         "!a",     "|",     ">",     "%",    "@",    "`",    "'q'",   "\"q\"",
        "2026-12-07", "0x1F",   "1_000", "a#b c", "x\ty"})
    EXPECT_FALSE(IsPlainYamlSafe(s)) << "'" << s << "'";
  for (const char* s : {"proxsparse", "JOB_STATE_SUCCEEDED", "/tmp/a-b/c.safetensors", "local",
                        "fp32", "code-eval.txt", "evaluate dense a.txt", "j000001"})
    EXPECT_TRUE(IsPlainYamlSafe(s)) << s;
}

TEST(PsctlYaml, BlockStyleRoundTrips) {
  oj j = oj::parse(R"({
    "id": "j000001", "pattern": "2:4", "step": "120", "ratio": 0.1, "n": 3, "ok": true,
    "none": null, "empty_map": {}, "empty_list": [], "yes": "yes",
    "spec_yaml": "name: a\nmethod:\n  name: proxsparse\n",
    "odd": "line one \nline two", "tab": "a\tb",
    "list": [{"a": 1, "b": {"c": "2:4"}}, "x", [1, 2], []],
    "nested": {"deep": {"deeper": [1.5, "1.5"]}}, "small": 1e-05, "big": 1e+20
  })");
  std::string y = JsonToYaml(j);
  EXPECT_NE(y.find("pattern: \"2:4\"\n"), std::string::npos) << y;
  EXPECT_NE(y.find("spec_yaml: |\n  name: a\n  method:\n    name: proxsparse\n"), std::string::npos)
      << y;
  EXPECT_NE(y.find("list:\n- a: 1\n  b:\n    c: \"2:4\"\n- x\n"), std::string::npos) << y;
  EXPECT_EQ(y.find('{'), y.find("{}")) << y;  // no flow maps but the empty one
  YAML::Node n = YAML::Load(y);
  EXPECT_EQ(n["pattern"].as<std::string>(), "2:4");
  EXPECT_EQ(n["pattern"].Tag(), "!");  // quoted
  EXPECT_EQ(n["step"].as<std::string>(), "120");
  EXPECT_EQ(n["step"].Tag(), "!");
  EXPECT_EQ(n["ratio"].as<double>(), 0.1);
  EXPECT_EQ(n["ok"].as<bool>(), true);
  EXPECT_TRUE(n["none"].IsNull());
  EXPECT_TRUE(n["empty_map"].IsMap());
  EXPECT_EQ(n["empty_map"].size(), 0u);
  EXPECT_TRUE(n["empty_list"].IsSequence());
  EXPECT_EQ(n["yes"].as<std::string>(), "yes");
  EXPECT_EQ(n["yes"].Tag(), "!");
  EXPECT_EQ(n["spec_yaml"].as<std::string>(), j["spec_yaml"].get<std::string>());
  EXPECT_EQ(n["odd"].as<std::string>(), j["odd"].get<std::string>());
  EXPECT_EQ(n["tab"].as<std::string>(), "a\tb");
  EXPECT_EQ(n["list"][0]["b"]["c"].as<std::string>(), "2:4");
  EXPECT_EQ(n["list"][1].as<std::string>(), "x");
  EXPECT_EQ(n["list"][2][1].as<int>(), 2);
  EXPECT_EQ(n["list"][3].size(), 0u);
  EXPECT_EQ(n["nested"]["deep"]["deeper"][0].as<double>(), 1.5);
  EXPECT_EQ(n["nested"]["deep"]["deeper"][1].Tag(), "!");
  // Exponent floats keep a '.' so that YAML 1.1 readers see a float.
  EXPECT_NE(y.find("small: 1.0e-05\n"), std::string::npos) << y;
  EXPECT_NE(y.find("big: 1.0e+20\n"), std::string::npos) << y;
  EXPECT_EQ(n["small"].as<double>(), 1e-05);
}

}  // namespace
}  // namespace ps
