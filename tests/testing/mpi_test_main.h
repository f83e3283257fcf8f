// The main of the gtest programs that run under mpirun: every rank runs every test against one MPI
// communicator (handed to the tests through `comm`), only rank 0 prints unless PS_TEST_ALL_RANKS
// is set, and the program fails on every rank when a test failed on any rank.
#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>

#include "worker/distributed/communicator.h"
#include "worker/distributed/mpi_communicator.h"

namespace ps::testing {

inline int RunMpiTests(int argc, char** argv, Communicator*& comm) {
  ::testing::InitGoogleTest(&argc, argv);
  auto mpi = MakeMpiCommunicator();
  comm = mpi.get();
  if (mpi->rank() != 0 && !std::getenv("PS_TEST_ALL_RANKS")) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  auto failed = torch::tensor({static_cast<int64_t>(rc != 0)});
  mpi->AllReduceSum(failed);
  comm = nullptr;
  mpi.reset();
  return failed.item<int64_t>() > 0 ? 1 : 0;
}

}  // namespace ps::testing
