#include "worker/io/tensor_io.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

namespace ps {
namespace {

TEST(TensorIo, SaveAndViewRoundTrip) {
  auto p = std::filesystem::temp_directory_path() / ("ps_tio_" + std::to_string(::getpid()));
  torch::manual_seed(0);
  auto w = torch::randn({8, 16}).to(torch::kBFloat16);
  auto h = torch::randn({3}).to(torch::kFloat16);
  auto m = torch::rand({4, 4}) > 0.5;
  SaveTensors(p, {{"w", w}, {"h", h}, {"m", m}, {"t", w.t()}});
  auto f = SafetensorsFile::Open(p);
  EXPECT_TRUE(torch::equal(TensorView(*f, f->Get("w")), w));
  EXPECT_TRUE(torch::equal(TensorView(*f, f->Get("h")), h));
  EXPECT_TRUE(torch::equal(TensorView(*f, f->Get("m")), m));
  EXPECT_TRUE(torch::equal(TensorView(*f, f->Get("t")), w.t()));
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace ps
