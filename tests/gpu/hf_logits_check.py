#!/usr/bin/env python3
"""Cross-checks pstool's Llama-family decoder against Hugging Face transformers (fp32 logits).

Runs where python3 has torch and transformers (the GPU machine):
    python3 tests/gpu/hf_logits_check.py --pstool build-gpu/worker/tools/pstool

For each family it builds a small random-weight model with transformers (Llama MHA, Mistral GQA,
Mistral with a short sliding window, Qwen2 with q/k/v biases and tied embeddings, Llama with
Llama-3 RoPE scaling), saves it as an HF safetensors directory, asks `pstool logits` for the
logits of a fixed token sequence, and compares them with transformers' (eager and sdpa
attention). It also has pstool re-save the model (our writer) and checks that transformers loads
that directory unchanged and gives the same logits. Prints PASS/FAIL per check; exit status 0 only
if everything passes. Relative error = max|ours - hf| / max|hf|, threshold 1e-4.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def read_safetensors(path):
    """Minimal reader (no dependency on the safetensors package): {name: fp32 torch tensor}."""
    import torch

    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = bytearray(data[base + b : base + e])
        t = torch.frombuffer(buf, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = t.float()
    return out


def set_rope(config, theta, scaling=None):
    """Sets RoPE θ (and scaling) in whichever spelling this transformers version uses."""
    params = {"rope_type": "default", "rope_theta": theta}
    if scaling:
        params.update(scaling)
    if isinstance(getattr(config, "rope_parameters", None), dict):  # transformers >= 5
        config.rope_parameters = dict(params)
    config.rope_theta = theta  # transformers 4.x reads these
    if scaling:
        config.rope_scaling = dict(params)


def make_config(kind):
    from transformers import AutoConfig

    common = dict(
        vocab_size=211,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    if kind == "llama":
        cfg = AutoConfig.for_model("llama", num_key_value_heads=4, **common)
        set_rope(cfg, 10000.0)
    elif kind == "llama3-rope":
        cfg = AutoConfig.for_model("llama", num_key_value_heads=2, **common)
        set_rope(cfg, 500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    elif kind == "mistral":
        cfg = AutoConfig.for_model("mistral", num_key_value_heads=2, sliding_window=4096, **common)
        set_rope(cfg, 1000000.0)
    elif kind == "mistral-window":
        cfg = AutoConfig.for_model("mistral", num_key_value_heads=1, sliding_window=8, **common)
        set_rope(cfg, 10000.0)
    elif kind == "qwen2":
        common["tie_word_embeddings"] = True
        cfg = AutoConfig.for_model("qwen2", num_key_value_heads=2, use_sliding_window=False, **common)
        set_rope(cfg, 1000000.0)
    else:
        raise ValueError(kind)
    return cfg


def build_model(cfg, seed, attn):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn)
    except TypeError:
        cfg._attn_implementation = attn
        model = AutoModelForCausalLM.from_config(cfg)
    model = model.float().eval()
    # Larger-than-default random weights so attention patterns and RoPE matter.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    return model


def hf_logits(model_dir, tokens, attn):
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn,
                                                     dtype=torch.float32)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn,
                                                     torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits.float()


def run(cmd):
    print("  $ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {p.stderr.strip()}")
    return p


def compare(name, ours, ref, tol):
    if tuple(ours.shape) != tuple(ref.shape):
        print(f"FAIL {name}: shape {tuple(ours.shape)} vs transformers {tuple(ref.shape)}")
        return False
    diff = (ours - ref).abs().max().item()
    rel = diff / max(ref.abs().max().item(), 1e-30)
    ok = rel <= tol
    same_argmax = bool((ours.argmax(-1) == ref.argmax(-1)).all())
    print(f"{'PASS' if ok else 'FAIL'} {name}: rel err {rel:.3e} (max abs {diff:.3e}, "
          f"max |logit| {ref.abs().max().item():.3f}, argmax agree {same_argmax})")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pstool", required=True, help="path to the pstool binary")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--families", default="llama,mistral,qwen2,mistral-window,llama3-rope")
    ap.add_argument("--devices", default="auto",
                    help="pstool devices to check: cpu, cuda, or auto (cpu, plus cuda when present)")
    ap.add_argument("--workdir", default=None, help="keep the generated models here")
    args = ap.parse_args()

    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"cuda {torch.cuda.is_available()}")
    pstool = os.path.abspath(args.pstool)
    if not os.access(pstool, os.X_OK):
        print(f"FAIL: {pstool} is not an executable")
        return 2
    torch.set_default_dtype(torch.float32)
    devices = ["cpu"]
    if args.devices == "auto":
        if torch.cuda.is_available():
            devices.append("cuda")
    else:
        devices = args.devices.split(",")
    work = args.workdir or tempfile.mkdtemp(prefix="hf_logits_check_")
    os.makedirs(work, exist_ok=True)
    tokens = [1] + [(37 * i + 11) % 211 for i in range(1, 40)]
    tok_arg = ",".join(str(t) for t in tokens)
    results = []
    for seed, kind in enumerate(args.families.split(",")):
        print(f"== {kind}")
        try:
            cfg = make_config(kind)
            model = build_model(cfg, seed, "eager")
            model_dir = os.path.join(work, kind)
            shutil.rmtree(model_dir, ignore_errors=True)
            model.save_pretrained(model_dir)
            with open(os.path.join(model_dir, "config.json")) as f:
                saved = json.load(f)
            keys = {k: saved.get(k) for k in ("model_type", "num_key_value_heads", "rope_theta",
                                              "rope_parameters", "rope_scaling", "sliding_window",
                                              "tie_word_embeddings") if k in saved}
            print(f"  config: {json.dumps(keys)}")
            refs = {attn: hf_logits(model_dir, tokens, attn) for attn in ("eager", "sdpa")}
            with torch.no_grad():
                direct = model(torch.tensor([tokens])).logits.float()
            results.append(compare(f"{kind}: transformers reload == in-memory model", refs["eager"],
                                   direct, 1e-6))
            for dev in devices:
                out = os.path.join(work, f"{kind}-{dev}.safetensors")
                resaved = os.path.join(work, f"{kind}-resaved")
                shutil.rmtree(resaved, ignore_errors=True)
                cmd = [pstool, "logits", "--model", model_dir, "--tokens", tok_arg, "--output", out,
                       "--device", dev]
                if dev == "cpu":
                    cmd += ["--save-as", resaved]
                run(cmd)
                ours = read_safetensors(out)["logits"]
                for attn, ref in refs.items():
                    results.append(compare(f"{kind} [{dev}] vs transformers {attn}", ours, ref,
                                           args.tolerance))
                if dev == "cpu":
                    # Our writer's output must load in transformers unchanged.
                    again = hf_logits(resaved, tokens, "eager")
                    results.append(compare(f"{kind}: transformers on pstool-saved dir", again,
                                           refs["eager"], 1e-6))
        except Exception as e:  # report and go on with the other families
            print(f"FAIL {kind}: {type(e).__name__}: {e}")
            results.append(False)
    passed = sum(results)
    print(f"{'PASS' if all(results) and results else 'FAIL'}: {passed}/{len(results)} checks passed"
          f" (models in {work})")
    if not args.workdir and all(results):
        shutil.rmtree(work, ignore_errors=True)
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
