// pstool convert --llama2c MODEL.bin --output DIR [--tokenizer tokenizer.model] [--dtype D]
// Converts a llama2.c (tinyllamas) checkpoint into a Hugging Face directory.
#include <iostream>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/models/llama2c.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"

namespace ps {
namespace {

int RunConvert(const std::vector<std::string>& args) {
  std::string input, output, tokenizer, dtype = "fp32";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--llama2c") {
      input = FlagValue(args, i);
    } else if (args[i] == "--output") {
      output = FlagValue(args, i);
    } else if (args[i] == "--tokenizer") {
      tokenizer = FlagValue(args, i);
    } else if (args[i] == "--dtype") {
      dtype = FlagValue(args, i);
    } else if (args[i] == "--help") {
      std::cout
          << "pstool convert --llama2c MODEL.bin --output DIR [options]\n"
             "  --tokenizer FILE   a SentencePiece tokenizer.model to put beside the weights\n"
             "  --dtype fp32|bf16|fp16   storage dtype (default fp32, as llama2.c stores)\n";
      return 0;
    } else {
      throw Error("unknown argument '" + args[i] + "' (see pstool convert --help)");
    }
  }
  if (input.empty() || output.empty()) throw Error("--llama2c FILE and --output DIR are required");
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

const RegisterCommand kRegister("convert",
                                {"convert a llama2.c checkpoint to a HF directory", RunConvert});

}  // namespace
}  // namespace ps
