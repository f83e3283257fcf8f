#include "worker/distributed/communicator_factory.h"

#include "common/error.h"
#include "worker/distributed/mpi_communicator.h"
#ifdef PS_WITH_NCCL
#include "worker/distributed/nccl_communicator.h"
#endif

namespace ps {

std::unique_ptr<Communicator> MakeCommunicatorFromEnvironment(bool cuda) {
  if (!LaunchedByMpi()) return MakeLocalCommunicator();
  auto mpi = MakeMpiCommunicator();
  if (!cuda || mpi->size() == 1) return mpi;
#ifdef PS_WITH_NCCL
  return MakeNcclCommunicator(std::move(mpi));
#else
  throw Error("a CUDA job on several ranks needs NCCL, and this build has none");
#endif
}

}  // namespace ps
