#include "worker/distributed/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>

#include "common/error.h"

namespace ps {
namespace {

void Check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(std::string(what) + " failed: " + std::string(msg, static_cast<size_t>(len)));
  }
}

MPI_Datatype SumType(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return MPI_FLOAT;
    case torch::kFloat64:
      return MPI_DOUBLE;
    case torch::kInt64:
      return MPI_INT64_T;
    case torch::kInt32:
      return MPI_INT32_T;
    case torch::kUInt8:
      return MPI_UINT8_T;
    case torch::kInt8:
      return MPI_INT8_T;
    default:
      return MPI_DATATYPE_NULL;
  }
}

void CheckTensor(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cpu())
    throw Error(std::string("MPI ") + what + ": tensor is on " + t.device().str() +
                "; the MPI backend takes CPU tensors (use NCCL for CUDA)");
  if (!t.is_contiguous()) throw Error(std::string("MPI ") + what + ": tensor is not contiguous");
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(int64_t max_message_bytes) : max_message_bytes_(max_message_bytes) {
    if (max_message_bytes_ < 16) throw Error("MPI communicator: max_message_bytes must be >= 16");
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      Check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_init_ = true;
    }
    // Errors come back as codes (turned into ps::Error) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_init_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void AllReduceSum(torch::Tensor& t) override {
    CheckTensor(t, "all-reduce");
    Reduce(t, -1);
  }
  void ReduceSum(torch::Tensor& t, int root) override {
    CheckTensor(t, "reduce");
    Reduce(t, root);
  }
  void Broadcast(torch::Tensor& t, int root) override {
    CheckTensor(t, "broadcast");
    auto* p = static_cast<char*>(t.data_ptr());
    int64_t bytes = t.numel() * t.element_size();
    // MPI counts are int: move large tensors in chunks.
    const int64_t kChunk = max_message_bytes_;
    for (int64_t off = 0; off < bytes; off += kChunk)
      Check(MPI_Bcast(p + off, static_cast<int>(std::min(kChunk, bytes - off)), MPI_BYTE, root,
                      MPI_COMM_WORLD),
            "MPI_Bcast");
  }
  void Barrier() override { Check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void Abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  // root < 0: all-reduce.
  void Reduce(torch::Tensor& t, int root) {
    torch::Tensor work = t;
    MPI_Datatype type = SumType(t.scalar_type());
    if (type == MPI_DATATYPE_NULL) {
      if (t.scalar_type() != torch::kBFloat16 && t.scalar_type() != torch::kFloat16)
        throw Error(std::string("MPI sum: unsupported dtype ") + c10::toString(t.scalar_type()));
      work = t.to(torch::kFloat32);
      type = MPI_FLOAT;
    }
    auto* p = static_cast<char*>(work.data_ptr());
    const int64_t n = work.numel();
    const int64_t esize = work.element_size();
    const int64_t kChunk = std::max<int64_t>(1, max_message_bytes_ / esize);  // elements
    for (int64_t off = 0; off < n; off += kChunk) {
      int count = static_cast<int>(std::min(kChunk, n - off));
      void* buf = p + off * esize;
      if (root < 0) {
        Check(MPI_Allreduce(MPI_IN_PLACE, buf, count, type, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
      } else if (rank_ == root) {
        Check(MPI_Reduce(MPI_IN_PLACE, buf, count, type, MPI_SUM, root, MPI_COMM_WORLD),
              "MPI_Reduce");
      } else {
        Check(MPI_Reduce(buf, nullptr, count, type, MPI_SUM, root, MPI_COMM_WORLD), "MPI_Reduce");
      }
    }
    if (work.data_ptr() != t.data_ptr()) t.copy_(work);
  }

  int64_t max_message_bytes_;
  int rank_ = 0, size_ = 1;
  bool owns_init_ = false;
};

}  // namespace

std::unique_ptr<Communicator> MakeMpiCommunicator(int64_t max_message_bytes) {
  return std::make_unique<MpiCommunicator>(max_message_bytes);
}

bool LaunchedByMpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK");
}

}  // namespace ps
