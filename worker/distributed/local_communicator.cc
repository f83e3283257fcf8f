#include <cstdlib>

#include "common/error.h"
#include "worker/distributed/communicator.h"

namespace ps {

void Communicator::Abort(int code) { std::_Exit(code); }

namespace {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void AllReduceSum(torch::Tensor&) override {}
  void ReduceSum(torch::Tensor&, int root) override { CheckRoot(root); }
  void Broadcast(torch::Tensor&, int root) override { CheckRoot(root); }
  void Barrier() override {}

 private:
  static void CheckRoot(int root) {
    if (root != 0) throw Error("local communicator: root " + std::to_string(root) + " of 1 rank");
  }
};

}  // namespace

std::unique_ptr<Communicator> MakeLocalCommunicator() {
  return std::make_unique<LocalCommunicator>();
}

}  // namespace ps
