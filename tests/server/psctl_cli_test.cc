// psctl's command-line habits against a real psd (fake worker): global options after the verb,
// -o table|wide|json|yaml (the YAML parsed back and compared field by field with the JSON),
// the result summary, --set, --dry-run, version, completion scripts, typos and exit codes.
#include <gtest/gtest.h>
#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "common/file_util.h"
#include "tests/server/service_harness.h"

namespace ps::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Compares a YAML node with the JSON value it should be, field by field. Strings must come back
// as the same string, numbers as the same number, and a scalar that is a string in JSON must be
// quoted in the YAML whenever a YAML 1.1 reader would take it for something else.
void ExpectSame(const YAML::Node& y, const json& j, const std::string& path) {
  SCOPED_TRACE(path);
  if (j.is_object()) {
    ASSERT_TRUE(y.IsMap()) << path;
    EXPECT_EQ(y.size(), j.size()) << path;
    for (const auto& [k, v] : j.items()) {
      ASSERT_TRUE(y[k]) << path << "." << k << " missing";
      ExpectSame(y[k], v, path + "." + k);
    }
  } else if (j.is_array()) {
    ASSERT_TRUE(y.IsSequence()) << path;
    ASSERT_EQ(y.size(), j.size()) << path;
    for (size_t i = 0; i < j.size(); ++i)
      ExpectSame(y[i], j[i], path + "[" + std::to_string(i) + "]");
  } else if (j.is_string()) {
    ASSERT_TRUE(y.IsScalar()) << path;
    EXPECT_EQ(y.as<std::string>(), j.get<std::string>()) << path;
  } else if (j.is_boolean()) {
    EXPECT_EQ(y.as<bool>(), j.get<bool>()) << path;
    EXPECT_EQ(y.Tag(), "?") << path << ": a boolean must be plain";
  } else if (j.is_number()) {
    EXPECT_EQ(y.as<double>(), j.get<double>()) << path;
    EXPECT_EQ(y.Tag(), "?") << path << ": a number must be plain";
  }
}

class PsctlCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    psd_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }
  Psd& StartPsd() {
    psd_ = std::make_unique<Psd>(dir_ / "psd");
    return *psd_;
  }
  // psctl with the arguments exactly as given (no --server in front).
  CmdResult Ctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BinaryPath("client/psctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::Run(argv, {{"PSCTL_CONFIG", (dir_ / "none.yaml").string()}});
  }
  // A finished fake job with the result fields of psworker's report.json.
  std::string FinishedJob(Psd& psd) {
    fs::path job = WriteJob(dir_, "ok",
                            "name: step_s=0.01,rm_ckpt\npattern: \"2:4\"\n"
                            "method: {name: proxsparse, max_steps: 6, lambda1: 0.1}\n"
                            "checkpoint: {every_steps: 2}\n");
    // Flags after the verb, as kubectl takes them.
    CmdResult r = Ctl({"submit", job.string(), "-w", "--server", psd.address()});
    EXPECT_EQ(r.rc, 0) << r.out << r.err;
    last_watch_ = r;
    return r.out.substr(0, r.out.find('\n'));
  }
  fs::path dir_;
  std::unique_ptr<Psd> psd_;
  CmdResult last_watch_;
};

