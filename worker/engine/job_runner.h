// Runs one job file end to end on this process's rank: load the model and data, evaluate the
// dense model, run the method (and the optional masked update), publish the outputs, evaluate the
// pruned model, and write report.json. Every rank calls it; rank 0 writes the outputs.
//
// Output directory:
//   report.json        method, settings, data hashes, dense/pruned perplexity, per-layer N:M
//                      validity, wall time, peak memory, training summary
//   masks.safetensors  one packed-bit mask per target (uint8, little-endian bit order; shape and
//                      pattern in the metadata) + the base model's hash
//   model/             the pruned model as a Hugging Face directory
//   history.csv/.png   per-step history and its plot (training methods)
//   progress.jsonl     every progress event
//   checkpoints/       training checkpoints (removed after a successful run)
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/job_spec.h"
#include "common/progress.h"
#include "worker/distributed/communicator.h"

namespace ps {

struct RunOptions {
  std::filesystem::path output;  // overrides spec.output when set
  bool resume = false;           // continue from the newest complete checkpoint
  bool keep_checkpoints = false;
};

// Returns the report (also written to OUTPUT/report.json on rank 0). Throws ps::Error on failure.
nlohmann::json RunJob(const JobSpec& spec, const RunOptions& options, Communicator& comm,
                      ProgressSink& progress);

}  // namespace ps
