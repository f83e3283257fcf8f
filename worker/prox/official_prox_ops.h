// What the official ProxSparse PyTorch code does for the 2:4 prox, written as the same kind of
// whole-tensor op composition: sort |w| per group, 100 fixed Gauss-Seidel iterations from zero for
// the 3-sparse and the dense candidates (last coordinate first), the three objectives, an argmin,
// unsort, signs -- in the weight's own dtype, with temporaries of the weight's size. It is the
// baseline the bench times against, and an independent cross-check in the tests.
#pragma once

#include <torch/types.h>

namespace ps::prox {

// Returns the 2:4 prox of w (last dimension divisible by 4) as a new tensor; w is unchanged.
torch::Tensor OfficialStyleProx24(const torch::Tensor& w, double lambda, int iterations = 100);

}  // namespace ps::prox
