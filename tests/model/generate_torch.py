"""PyTorch oracle for tests/model/test_generate.c: greedy generation with the same GPT-2 / Llama
model in plain torch (float64, tests/model/model_torch.py's forward), recomputing the whole
sequence every step (no KV cache), as Hugging Face's greedy search picks: argmax of the last
position's logits, lowest id on ties.

usage: generate_torch.py DIR   reads DIR/config.json, DIR/weights.safetensors and DIR/job.json
                               ({"prompts": [[ids], ...] of one length, "n": new tokens}); writes
                               DIR/ref_ids.bin: int32 [rows, n], and prints the smallest gap
                               between the best and second-best logit (how safe the argmax is)."""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_torch  # noqa: E402


def main(d):
    cfg = json.load(open(d + "/config.json"))
    job = json.load(open(d + "/job.json"))
    W = model_torch.st_load(d + "/weights.safetensors")
    ids = torch.tensor(job["prompts"], dtype=torch.int64)
    B = ids.shape[0]
    gap = float("inf")
    with torch.no_grad():
        for _ in range(job["n"]):
            S = ids.shape[1]
            logits = model_torch.forward(W, cfg, ids).view(B, S, -1)[:, -1]
            top = logits.topk(2, dim=-1).values
            gap = min(gap, float((top[:, 0] - top[:, 1]).min()))
            ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    out = ids[:, -job["n"]:].numpy().astype("<i4")
    out.tofile(d + "/ref_ids.bin")
    print("torch greedy: smallest top-1 / top-2 logit gap %.3g" % gap)


if __name__ == "__main__":
    main(sys.argv[1])
