// The NCCL backend: CUDA tensors, one GPU per rank, the communicator's unique id broadcast over
// MPI (which also serves barriers and aborts). Operations run on the current CUDA stream.
#pragma once

#include <memory>

#include "worker/distributed/communicator.h"

namespace ps {

std::unique_ptr<Communicator> MakeNcclCommunicator(std::unique_ptr<Communicator> mpi);

}  // namespace ps
