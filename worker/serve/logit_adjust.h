// Per-request changes to the next-token logits before the token is chosen (greedy or sampled):
// OpenAI's logit_bias, frequency_penalty and presence_penalty, and vLLM's repetition_penalty.
// Applied in that order to one row of logits on the CPU; the logprobs a request gets are the
// model's, before them (token_logprobs.h).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <vector>

namespace ps::serve {

struct LogitAdjust {
  std::map<int32_t, float> logit_bias;  // token -> added to its logit, in [-100, 100]
  // Minus frequency_penalty x (times the token was generated) and minus presence_penalty once
  // for a token generated at all; each in [-2, 2]. The prompt does not count, as in OpenAI's.
  double frequency_penalty = 0;
  double presence_penalty = 0;
  // A token seen in the prompt or generated has its logit divided by this when positive and
  // multiplied by it when negative (the CTRL / Hugging Face rule); > 0, 1 is none.
  double repetition_penalty = 1;
};

// Whether `a` changes nothing (then greedy rows keep the argmax where the logits are).
bool IsIdentity(const LogitAdjust& a);

// Adjusts `logits` ([vocab] fp32 on the CPU) in place for the sequence `prompt` + `generated`.
void AdjustLogits(torch::Tensor& logits, const LogitAdjust& a, const std::vector<int32_t>& prompt,
                  const std::vector<int32_t>& generated);

}  // namespace ps::serve
