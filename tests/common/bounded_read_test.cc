// Bounded reads of metadata files and the raw-text checks on job files (issue 13, item 5 and the
// input bounds): FIFOs and devices fail at once, sizes are bounded, bad text names its line; and
// the result manifest psworker uses to adopt a finished attempt's outputs.
#include "common/bounded_read.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "common/file_util.h"
#include "common/job_spec.h"
#include "worker/tools/result_manifest.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

std::string Message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class BoundedRead : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ps_bounded_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(BoundedRead, RegularFilesAreReadWholeUpToTheBound) {
  WriteFileAtomic(dir_ / "a.json", "{\"x\": 1}");
  EXPECT_EQ(ReadRegularFileBounded(dir_ / "a.json", 100, "model"), "{\"x\": 1}");
  EXPECT_EQ(ReadRegularFileBounded(dir_ / "a.json", 8, "model"), "{\"x\": 1}");
  EXPECT_NE(Message([&] {
              ReadRegularFileBounded(dir_ / "a.json", 7, "model");
            }).find("is larger than 7 bytes"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ReadRegularFileBounded(dir_ / "none", 7, "model");
            }).find("model: " + (dir_ / "none").string() + " does not exist"),
            std::string::npos);
}

TEST_F(BoundedRead, FifosAndDevicesFailAtOnce) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0644), 0);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(Message([&] {
              ReadRegularFileBounded(dir_ / "fifo", 1 << 20, "model");
            }).find("is a FIFO, expected a regular file"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ReadRegularFileBounded("/dev/zero", 1 << 20, "model");
            }).find("/dev/zero is a character device"),
            std::string::npos);
  fs::create_symlink("/dev/zero", dir_ / "zero");
  EXPECT_NE(Message([&] {
              CheckRegularFile(dir_ / "zero", "calibration.path");
            }).find("calibration.path: "),
            std::string::npos);
  EXPECT_NE(Message([&] { CheckRegularFile(dir_, "evaluation.ppl[0]"); }).find("is a directory"),
            std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
}

TEST_F(BoundedRead, JobFilesThatAreNotBoundedUtf8TextAreRefusedByLine) {
  const std::string ok = "model: /m\nmethod: {name: magnitude}\n";
  EXPECT_NO_THROW(ParseJobSpec(ok, "/"));
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "name: caf\xe9\n", "/", "j.yaml");
            }).find("j.yaml: line 3: invalid UTF-8 at byte offset"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(std::string("a\0b", 3), "/", "j.yaml");
            }).find("j.yaml: line 1: a NUL byte"),
            std::string::npos);
  // Overlong encodings and surrogates are not UTF-8.
  EXPECT_NE(Message([&] { ParseJobSpec(ok + "name: \xc0\xaf\n", "/"); }).find("invalid UTF-8"),
            std::string::npos);
  EXPECT_NE(Message([&] { ParseJobSpec(ok + "name: \xed\xa0\x80\n", "/"); }).find("invalid UTF-8"),
            std::string::npos);
  EXPECT_NO_THROW(ParseJobSpec(ok + "name: caf\xc3\xa9 \xf0\x9f\x98\x80\n", "/"));
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "# " + std::string(1 << 20, 'x') + "\n", "/");
            }).find("at most 1048576 (1 MiB)"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "seed: 1\nseed: 2\n", "/", "j.yaml");
            }).find("seed: duplicate key (first at line 3) (j.yaml line 4)"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "resources: {ranks: 1, ranks: 1}\n", "/");
            }).find("resources.ranks: duplicate key"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "name: \"a\\tb\"\n", "/");
            }).find("name: contains a control character"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "name: " + std::string(257, 'n') + "\n", "/");
            }).find("name: is 257 bytes long; at most 256"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "resources: {memory_gb: 1e300}\n", "/");
            }).find("resources.memory_gb: must be <= 1048576"),
            std::string::npos);
  EXPECT_NE(Message([&] {
              ParseJobSpec(ok + "resources: {ranks: 5000}\n", "/");
            }).find("resources.ranks: must be <= 4096"),
            std::string::npos);
}

TEST_F(BoundedRead, ResultManifestPinsThePublishedFiles) {
  fs::create_directories(dir_ / "model");
  fs::create_directories(dir_ / "checkpoints/step-2");
  WriteFileAtomic(dir_ / "report.json", "{}");
  WriteFileAtomic(dir_ / "model/model.safetensors", "weights");
  WriteFileAtomic(dir_ / "progress.jsonl", "{}\n");
  WriteFileAtomic(dir_ / "checkpoints/step-2/manifest.json", "{}");
  EXPECT_FALSE(CheckResultManifest(dir_, "h1").present);
  WriteResultManifest(dir_, "h1");
  AdoptionCheck c = CheckResultManifest(dir_, "h1");
  EXPECT_TRUE(c.valid) << c.why;
  EXPECT_EQ(c.files, 2);  // report.json, model/model.safetensors
  // Appending progress or changing checkpoints does not matter; the outputs do.
  WriteFileAtomic(dir_ / "progress.jsonl", "{}\n{}\n");
  EXPECT_TRUE(CheckResultManifest(dir_, "h1").valid);
  c = CheckResultManifest(dir_, "another job");
  EXPECT_FALSE(c.valid);
  EXPECT_NE(c.why.find("job_hash differs"), std::string::npos) << c.why;
  WriteFileAtomic(dir_ / "model/model.safetensors", "weightz");
  c = CheckResultManifest(dir_, "h1");
  EXPECT_FALSE(c.valid);
  EXPECT_NE(c.why.find("model/model.safetensors has another SHA-256"), std::string::npos) << c.why;
  WriteFileAtomic(dir_ / "model/model.safetensors", "weights");
  EXPECT_TRUE(CheckResultManifest(dir_, "h1").valid);
  fs::remove(dir_ / "report.json");
  c = CheckResultManifest(dir_, "h1");
  EXPECT_FALSE(c.valid);
  EXPECT_NE(c.why.find("report.json is missing"), std::string::npos) << c.why;
}

}  // namespace
}  // namespace ps
