// The model card a published directory carries: method, pattern, format, perplexities with the
// baselines, validity, data hashes and the canonical job.
#include "common/model_card.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ps {
namespace {

TEST(ModelCard, HoldsWhatTheReportSays) {
  auto r = nlohmann::json::parse(R"({
    "method": "proxsparse", "pattern": "2:4", "ranks": 1, "device": "cpu",
    "job_hash": "abc123", "job_yaml": "name: default\nmethod:\n  name: proxsparse\n",
    "data": {"model": {"path": "/data/codelm-19m", "sha256": "m0d3l"},
             "calibration": {"path": "/data/calib.jsonl.gz", "sha256": "ca1b", "samples": 64,
                             "tokens": 32768},
             "evaluation": [{"path": "/data/code-eval.txt", "sha256": "e7a1"}]},
    "dense": {"code-eval.txt": {"perplexity": 4.76}},
    "pruned": {"code-eval.txt": {"perplexity": 7.9}},
    "baselines": {"magnitude": {"code-eval.txt": {"perplexity": 12.5}}},
    "validity": {"valid": true, "layers": [{"groups": 10, "nm_sparse_fraction": 1.0}]}
  })");
  std::string card = ModelCard(r, "compressed-tensors");
  for (const char* want :
       {"# /data/codelm-19m, pruned 2:4 with proxsparse", "sparse-24-bitmask",
        "| text | dense | pruned | change | magnitude |",
        "| code-eval.txt | 4.76 | 7.90 | +66.0% | 12.50 |", "100.0% of the target groups are 2:4",
        "| base model (safetensors) | /data/codelm-19m | m0d3l |",
        "| /data/calib.jsonl.gz | ca1b |", "| evaluation | /data/code-eval.txt | e7a1 |",
        "`abc123`", "```yaml\nname: default\n", "- proxsparse\n"})
    EXPECT_NE(card.find(want), std::string::npos) << want << "\n" << card;
  EXPECT_NE(ModelCard(r, "native").find(".sparse24.values"), std::string::npos);
  EXPECT_NE(ModelCard(r, "model").find("dense layout"), std::string::npos);
}

}  // namespace
}  // namespace ps
