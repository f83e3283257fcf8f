// The MPI backend (OpenMPI): CPU tensors, collectives through MPI_COMM_WORLD. bf16/fp16 sums go
// through fp32 (MPI has no such types); broadcasts move raw bytes.
#pragma once

#include <memory>

#include "worker/distributed/communicator.h"

namespace ps {

// Initialises MPI (once per process) and returns a communicator over MPI_COMM_WORLD.
std::unique_ptr<Communicator> MakeMpiCommunicator();

// True when this process was started by an MPI launcher (mpirun, srun with PMIx).
bool LaunchedByMpi();

}  // namespace ps