TEST_F(PsctlCliTest, ResultsAndFlagsAfterTheVerb) {
  Psd& psd = StartPsd();
  std::string id = FinishedJob(psd);
  // The end of watch: dense -> pruned per text with the baseline, the published N:M, the time.
  const std::string& out = last_watch_.out;
  EXPECT_NE(out.find("eval.txt: dense 4.50 -> pruned 6.75 (+50.0%), magnitude 12.50"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("published: 87.5% of target groups 2:4 (valid); took 1m32s"),
            std::string::npos)
      << out;
  // The final state is printed once, not also on stderr.
  EXPECT_EQ(last_watch_.err.find("SUCCEEDED"), std::string::npos) << last_watch_.err;

  CmdResult get = Ctl({"get", id, "--server", psd.address()});
  ASSERT_EQ(get.rc, 0) << get.err;
  EXPECT_NE(get.out.find("87.5% of target groups 2:4 in the published model"), std::string::npos)
      << get.out;
  EXPECT_NE(get.out.find("eval.txt: dense 4.50 -> pruned 6.75"), std::string::npos) << get.out;
  // The worker deleted its checkpoints after success: none is shown as current.
  EXPECT_NE(get.out.find("- (removed after success)"), std::string::npos) << get.out;
  EXPECT_EQ(get.out.find("checkpoints/step-"), std::string::npos) << get.out;

  CmdResult list = Ctl({"list", "--server", psd.address()});
  ASSERT_EQ(list.rc, 0) << list.err;
  EXPECT_NE(list.out.find("PPL"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("4.50->6.75 (+50.0%)"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("87.5%"), std::string::npos) << list.out;
  CmdResult wide = Ctl({"list", "-o", "wide", "--server", psd.address()});
  ASSERT_EQ(wide.rc, 0) << wide.err;
  for (const char* col : {"PATTERN", "BASELINES", "TOOK", "LAUNCHER"})
    EXPECT_NE(wide.out.find(col), std::string::npos) << col << "\n" << wide.out;
  EXPECT_NE(wide.out.find("magnitude=12.50"), std::string::npos) << wide.out;

  // Result gauges on /metrics.
  CmdResult m = test::Run({"/usr/bin/curl", "-sf", "http://" + psd.metrics_address() + "/metrics"});
  if (m.rc != 127) {
    ASSERT_EQ(m.rc, 0) << m.err;
    EXPECT_NE(m.out.find("proxsparse_job_pruned_perplexity{job_id=\"" + id +
                         "\",method=\"proxsparse\",text=\"eval.txt\"} 6.75"),
              std::string::npos)
        << m.out;
    EXPECT_NE(m.out.find("proxsparse_job_published_nm_ratio{job_id=\"" + id +
                         "\",method=\"proxsparse\"} 0.875"),
              std::string::npos)
        << m.out;
    EXPECT_NE(m.out.find("proxsparse_job_baseline_perplexity{job_id=\"" + id +
                         "\",baseline=\"magnitude\",text=\"eval.txt\"} 12.5"),
              std::string::npos)
        << m.out;
  }
}

TEST_F(PsctlCliTest, YamlReadsBackAsTheJson) {
  Psd& psd = StartPsd();
  std::string id = FinishedJob(psd);
  for (const std::vector<std::string>& verb :
       {std::vector<std::string>{"get", id}, std::vector<std::string>{"list"}}) {
    std::vector<std::string> as_json = verb, as_yaml = verb;
    for (auto* v : {&as_json, &as_yaml}) v->insert(v->end(), {"--server", psd.address(), "-o"});
    as_json.push_back("json");
    as_yaml.push_back("yaml");
    CmdResult j = Ctl(as_json), y = Ctl(as_yaml);
    ASSERT_EQ(j.rc, 0) << j.err;
    ASSERT_EQ(y.rc, 0) << y.err;
    json expect = json::parse(j.out);
    ExpectSame(YAML::Load(y.out), expect, verb[0]);
    // The pattern is a quoted string, never YAML 1.1's sexagesimal 2:4 = 124.
    EXPECT_NE(y.out.find("pattern: \"2:4\""), std::string::npos) << y.out;
    EXPECT_EQ(y.out.find('{', 0) == 0, false);  // block style, not a JSON flow map
    // A YAML 1.1 reader (PyYAML, part of the test tools) gives back exactly the JSON.
    fs::path yf = dir_ / (verb[0] + ".yaml"), jf = dir_ / (verb[0] + ".json");
    WriteFileAtomic(yf, y.out);
    WriteFileAtomic(jf, j.out);
    CmdResult py = test::Run({"/usr/bin/env", "python3", "-c",
                              "import json,sys,yaml\n"
                              "y = yaml.safe_load(open(sys.argv[1]))\n"
                              "j = json.load(open(sys.argv[2]))\n"
                              "sys.exit(0 if y == j else 1)\n",
                              yf.string(), jf.string()});
    if (py.rc != 127) {
      EXPECT_EQ(py.rc, 0) << py.out << py.err << y.out;
    }
  }
}

TEST_F(PsctlCliTest, SetAndDryRun) {
  Psd& psd = StartPsd();
  fs::path job = WriteJob(dir_, "dry", "name: dry\nmethod: {name: proxsparse, max_steps: 4}\n");
  CmdResult r = Ctl({"submit", job.string(), "--dry-run", "--set", "method.lambda1=0.1", "--set",
                     "seed=7", "--server", psd.address()});
  ASSERT_EQ(r.rc, 0) << r.err;
  // The canonical job: the overrides applied, floats in their shortest form.
  EXPECT_NE(r.out.find("lambda1: 0.1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seed: 7\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("nothing was submitted"), std::string::npos) << r.err;
  CmdResult list = Ctl({"list", "-o", "json", "--server", psd.address()});
  ASSERT_EQ(list.rc, 0) << list.err;
  EXPECT_FALSE(json::parse(list.out).contains("jobs")) << list.out;  // nothing stored

  // Invalid values are refused by psd with the key named, exit code 3.
  r = Ctl({"submit", job.string(), "--dry-run", "--set", "method.lambda1=-1", "--server",
           psd.address()});
  EXPECT_EQ(r.rc, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("method.lambda1"), std::string::npos) << r.err;
  r = Ctl({"submit", job.string(), "--set", "lambda1", "--server", psd.address()});
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("KEY.PATH=VALUE"), std::string::npos) << r.err;
  // -o json of a dry run is the job that would be queued, without an id.
  r = Ctl({"submit", job.string(), "--dry-run", "-o", "json", "--server", psd.address()});
  ASSERT_EQ(r.rc, 0) << r.err;
  json dj = json::parse(r.out);
  EXPECT_FALSE(dj.contains("id"));
  EXPECT_EQ(dj["spec_hash"].get<std::string>().size(), 64u);
  // A real --set submission runs with the override.
  r = Ctl({"submit", job.string(), "--set", "method.max_steps=3", "-w", "--server", psd.address()});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string id = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(psd.GetJob(id)["spec"]["method"]["max_steps"], "3");
}

TEST_F(PsctlCliTest, VersionClientAndServer) {
  Psd& psd = StartPsd();
  CmdResult r = Ctl({"version", "--server", psd.address()});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("Client: psctl "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Server: psd "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("proxsparse.v1"), std::string::npos) << r.out;
  r = Ctl({"version", "-o", "json", "--server", psd.address()});
  ASSERT_EQ(r.rc, 0) << r.err;
  json v = json::parse(r.out);
  EXPECT_EQ(v["client"]["version"], v["server"]["version"]);
  EXPECT_EQ(v["server"]["launcher"], "local");
  r = Ctl({"version", "--client"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("Server:"), std::string::npos) << r.out;
  // No psd there: the client's version, then exit code 5 (unreachable).
  r = Ctl({"version", "--server", "127.0.0.1:" + std::to_string(FreePort()), "--timeout", "2"});
  EXPECT_EQ(r.rc, 5) << r.out << r.err;
  EXPECT_NE(r.out.find("Client: psctl "), std::string::npos) << r.out;
}

TEST_F(PsctlCliTest, CompletionScripts) {
  CmdResult bash = Ctl({"completion", "bash"});
  ASSERT_EQ(bash.rc, 0) << bash.err;
  fs::path script = dir_ / "psctl.bash";
  WriteFileAtomic(script, bash.out);
  // Run the completion function as bash would: verbs, a verb's flags, globals after the verb.
  auto complete = [&](const std::string& words, int cword) {
    CmdResult r = test::Run({"/usr/bin/env", "bash", "-c",
                             "source " + script.string() + "; COMP_WORDS=(" + words +
                                 "); COMP_CWORD=" + std::to_string(cword) +
                                 "; _psctl_complete; echo \"${COMPREPLY[*]}\""});
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.out;
  };
  EXPECT_EQ(complete("psctl li", 1), "list\n");
  EXPECT_EQ(complete("psctl --server h:1 wa", 3), "watch\n");
  EXPECT_EQ(complete("psctl submit --dry", 2), "--dry-run\n");
  EXPECT_NE(complete("psctl get ID --out", 3).find("--output"), std::string::npos);
  EXPECT_EQ(complete("psctl completion z", 2), "zsh\n");

  CmdResult zsh = Ctl({"completion", "zsh"});
  ASSERT_EQ(zsh.rc, 0) << zsh.err;
  EXPECT_EQ(zsh.out.rfind("#compdef psctl\n", 0), 0u) << zsh.out;
  for (const char* verb :
       {"submit", "get", "list", "watch", "cancel", "logs", "artifacts", "version", "completion"})
    EXPECT_NE(zsh.out.find(std::string("'") + verb + ":"), std::string::npos) << verb;
  WriteFileAtomic(dir_ / "_psctl", zsh.out);
  CmdResult check = test::Run({"/usr/bin/env", "zsh", "-n", (dir_ / "_psctl").string()});
  if (check.rc != 127) {  // zsh is not part of the test set
    EXPECT_EQ(check.rc, 0) << check.err;
  }
  EXPECT_EQ(Ctl({"completion", "fish"}).rc, 2);
}

// model: hf://ORG/NAME: psd downloads it (from a loopback stand-in Hub) into its cache before the
// job is queued, and the job names the cached snapshot; a missing repository is refused at submit.
TEST_F(PsctlCliTest, HubModelIsFetchedIntoPsdsCache) {
  const fs::path root = dir_ / "hub";
  fs::create_directories(root / "acme" / "tiny");
  WriteFileAtomic(root / "acme/tiny/config.json",
                  R"({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                      "head_dim": 16, "num_hidden_layers": 2, "vocab_size": 256})");
  WriteFileAtomic(root / "acme/tiny/model.safetensors", std::string(4096, 'w'));
  pid_t hub = Spawn(
      {"/usr/bin/env", "python3", std::string(PS_SOURCE_DIR) + "/tests/worker/tools/fake_hub.py",
       root.string(), (dir_ / "hub.port").string(), (dir_ / "hub.log").string()},
      dir_ / "hub.out");
  ASSERT_TRUE(WaitFor([&] { return fs::exists(dir_ / "hub.port"); }, 20))
      << ReadFile(dir_ / "hub.out");
  ::setenv("HF_ENDPOINT", ("http://127.0.0.1:" + ReadFile(dir_ / "hub.port")).c_str(), 1);
  ::unsetenv("HF_TOKEN");
  Psd& psd = StartPsd();
  ::unsetenv("HF_ENDPOINT");
  WriteFileAtomic(dir_ / "calib.txt", "some calibration text\n");
  WriteFileAtomic(dir_ / "hub.yaml",
                  "name: step_s=0.01\nmodel: hf://acme/tiny  # from the Hub\n"
                  "calibration: {path: calib.txt}\nmethod: {name: proxsparse, max_steps: 2}\n");
  CmdResult r = Ctl({"submit", (dir_ / "hub.yaml").string(), "-w", "--server", psd.address()});
  // A repository that is not there is an error naming the model, at submit.
  WriteFileAtomic(dir_ / "missing.yaml",
                  "model: hf://acme/missing\ncalibration: {path: calib.txt}\n");
  CmdResult missing = Ctl({"submit", (dir_ / "missing.yaml").string(), "--server", psd.address()});
  ::kill(hub, SIGTERM);
  EXPECT_EQ(missing.rc, 3) << missing.err;
  EXPECT_NE(missing.err.find("model: hf://acme/missing"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("no such repository"), std::string::npos) << missing.err;
  ASSERT_EQ(r.rc, 0) << r.out << r.err << ReadFile(psd.log());
  const std::string id = r.out.substr(0, r.out.find('\n'));
  const std::string model = psd.GetJob(id)["spec"]["model"];
  EXPECT_EQ(model, (dir_ / "psd/hub/models--acme--tiny/snapshots/"
                           "3f1c9a7e5b2d4c6a8e0f1b3d5c7e9a1b2c4d6e8f")
                       .string());
  EXPECT_EQ(ReadFile(fs::path(model) / "config.json"), ReadFile(root / "acme/tiny/config.json"));
}

TEST_F(PsctlCliTest, TyposAndExitCodes) {
  CmdResult r = Ctl({"lsit"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("unknown command \"lsit\"; did you mean \"list\"?"), std::string::npos)
      << r.err;
  r = Ctl({"--server", "127.0.0.1:1", "wach", "j000001"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean \"watch\"?"), std::string::npos) << r.err;
  r = Ctl({"frobnicate"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err.find("did you mean"), std::string::npos) << r.err;
  EXPECT_EQ(Ctl({"list", "--bogus"}).rc, 2);
  EXPECT_EQ(Ctl({"list", "-o", "xml"}).rc, 2);
  EXPECT_EQ(Ctl({"--help"}).rc, 0);
  EXPECT_EQ(Ctl({"help"}).rc, 0);
  // psd: a bad command line is exit code 2 as documented (CLI11's own code was 109).
  EXPECT_EQ(test::Run({BinaryPath("server/psd"), "--bogus"}).rc, 2);
  EXPECT_EQ(test::Run({BinaryPath("server/psd"), "--help"}).rc, 0);
}

}  // namespace
}  // namespace ps::test
