#include "worker/distributed/nccl_communicator.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <mpi.h>
#include <nccl.h>

#include <cstdlib>

#include "common/error.h"

namespace ps {
namespace {

void Check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string(what) + " failed: " + ncclGetErrorString(r));
}

ncclDataType_t Type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return ncclFloat32;
    case torch::kFloat64:
      return ncclFloat64;
    case torch::kFloat16:
      return ncclFloat16;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kInt64:
      return ncclInt64;
    case torch::kInt32:
      return ncclInt32;
    case torch::kUInt8:
      return ncclUint8;
    case torch::kInt8:
      return ncclInt8;
    default:
      throw Error(std::string("NCCL: unsupported dtype ") + c10::toString(t));
  }
}

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(std::unique_ptr<Communicator> mpi) : mpi_(std::move(mpi)) {
    // One GPU per rank: the node-local rank picks it (mpirun and srun both set it).
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!local) local = std::getenv("SLURM_LOCALID");
    int local_rank = local ? std::atoi(local) : mpi_->rank();
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank % c10::cuda::device_count()));
    ncclUniqueId id;
    if (mpi_->rank() == 0) Check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    Check(ncclCommInitRank(&comm_, mpi_->size(), id, mpi_->rank()), "ncclCommInitRank");
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  std::string backend() const override { return "nccl"; }

  void AllReduceSum(torch::Tensor& t) override {
    CheckTensor(t);
    Check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                        Type(t.scalar_type()), ncclSum, comm_, Stream(t)),
          "ncclAllReduce");
  }
  void ReduceSum(torch::Tensor& t, int root) override {
    CheckTensor(t);
    Check(ncclReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                     Type(t.scalar_type()), ncclSum, root, comm_, Stream(t)),
          "ncclReduce");
  }
  void Broadcast(torch::Tensor& t, int root) override {
    CheckTensor(t);
    Check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                        Type(t.scalar_type()), root, comm_, Stream(t)),
          "ncclBroadcast");
  }
  void Barrier() override {
    c10::cuda::getCurrentCUDAStream().synchronize();
    mpi_->Barrier();
  }
  void GroupStart() override { Check(ncclGroupStart(), "ncclGroupStart"); }
  void GroupEnd() override { Check(ncclGroupEnd(), "ncclGroupEnd"); }
  [[noreturn]] void Abort(int code) override {
    ncclCommAbort(comm_);
    mpi_->Abort(code);
  }

 private:
  static void CheckTensor(const torch::Tensor& t) {
    if (!t.is_cuda()) throw Error("NCCL: tensor is not on a CUDA device");
    if (!t.is_contiguous()) throw Error("NCCL: tensor is not contiguous");
  }
  static cudaStream_t Stream(const torch::Tensor& t) {
    return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
  }
  std::unique_ptr<Communicator> mpi_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> MakeNcclCommunicator(std::unique_ptr<Communicator> mpi) {
  return std::make_unique<NcclCommunicator>(std::move(mpi));
}

}  // namespace ps
