#!/usr/bin/env python3
"""Load generator for psserve (or any OpenAI-compatible /v1/completions server), stdlib only.

For each concurrency level C it runs C streams at once, each sending `--requests-per-stream`
requests one after another: a prompt of exactly `--prompt-len` random token ids (seeded), greedy,
`--output-len` tokens with EOS ignored, streamed (server-sent events), so time to first token and
every inter-token gap are measured at the client. Prints one JSON line per level:
  output_tok_s        all completion tokens / wall time of the level
  decode_tok_s        completion tokens after the first / the decode time (first to last token),
                      summed over streams: the decode throughput
  ttft_ms_{mean,p50,p99}, itl_ms_{mean,p50,p99}, latency_s_mean (request start to last token)

  serve_client.py --url http://127.0.0.1:8000 --concurrency 1,8,32 --prompt-len 512 \
      --output-len 256 [--vocab 32000] [--label dense-bf16]
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def one_request(url, prompt, output_len):
    """Streams one completion; returns (start, token times) or raises."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": output_len, "temperature": 0,
                       "ignore_eos": True, "stream": True, "return_token_ids": True})
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    times = []
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        event = json.loads(data)
        if "error" in event:
            raise RuntimeError(event["error"]["message"])
        now = time.perf_counter()
        for _ in event["choices"][0].get("token_ids", []):
            times.append(now)
    conn.close()
    return start, times


def run_level(args, concurrency, rng):
    results, errors = [], []
    lock = threading.Lock()

    def stream(i):
        for _ in range(args.requests_per_stream):
            prompt = [rng_for(i).randrange(100, args.vocab) for _ in range(args.prompt_len)]
            try:
                r = one_request(args.url, prompt, args.output_len)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - reported, counted as a failure
                with lock:
                    errors.append(str(e))

    seeds = [rng.randrange(1 << 30) for _ in range(concurrency)]
    rngs = [random.Random(s) for s in seeds]

    def rng_for(i):
        return rngs[i]

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(len(t) for _, t in results)
    ttft = [(t[0] - s) * 1e3 for s, t in results if t]
    itl = [(b - a) * 1e3 for _, t in results for a, b in zip(t, t[1:])]
    decode_tokens = sum(len(t) - 1 for _, t in results if len(t) > 1)
    decode_time = statistics.mean([t[-1] - t[0] for _, t in results if len(t) > 1] or [float("nan")])
    short = [len(t) for _, t in results if len(t) != args.output_len]
    return {
        "label": args.label, "concurrency": concurrency, "requests": len(results),
        "failed": len(errors), "first_error": errors[0] if errors else None,
        "short_responses": len(short), "prompt_len": args.prompt_len,
        "output_len": args.output_len, "wall_s": round(wall, 3),
        "output_tok_s": round(tokens / wall, 2),
        "decode_tok_s": round(decode_tokens / decode_time / args.requests_per_stream, 2)
        if decode_tokens else None,
        "ttft_ms_mean": round(statistics.mean(ttft), 2) if ttft else None,
        "ttft_ms_p50": round(percentile(ttft, 0.5), 2), "ttft_ms_p99": round(percentile(ttft, 0.99), 2),
        "itl_ms_mean": round(statistics.mean(itl), 3) if itl else None,
        "itl_ms_p50": round(percentile(itl, 0.5), 3), "itl_ms_p99": round(percentile(itl, 0.99), 3),
        "latency_s_mean": round(statistics.mean([t[-1] - s for s, t in results if t]), 3)
        if results else None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--prompt-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--requests-per-stream", type=int, default=1)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds over the levels (not counted)")
    p.add_argument("--label", default="")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    levels = [int(x) for x in args.concurrency.split(",")]
    # Warm-up at every level with short outputs: the server's first calls at a batch size (and
    # the prompt length) pick their kernels then (cuSPARSELt plans are searched on first use).
    for _ in range(args.warmup):
        for c in levels:
            warm = argparse.Namespace(**vars(args))
            warm.output_len, warm.requests_per_stream = 4, 1
            run_level(warm, c, rng)
    failed = False
    for c in levels:
        r = run_level(args, c, rng)
        print(json.dumps(r), flush=True)
        failed = failed or r["failed"] > 0 or r["short_responses"] > 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
