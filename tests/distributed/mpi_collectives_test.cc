// Run under mpirun with 2 or 4 ranks (ctest does: distributed_mpi_np2, distributed_mpi_np4). Checks
// the MPI backend's collectives against sums computed locally, for every dtype the worker moves,
// through the chunked path and on a large tensor; and that ShardedAdamW on N ranks (with and
// without gradient-hook overlap) reaches the parameters one rank reaches on the whole batch.
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/types.h>

#include <memory>
#include <vector>

#include "worker/distributed/communicator.h"
#include "worker/distributed/mpi_communicator.h"
#include "worker/distributed/sharded_adamw.h"

namespace ps {
namespace {

Communicator* g_comm = nullptr;   // default messages (1 GiB)
Communicator* g_small = nullptr;  // 64-byte messages: every call goes through the chunk loop

Communicator& Comm() { return *g_comm; }

// Rank r's contribution: small integers so every dtype (bf16, fp16, u8) sums them exactly.
torch::Tensor Contribution(int rank, int64_t n, torch::ScalarType dtype) {
  auto idx = torch::arange(n, torch::kInt64);
  return ((idx * 7 + rank * 3) % 11).to(dtype);
}

torch::Tensor ExpectedSum(int ranks, int64_t n, torch::ScalarType dtype) {
  auto sum = torch::zeros({n}, torch::kInt64);
  for (int r = 0; r < ranks; ++r) sum += Contribution(r, n, torch::kInt64);
  return sum.to(dtype);
}

const std::vector<torch::ScalarType> kDtypes = {torch::kFloat32, torch::kFloat64, torch::kBFloat16,
                                                torch::kFloat16, torch::kInt64,   torch::kUInt8};

class Collectives : public ::testing::TestWithParam<torch::ScalarType> {};

TEST_P(Collectives, AllReduceSum) {
  for (Communicator* c : {g_comm, g_small}) {
    for (int64_t n : {1, 5, 1000, 4099}) {
      auto t = Contribution(c->rank(), n, GetParam());
      c->AllReduceSum(t);
      EXPECT_TRUE(torch::equal(t, ExpectedSum(c->size(), n, GetParam())))
          << "n=" << n << " dtype " << GetParam();
      EXPECT_EQ(t.scalar_type(), GetParam());
    }
  }
}

TEST_P(Collectives, ReduceSumToEveryRoot) {
  for (Communicator* c : {g_comm, g_small}) {
    for (int root = 0; root < c->size(); ++root) {
      const int64_t n = 777;
      auto t = Contribution(c->rank(), n, GetParam());
      c->ReduceSum(t, root);
      if (c->rank() == root) {
        EXPECT_TRUE(torch::equal(t, ExpectedSum(c->size(), n, GetParam()))) << "root " << root;
      }
    }
  }
}

TEST_P(Collectives, BroadcastFromEveryRoot) {
  for (Communicator* c : {g_comm, g_small}) {
    for (int root = 0; root < c->size(); ++root) {
      auto t = Contribution(c->rank(), 513, GetParam()).reshape({27, 19});
      c->Broadcast(t, root);
      EXPECT_TRUE(torch::equal(t, Contribution(root, 513, GetParam()).reshape({27, 19})));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Collectives, ::testing::ValuesIn(kDtypes));

// 8M fp32 elements (32 MB per rank) in one call: MPI's large-message protocols, not just eager.
TEST(Collectives, LargeTensors) {
  const int64_t n = int64_t{8} << 20;
  auto t = Contribution(Comm().rank(), n, torch::kFloat32);
  Comm().AllReduceSum(t);
  EXPECT_TRUE(torch::equal(t, ExpectedSum(Comm().size(), n, torch::kFloat32)));
  auto b = torch::full({n}, static_cast<double>(Comm().rank()), torch::kFloat32);
  Comm().Broadcast(b, Comm().size() - 1);
  EXPECT_EQ(b.min().item<float>(), static_cast<float>(Comm().size() - 1));
  EXPECT_EQ(b.max().item<float>(), static_cast<float>(Comm().size() - 1));
}

TEST(Collectives, RejectsWhatMpiCannotMove) {
  auto t = torch::zeros({4, 4}).t();
  EXPECT_ANY_THROW(Comm().AllReduceSum(t));  // not contiguous
  auto b = torch::zeros({4}, torch::kBool);
  EXPECT_ANY_THROW(Comm().AllReduceSum(b));  // no sum for bool
  Comm().Barrier();
}

// A small model: y = tanh(x W1ᵀ) W2ᵀ + b, loss = sum of squares over a global batch of 8 rows.
// Rank r computes the loss of rows j % ranks == r (divided by the global count), as the training
// loop does; the summed gradients are the whole batch's.
struct Model {
  torch::Tensor w1, w2, b;
  std::vector<TrainableTensor> Params() { return {{"w1", w1}, {"w2", w2}, {"b", b}}; }
};

Model MakeModel(torch::ScalarType dtype) {
  torch::manual_seed(1);
  Model m;
  m.w1 = torch::randn({16, 8}).to(dtype).requires_grad_(true);
  m.w2 = torch::randn({4, 16}).to(dtype).requires_grad_(true);
  m.b = torch::randn({4}).to(dtype).requires_grad_(true);
  return m;
}

std::vector<torch::Tensor> Train(Communicator& comm, torch::ScalarType dtype, bool overlap,
                                 int grad_accum) {
  Model m = MakeModel(dtype);
  ShardedAdamW opt(m.Params(), comm, AdamWOptions{}, torch::kFloat32);
  if (overlap) opt.EnableOverlap();
  for (int step = 0; step < 6; ++step) {
    torch::manual_seed(100 + step);
    auto x = torch::randn({8, 8});
    auto y = torch::randn({8, 4});
    opt.ZeroGrad();
    std::vector<int64_t> mine;
    for (int64_t j = comm.rank(); j < 8; j += comm.size()) mine.push_back(j);
    // This rank's rows in grad_accum micro-batches (the last one armed for overlap).
    const size_t per = (mine.size() + grad_accum - 1) / static_cast<size_t>(grad_accum);
    for (size_t first = 0; first < mine.size(); first += per) {
      auto rows = torch::tensor(std::vector<int64_t>(
          mine.begin() + static_cast<long>(first),
          mine.begin() + static_cast<long>(std::min(mine.size(), first + per))));
      auto out =
          torch::tanh(x.index_select(0, rows).to(dtype).matmul(m.w1.t())).matmul(m.w2.t()) + m.b;
      auto loss = (out.to(torch::kFloat32) - y.index_select(0, rows)).pow(2).sum() / 8.0;
      if (first + per >= mine.size()) opt.ArmOverlap();
      loss.backward();
    }
    opt.ReduceGradients();
    opt.Step(1e-2);
    opt.Publish();
  }
  return {m.w1.detach().clone(), m.w2.detach().clone(), m.b.detach().clone()};
}

TEST(ShardedAdamWMpi, SameParametersAsOneRank) {
  auto local = MakeLocalCommunicator();
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto ref = Train(*local, dtype, false, 1);
    for (bool overlap : {false, true}) {
      for (int accum : {1, 2}) {
        auto got = Train(Comm(), dtype, overlap, accum);
        for (size_t k = 0; k < ref.size(); ++k) {
          // fp32 sums in a different order differ in the last bits; bf16 params are rounded from
          // fp32 masters, so a last-bit difference can flip one bf16 ulp.
          const double tol = dtype == torch::kFloat32 ? 1e-5 : 1e-2;
          EXPECT_TRUE(
              torch::allclose(got[k].to(torch::kFloat32), ref[k].to(torch::kFloat32), tol, tol))
              << "tensor " << k << " dtype " << dtype << " overlap " << overlap << " accum "
              << accum << " max diff "
              << (got[k].to(torch::kFloat32) - ref[k].to(torch::kFloat32))
                     .abs()
                     .max()
                     .item<float>();
        }
        // Every rank holds the same published parameters.
        for (auto& t : got) {
          auto r0 = t.clone();
          Comm().Broadcast(r0, 0);
          EXPECT_TRUE(torch::equal(r0, t));
        }
      }
    }
  }
}

// With overlap the reduces are the same collectives on the same sums: bit-identical results.
TEST(ShardedAdamWMpi, OverlapIsBitIdentical) {
  for (int accum : {1, 2}) {
    auto plain = Train(Comm(), torch::kFloat32, false, accum);
    auto over = Train(Comm(), torch::kFloat32, true, accum);
    for (size_t k = 0; k < plain.size(); ++k) EXPECT_TRUE(torch::equal(plain[k], over[k]));
  }
}

// Some ranks run no backward at all (fewer rows than ranks): they never arm, and the reduces still
// pair up with the ranks that do.
TEST(ShardedAdamWMpi, RanksWithoutDataStillPairUp) {
  torch::manual_seed(3);
  auto w = torch::randn({6, 3}).requires_grad_(true);
  ShardedAdamW opt({{"w", w}, {"v", torch::randn({5}).requires_grad_(true)}}, Comm(),
                   AdamWOptions{}, torch::kFloat32);
  opt.EnableOverlap();
  opt.ZeroGrad();
  if (Comm().rank() == 0) {
    opt.ArmOverlap();
    w.pow(2).sum().backward();  // v gets no gradient anywhere
  }
  opt.ReduceGradients();
  opt.Step(0.1);
  opt.Publish();
  auto ref = w.detach().clone();
  Comm().Broadcast(ref, 0);
  EXPECT_TRUE(torch::equal(ref, w));
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = ps::MakeMpiCommunicator();
  auto small = ps::MakeMpiCommunicator(64);
  ps::g_comm = comm.get();
  ps::g_small = small.get();
  // Only rank 0 prints the per-test lines; every rank's failures still fail its exit code.
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  // A failure on any rank fails the job on rank 0 as well.
  auto failed = torch::tensor({static_cast<int64_t>(rc != 0)});
  comm->AllReduceSum(failed);
  small.reset();
  comm.reset();
  return failed.item<int64_t>() > 0 ? 1 : 0;
}
