// Chat messages -> one prompt string. A full Jinja engine is not part of this server: the
// tokenizer_config.json `chat_template` is recognised by its markers as one of the common
// families and rendered by our own code for that family; a model without a template (or with an
// unrecognised one) gets the plain template below. docs/serving.md lists them.
//
//   llama2   "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ..."
//   chatml   "<|im_start|>{role}\n{content}<|im_end|>\n" ... "<|im_start|>assistant\n"
//   llama3   "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>" ...
//   plain    "{System|User|Assistant}: {content}\n" ... "Assistant:"
// The BOS token is left to the tokenizer (EncodeForModel), never written as text.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ps::serve {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

enum class ChatTemplate { kPlain, kLlama2, kChatMl, kLlama3 };

// The family of a tokenizer_config.json chat_template text ("" -> plain).
ChatTemplate DetectChatTemplate(const std::string& jinja);
// Reads `chat_template` from model_dir/tokenizer_config.json (absent file or key: plain).
ChatTemplate ChatTemplateOf(const std::filesystem::path& model_dir);
std::string ChatTemplateName(ChatTemplate t);
// Renders the conversation and the opening of the assistant's reply. Roles other than
// system/user/assistant are a ps::Error naming the message.
std::string RenderChat(ChatTemplate t, const std::vector<ChatMessage>& messages);
// Text that ends an assistant turn in this family (a stop sequence besides EOS), "" for none.
std::string ChatTurnEnd(ChatTemplate t);

}  // namespace ps::serve
