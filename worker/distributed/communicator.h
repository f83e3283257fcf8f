// The one collective-communication interface the worker uses. Backends: local (one rank, every
// call a no-op), MPI (CPU tensors, through OpenMPI) and NCCL (CUDA tensors; ranks agree on the
// NCCL unique id over MPI). Training code is written once against this and runs on all three.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

namespace ps {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "local", "mpi" or "nccl".
  virtual std::string backend() const = 0;

  // In place, element-wise sum over all ranks; every rank gets the result.
  virtual void AllReduceSum(torch::Tensor& t) = 0;
  // In place sum into `root`'s tensor; the other ranks' tensors are left unspecified.
  virtual void ReduceSum(torch::Tensor& t, int root) = 0;
  // `root`'s tensor is copied into every rank's `t` (same shape and dtype everywhere).
  virtual void Broadcast(torch::Tensor& t, int root) = 0;
  virtual void Barrier() = 0;
  // Fuses the calls between GroupStart and GroupEnd into one launch where the backend can (NCCL
  // groups); the other backends run them one by one.
  virtual void GroupStart() {}
  virtual void GroupEnd() {}
  // Ends every rank of the job at once (a failed rank must not leave the others waiting in a
  // collective). Does not return.
  [[noreturn]] virtual void Abort(int code);
};

// One rank, nothing to communicate.
std::unique_ptr<Communicator> MakeLocalCommunicator();

}  // namespace ps
