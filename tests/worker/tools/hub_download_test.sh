#!/usr/bin/env bash
# pstool download against a loopback stand-in for the Hub (fake_hub.py) serving small models this
# test writes: files and SHA-256 as served, only the files a model needs, a second run fetching
# nothing, a dropped connection resumed with a Range request, a partial file resumed, gated /
# missing / wrong-revision / corrupted repositories refused with advice, and the cache layout.
# Nothing leaves 127.0.0.1.
#   hub_download_test.sh PSTOOL FAKE_HUB_PY
set -euo pipefail
pstool=$1
hub_py=$2
tmp=$(mktemp -d)
server=""
cleanup() {
  # The stand-in dies of the SIGTERM (status 143): that is not the test's status.
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Models: a small safetensors file (3 MiB), its config and tokenizer config, and a .bin the
# download must leave alone.
python3 - "$tmp/root" <<'PY'
import json, os, struct, sys
root = sys.argv[1]
for repo, marker in [("tiny", None), ("gated", ".gated"), ("flaky", ".flaky"), ("bad", ".badsha")]:
    d = os.path.join(root, "acme", repo)
    os.makedirs(d)
    n = 768 * 1024
    data = bytes((i * 2654435761 >> 13) & 0xFF for i in range(4 * n))
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
    json.dump({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}, open(os.path.join(d, "config.json"), "w"))
    json.dump({"bos_token": "<s>"}, open(os.path.join(d, "tokenizer_config.json"), "w"))
    open(os.path.join(d, "pytorch_model.bin"), "wb").write(b"not wanted")
    if marker:
        open(os.path.join(d, marker), "w").close()
PY

python3 "$hub_py" "$tmp/root" "$tmp/port" "$tmp/hub.log" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || fail "the stand-in Hub did not start"
port=$(cat "$tmp/port")
export HF_ENDPOINT="http://127.0.0.1:$port" HF_HUB_CACHE="$tmp/cache"
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HOME
commit=3f1c9a7e5b2d4c6a8e0f1b3d5c7e9a1b2c4d6e8f

# 1. A plain download: exactly the wanted files, byte for byte.
out=$("$pstool" download acme/tiny --output "$tmp/tiny" 2>"$tmp/err") || { cat "$tmp/err"; fail "download"; }
for f in config.json model.safetensors tokenizer_config.json; do
  cmp -s "$tmp/root/acme/tiny/$f" "$tmp/tiny/$f" || fail "$f differs"
done
[ ! -e "$tmp/tiny/pytorch_model.bin" ] || fail "pytorch_model.bin was downloaded"
echo "$out" | grep -q "\"commit\":\"$commit\"" || fail "commit not reported: $out"
grep -q "SHA-256 checked" "$tmp/err" || fail "no SHA-256 check reported: $(cat "$tmp/err")"
grep -q "ETA" "$tmp/err" || fail "no progress lines: $(cat "$tmp/err")"
! grep -q $'\r' "$tmp/err" || fail "carriage returns in non-terminal output"

# 2. Again: nothing is fetched.
out=$("$pstool" download acme/tiny --output "$tmp/tiny" --quiet)
echo "$out" | grep -q '"downloaded_bytes":0' || fail "second run fetched data: $out"

# 3. The line drops half-way: resumed with a Range request, SHA-256 still right.
"$pstool" download acme/flaky --output "$tmp/flaky" 2>"$tmp/err" >/dev/null || { cat "$tmp/err"; fail "flaky download"; }
cmp -s "$tmp/root/acme/flaky/model.safetensors" "$tmp/flaky/model.safetensors" || fail "flaky file differs"
grep -q "cdn/acme/flaky/model.safetensors range=bytes=" "$tmp/hub.log" || fail "no Range request after the drop"

# 4. A partial file from an earlier run is resumed, not fetched again.
mkdir -p "$tmp/part"
head -c 1000 "$tmp/root/acme/tiny/model.safetensors" >"$tmp/part/model.safetensors.part"
"$pstool" download acme/tiny --output "$tmp/part" --quiet >/dev/null || fail "resume"
cmp -s "$tmp/root/acme/tiny/model.safetensors" "$tmp/part/model.safetensors" || fail "resumed file differs"
grep -q "cdn/acme/tiny/model.safetensors range=bytes=1000-" "$tmp/hub.log" || fail "no Range from 1000"

# 5. Refusals with advice; nothing half-written is left as a model file.
expect_error() {  # expect_error PATTERN ARGS...
  local pattern=$1; shift
  if "$pstool" download "$@" --quiet >/dev/null 2>"$tmp/err"; then fail "$* succeeded"; fi
  grep -q -- "$pattern" "$tmp/err" || fail "$*: expected '$pattern', got: $(cat "$tmp/err")"
}
expect_error "needs a token; set HF_TOKEN" acme/gated --output "$tmp/g1"
HF_TOKEN=wrong expect_error "accept its conditions" acme/gated --output "$tmp/g2"
HF_TOKEN=good-token "$pstool" download acme/gated --output "$tmp/g3" --quiet >/dev/null || fail "gated with token"
expect_error "no such repository" acme/nothing --output "$tmp/n1"
expect_error "no revision 'v9'" acme/tiny --revision v9 --output "$tmp/n2"
expect_error "the download was corrupted" acme/bad --output "$tmp/bad"
if [ -e "$tmp/bad/model.safetensors" ] || [ -e "$tmp/bad/model.safetensors.part" ]; then
  fail "corrupted file kept"
fi
expect_error "not a Hub model id" nonsense --output "$tmp/n3"
HF_ENDPOINT=http://127.0.0.1:1 expect_error "cannot reach the Hub" acme/tiny --output "$tmp/n4"

# 6. Without --output: the Hub cache layout (HF_HUB_CACHE), refs/main naming the commit.
out=$("$pstool" download acme/tiny --quiet)
snap="$tmp/cache/models--acme--tiny/snapshots/$commit"
echo "$out" | grep -q "\"dir\":\"$snap\"" || fail "cache dir not reported: $out"
cmp -s "$tmp/root/acme/tiny/model.safetensors" "$snap/model.safetensors" || fail "cached file differs"
[ "$(cat "$tmp/cache/models--acme--tiny/refs/main")" = "$commit" ] || fail "refs/main"
echo "hub download: all checks passed"
