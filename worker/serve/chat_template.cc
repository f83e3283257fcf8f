#include "worker/serve/chat_template.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"

namespace ps::serve {

ChatTemplate DetectChatTemplate(const std::string& jinja) {
  if (jinja.find("<|start_header_id|>") != std::string::npos) return ChatTemplate::kLlama3;
  if (jinja.find("<|im_start|>") != std::string::npos) return ChatTemplate::kChatMl;
  if (jinja.find("[INST]") != std::string::npos) return ChatTemplate::kLlama2;
  return ChatTemplate::kPlain;
}

ChatTemplate ChatTemplateOf(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return ChatTemplate::kPlain;
  const nlohmann::json c = nlohmann::json::parse(ReadFile(path));
  if (!c.contains("chat_template")) return ChatTemplate::kPlain;
  const auto& t = c["chat_template"];
  if (t.is_string()) return DetectChatTemplate(t.get<std::string>());
  // A list of named templates: the "default" one.
  if (t.is_array())
    for (const auto& e : t)
      if (e.value("name", "") == "default") return DetectChatTemplate(e.value("template", ""));
  return ChatTemplate::kPlain;
}

std::string ChatTemplateName(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kLlama2:
      return "llama2";
    case ChatTemplate::kChatMl:
      return "chatml";
    case ChatTemplate::kLlama3:
      return "llama3";
    case ChatTemplate::kPlain:
      break;
  }
  return "plain";
}

namespace {

void CheckRoles(const std::vector<ChatMessage>& messages) {
  if (messages.empty()) throw Error("'messages' is empty: give at least one message");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      throw Error("messages[" + std::to_string(i) + "].role is '" + r +
                  "': use system, user or assistant");
  }
}

std::string Llama2(const std::vector<ChatMessage>& m) {
  std::string out, system;
  size_t i = 0;
  if (m[0].role == "system") system = m[i++].content;
  bool first = true;
  for (; i < m.size(); ++i) {
    if (m[i].role == "user") {
      out += first ? "[INST] " : "<s>[INST] ";
      if (first && !system.empty()) out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
      out += m[i].content + " [/INST]";
      first = false;
    } else {  // assistant (a later system message is folded in as text)
      out += " " + m[i].content + " </s>";
    }
  }
  return out;
}

}  // namespace

std::string RenderChat(ChatTemplate t, const std::vector<ChatMessage>& messages) {
  CheckRoles(messages);
  std::string out;
  switch (t) {
    case ChatTemplate::kLlama2:
      return Llama2(messages);
    case ChatTemplate::kChatMl:
      for (const auto& m : messages)
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      return out + "<|im_start|>assistant\n";
    case ChatTemplate::kLlama3:
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatTemplate::kPlain:
      break;
  }
  for (const auto& m : messages) {
    std::string role = m.role;
    role[0] = static_cast<char>(role[0] - 'a' + 'A');
    out += role + ": " + m.content + "\n";
  }
  return out + "Assistant:";
}

std::string ChatTurnEnd(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kChatMl:
      return "<|im_end|>";
    case ChatTemplate::kLlama3:
      return "<|eot_id|>";
    case ChatTemplate::kPlain:
      return "\nUser:";
    case ChatTemplate::kLlama2:
      break;
  }
  return "";
}

}  // namespace ps::serve
