// pstool convert --llama2c MODEL.bin --output DIR [--tokenizer tokenizer.model] [--dtype D]
// Converts a llama2.c (tinyllamas) checkpoint into a Hugging Face directory.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/models/llama2c.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"

namespace ps {
namespace {

struct ConvertArgs {
  std::string input, output, tokenizer, dtype = "fp32";
};

int RunConvert(const ConvertArgs& a) {
  const std::string &input = a.input, &output = a.output, &tokenizer = a.tokenizer;
  const std::string& dtype = a.dtype;
  auto model = LoadLlama2c(input);
  SaveOptions opts;
  opts.dtype = ParseComputeDType(dtype);
  SaveLlama(*model, output, opts);
  if (!tokenizer.empty()) {
    WriteFileAtomic(std::filesystem::path(output) / "tokenizer.model", ReadFile(tokenizer));
    WriteFileAtomic(std::filesystem::path(output) / "tokenizer_config.json",
                    R"({"tokenizer_class": "LlamaTokenizer", "add_bos_token": true,)"
                    R"( "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>",)"
                    R"( "unk_token": "<unk>"})"
                    "\n");
  }
  std::cerr << "wrote " << output << " (" << model->config().num_hidden_layers << " layers, vocab "
            << model->config().vocab_size << ")\n";
  return 0;
}

std::function<int()> Setup(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  app.add_option("--llama2c", a->input, "llama2.c (tinyllamas) MODEL.bin")->required();
  app.add_option("--output", a->output, "new Hugging Face model directory")->required();
  app.add_option("--tokenizer", a->tokenizer,
                 "a SentencePiece tokenizer.model to put beside the weights");
  app.add_option("--dtype", a->dtype, "storage dtype: fp32 (as llama2.c stores), bf16, fp16")
      ->capture_default_str();
  return [a] { return RunConvert(*a); };
}

const RegisterCommand kRegister("convert",
                                {"convert a llama2.c checkpoint to a HF directory", Setup});

}  // namespace
}  // namespace ps
