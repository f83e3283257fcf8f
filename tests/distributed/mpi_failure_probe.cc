// A probe for failure handling under mpirun (driven by failure_test.sh): rank 1 fails in the way
// the first argument names while the other ranks wait in a collective, as they would mid-step.
//   abort  rank 1 calls Communicator::Abort(3)
//   kill   rank 1 is killed by SIGKILL (kill -9)
//   hang   rank 1 stops making progress; every rank runs the watchdog (PS_RANK_TIMEOUT_S)
//   exit   rank 1 throws; psworker's handler aborts the job with code 1
// In every mode the job must end non-zero within a bounded time, never hang.
#include <torch/types.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "common/error.h"
#include "worker/distributed/mpi_communicator.h"
#include "worker/distributed/watchdog.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: mpi_failure_probe abort|kill|hang|exit\n";
    return 2;
  }
  const std::string mode = argv[1];
  auto comm = ps::MakeMpiCommunicator();
  if (mode == "hang") ps::StartRankWatchdog(ps::RankTimeoutSeconds(600), *comm);
  auto t = torch::ones({1024});
  comm->AllReduceSum(t);  // every rank is up and talking
  ps::WatchdogBeat("first all-reduce");
  if (comm->rank() == 1) {
    if (mode == "abort") comm->Abort(3);
    if (mode == "kill") raise(SIGKILL);
    if (mode == "hang") {
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (mode == "exit") {
      try {
        throw ps::Error("probe failure on rank 1");
      } catch (const std::exception& e) {
        std::cerr << "probe rank 1: error: " << e.what() << "\n";
        comm->Abort(1);
      }
    }
  }
  // The others block here forever unless the job is ended for them.
  comm->AllReduceSum(t);
  std::cerr << "probe rank " << comm->rank() << ": the collective returned; mode " << mode
            << " did not fail\n";
  return 0;
}
