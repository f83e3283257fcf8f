// The MPI backend (OpenMPI): CPU tensors, collectives through MPI_COMM_WORLD. bf16/fp16 sums go
// through fp32 (MPI has no such types); broadcasts move raw bytes.
#pragma once

#include <cstdint>
#include <memory>

#include "worker/distributed/communicator.h"

namespace ps {

// Initialises MPI (once per process) and returns a communicator over MPI_COMM_WORLD. MPI counts
// are ints, so tensors move in messages of at most `max_message_bytes` (tests pass a small value
// to exercise the chunking).
std::unique_ptr<Communicator> MakeMpiCommunicator(int64_t max_message_bytes = int64_t{1} << 30);

// True when this process was started by an MPI launcher (mpirun, srun with PMIx).
bool LaunchedByMpi();

}  // namespace ps
