// Picks the backend for this process: one rank (no launcher) -> local; under mpirun/srun -> MPI
// for CPU jobs, NCCL (ids exchanged over MPI) for CUDA jobs.
#pragma once

#include <memory>

#include "worker/distributed/communicator.h"

namespace ps {

std::unique_ptr<Communicator> MakeCommunicatorFromEnvironment(bool cuda);

}  // namespace ps
