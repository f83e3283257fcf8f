// Every pruning method the service runs, in one table: its name in the job file, the method.* keys
// it takes, and what the rest of the system needs to know about it (whether it reads calibration
// data, whether it runs the training loop, whether the published model's kept weights differ
// from the base model's). Torch-free: the job-file parser (psd, psctl, the worker) and the docs
// test read it; the worker maps each name to its runner (worker/engine/method_runners.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ps {

struct MethodInfo {
  std::string_view name;
  std::string_view summary;       // one line, for help texts
  bool needs_calibration = true;  // reads calibration data (magnitude alone does not)
  bool trains = false;            // runs the training loop: checkpoints, --resume, history.csv
  bool changes_weights = false;   // the published kept weights differ from W0 (SparseGPT's update)
  std::vector<std::string_view> keys;  // method.* keys besides `name`, in documented order
};

// The keys every training method takes (part of its `keys`).
const std::vector<std::string_view>& TrainingKeys();
// All methods, in documented order.
const std::vector<MethodInfo>& Methods();
// nullptr for an unknown name.
const MethodInfo* FindMethod(std::string_view name);
// ps::Error naming the known methods for an unknown name.
const MethodInfo& GetMethod(std::string_view name);
// "proxsparse | magnitude | ..." (`separator` between names).
std::string MethodNames(std::string_view separator = " | ");

}  // namespace ps
