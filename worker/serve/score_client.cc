#include "worker/serve/score_client.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace ps::serve {

namespace {

// http://host:port from what a user may paste: a trailing "/" or "/v1" is dropped.
std::string BaseUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.size() >= 3 && url.compare(url.size() - 3, 3, "/v1") == 0) url.resize(url.size() - 3);
  if (url.rfind("http://", 0) != 0)
    throw Error("--server '" + url + "': give the server's address as http://HOST:PORT");
  return url;
}

}  // namespace

ScoreClient::ScoreClient(const std::string& url)
    : url_(BaseUrl(url)), client_(std::make_unique<httplib::Client>(url_)) {
  client_->set_read_timeout(600, 0);  // a long window on a slow device
  client_->set_connection_timeout(10, 0);
}

ScoreClient::~ScoreClient() = default;

double ScoreClient::SequenceNll(const std::vector<int32_t>& ids) {
  double nll = 0;
  for (double lp : PromptLogprobs(ids)) nll -= lp;
  return nll;
}

double ScoreClient::SuffixLogprob(const std::vector<int32_t>& ids, size_t n) {
  if (n >= ids.size())
    throw Error("SuffixLogprob: the last " + std::to_string(n) + " of " +
                std::to_string(ids.size()) + " tokens; a scored suffix needs a token before it");
  const auto lps = PromptLogprobs(ids);
  double sum = 0;
  for (size_t i = lps.size() - n; i < lps.size(); ++i) sum += lps[i];
  return sum;
}

std::vector<double> ScoreClient::PromptLogprobs(const std::vector<int32_t>& ids) {
  const nlohmann::json body = {
      {"prompt", ids}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}, {"temperature", 0}};
  auto res = client_->Post("/v1/completions", body.dump(), "application/json");
  if (!res)
    throw Error("cannot reach the server at " + url_ + " (" + httplib::to_string(res.error()) +
                "): is psserve running there?");
  const auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    const std::string why = j.is_object() && j.contains("error") && j["error"].contains("message")
                                ? j["error"]["message"].get<std::string>()
                                : res->body.substr(0, 200);
    throw Error("the server at " + url_ + " answered " + std::to_string(res->status) + ": " + why);
  }
  const nlohmann::json* lp = nullptr;
  if (j.is_object() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() &&
      j["choices"][0].contains("logprobs") && j["choices"][0]["logprobs"].is_object())
    lp = &j["choices"][0]["logprobs"]["token_logprobs"];
  if (!lp || !lp->is_array() || lp->size() != ids.size())
    throw Error(
        "the server at " + url_ + " returned no logprobs for the " + std::to_string(ids.size()) +
        " prompt tokens; it must score prompts (\"echo\" with \"logprobs\"), as psserve does");
  std::vector<double> out;
  for (size_t i = 1; i < ids.size(); ++i) {
    if (!(*lp)[i].is_number())
      throw Error("the server at " + url_ + " returned no log-probability for prompt token " +
                  std::to_string(i) + " (non-finite logits?)");
    out.push_back((*lp)[i].get<double>());
  }
  return out;
}

}  // namespace ps::serve
