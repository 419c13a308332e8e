"""PyTorch baseline of bench/bench_model_forward.c: the same GPT-2 forward (token ids -> logits) in
fp32 eager mode on the CPU, built from plain torch.nn modules, with the weights the benchmark
wrote, timed under torch.no_grad.

usage: torch_gpt2_forward.py DIR REPS THREADS...
  DIR/config.json           the model configuration (Hugging Face GPT-2 keys, as opentrn saves it)
  DIR/weights.safetensors   F32 weights with the Hugging Face GPT-2 names (Conv1D weights [in, out])
  DIR/ids.bin               int32 token ids [batch * seq], DIR/job.json {"batch": B, "seq": S}
For each thread count T: torch.set_num_threads(T), one warm-up forward, then REPS timed forwards;
prints "RESULT threads T best SECONDS all S1 S2 ... process CPU C1 C2 ... os threads N" (wall
seconds; CPU seconds of all threads; the process's OS threads after the runs).  The logits of the
first forward ([batch * seq, vocab] fp32) go to DIR/logits.bin.  Debian's torch reaches OpenBLAS
through the generic BLAS interface, whose thread pool torch.set_num_threads does not size: the
caller sets OPENBLAS_NUM_THREADS=T and OMP_NUM_THREADS=T (bench_model_forward does, one process per
thread count).

Only json, struct, time, numpy and torch (Debian python3-torch; no transformers, no safetensors)."""
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_common import st_read_f32  # noqa: E402


def st_load(path):
    return {k: torch.from_numpy(a) for k, a in st_read_f32(path).items()}
class Attention(nn.Module):
    def __init__(self, d, heads, ctx):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.register_buffer("mask", torch.ones(ctx, ctx, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x):
        B, S, D = x.shape
        hd = D // self.heads
        q, k, v = self.c_attn(x).split(D, dim=-1)
        q, k, v = (t.view(B, S, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        s = s.masked_fill(~self.mask[:S, :S], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        return self.c_proj(a.transpose(1, 2).reshape(B, S, D))


class Block(nn.Module):
    def __init__(self, d, heads, inner, ctx, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, heads, ctx)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(d, inner))
        self.mlp.add_module("act", nn.GELU(approximate="tanh"))
        self.mlp.add_module("c_proj", nn.Linear(inner, d))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, ctx = cfg["n_embd"], cfg["n_positions"]
        inner = cfg.get("n_inner") or 4 * d
        self.wte = nn.Embedding(cfg["vocab_size"], d)
        self.wpe = nn.Embedding(ctx, d)
        self.h = nn.ModuleList(Block(d, cfg["n_head"], inner, ctx, cfg["layer_norm_epsilon"])
                               for _ in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(d, eps=cfg["layer_norm_epsilon"])
        self.lm_head = nn.Linear(d, cfg["vocab_size"], bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2

    def forward(self, ids):
        B, S = ids.shape
        x = self.wte(ids) + self.wpe(torch.arange(S))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x)).reshape(B * S, -1)

    def load_hf(self, w):
        """Hugging Face names; Conv1D weights are [in, out], nn.Linear's are [out, in]."""
        sd = {}
        for name, t in w.items():
            linear = name.endswith(".weight") and t.dim() == 2 and name not in ("wte.weight", "wpe.weight")
            sd[name] = t.t().contiguous() if linear else t
        sd["lm_head.weight"] = w["wte.weight"]
        self.load_state_dict(sd, strict=True)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    d, reps, threads = sys.argv[1], int(sys.argv[2]), [int(t) for t in sys.argv[3:]]
    torch.set_num_interop_threads(1)  # before any parallel work; the forward uses intra-op threads only
    with open(d + "/config.json") as f:
        cfg = json.load(f)
    with open(d + "/job.json") as f:
        job = json.load(f)
    ids = np.fromfile(d + "/ids.bin", dtype="<i4").astype(np.int64).reshape(job["batch"], job["seq"])
    ids = torch.from_numpy(ids)
    model = GPT2(cfg)
    model.load_hf(st_load(d + "/weights.safetensors"))
    model.eval()
    first = True
    with torch.no_grad():
        for t in threads:
            torch.set_num_threads(t)
            logits = model(ids)  # warm-up
            if first:
                logits.numpy().astype("<f4").tofile(d + "/logits.bin")
                first = False
            times, cpu = [], []
            for _ in range(reps):
                c0, t0 = time.process_time(), time.perf_counter()
                model(ids)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            print("RESULT threads %d best %.6f all %s process CPU %s os threads %d" % (
                t, min(times), " ".join("%.4f" % s for s in times), " ".join("%.4f" % s for s in cpu),
                len(os.listdir("/proc/self/task"))), flush=True)


if __name__ == "__main__":
    main()
