// Scores token sequences with a running psserve (docs/serving.md), for `pstool eval --server`:
// the perplexity and task accuracy of the model as it is served (on the GPU, through the 2:4
// kernels), by the same protocol as `pstool eval --model`. Each sequence is one request, POST
// /v1/completions with the token ids as the prompt, "echo": true, "logprobs": 0 and "max_tokens":
// 0, whose prompt logprobs give the next-token log-probabilities.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace httplib {
class Client;
}

namespace ps::serve {

class ScoreClient {
 public:
  // `url`: the server's address, http://HOST:PORT (a trailing / or /v1 is accepted).
  explicit ScoreClient(const std::string& url);
  ~ScoreClient();
  // log p(ids[i] | ids[..i]) for i = 1 .. size - 1 (natural log). Throws ps::Error naming the
  // server and what it answered when it cannot be reached, refuses, or returns no prompt
  // logprobs.
  std::vector<double> PromptLogprobs(const std::vector<int32_t>& ids);
  // Sum of -log p(ids[i] | ids[..i]) over i >= 1, in nats.
  double SequenceNll(const std::vector<int32_t>& ids);
  // Sum of log p(ids[i] | ids[..i]) over the last `n` tokens (n < size; 0 gives 0): a
  // continuation's log-likelihood after its context.
  double SuffixLogprob(const std::vector<int32_t>& ids, size_t n);

 private:
  std::string url_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace ps::serve
