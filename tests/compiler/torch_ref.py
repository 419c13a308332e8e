#!/usr/bin/python3
"""PyTorch reference for graph IR tests (tests/compiler/test_graph_ref.c, test_autodiff.c).

Usage: torch_ref.py SPEC.json

SPEC lists cases; each is a forward graph as the C test built it (tensors with role, dtype and
shape; nodes with op, inputs, outputs and attribute slots f/i/list as in graph_ops.def), the
path of a raw little-endian float32 file holding every leaf's values (input, weight, const) in
tensor order, an optional loss tensor id, and an output path.  Each node is evaluated with
torch's own functions (F.layer_norm, F.gelu, F.cross_entropy, ...) in float64, so the reference
is PyTorch's definition of the op without fp32 rounding noise.  A tensor of dtype bf16 is
rounded to bf16 after it is computed, with a straight-through gradient (the rounding is the
identity for autograd).  With a loss, loss.backward() gives every weight's gradient.

Output (little endian): b"OTGRREF1", u64 count of doubles that follow, then for every tensor of
the forward graph, in order, its values (float64), then for every weight, in tensor order, its
gradient (zeros when torch gives none).

Exits non-zero with a message when torch is missing or an op is unknown: the C test fails.
"""
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - reported by the C test
    sys.exit(f"torch_ref.py: cannot import numpy/torch with {sys.executable}: {e}; "
             "install Debian python3-numpy and python3-torch")

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_common import llama3_inv_freq  # noqa: E402

DT = torch.float64


class RoundBf16(torch.autograd.Function):
    """Round to bf16 (RNE) in the forward, identity in the backward."""

    @staticmethod
    def forward(ctx, x):
        return x.to(torch.float32).to(torch.bfloat16).to(DT)

    @staticmethod
    def backward(ctx, g):
        return g


def store(x, dtype):
    if dtype == "bf16":
        return RoundBf16.apply(x)
    if dtype == "int32":
        return torch.round(x).detach()
    return x


def rope(x, theta, offset, inverse, scaling=None):
    """Hugging Face LlamaRotaryEmbedding + apply_rotary_pos_emb; angles in fp32 as HF.
    scaling: (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings) or None."""
    d, s = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    if scaling is not None:
        inv_freq = llama3_inv_freq(inv_freq, *scaling)
    t = torch.arange(offset, offset + s, dtype=torch.int64).float()
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1).to(DT)
    cos, sin = emb.cos(), emb.sin()
    if inverse:
        sin = -sin
    half = d // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


def attention(q, k, v, causal, scale):
    d = q.shape[-1]
    if scale == 0.0:
        scale = 1.0 / math.sqrt(d)
    rep = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)  # Hugging Face repeat_kv
    v = v.repeat_interleave(rep, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        n = q.shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def slice_len(node, outs_shape, x):
    axis = node["i"][0] % x.dim()
    start = node["i"][1]
    if start < 0:
        start += x.shape[axis]
    return axis, start, outs_shape[0][axis]


def run_op(op, x, n, out_shapes):
    f, i, lst = n["f"], n["i"], n["list"]
    if op == "matmul":
        b = x[1].transpose(-1, -2) if i[0] else x[1]
        return [x[0] @ b]
    if op == "linear":
        w = x[1].t() if i[0] else x[1]
        y = x[0] @ w
        return [y + x[2] if x[2] is not None else y]
    if op in ("add", "sub", "mul"):
        return [{"add": torch.add, "sub": torch.sub, "mul": torch.mul}[op](x[0], x[1])]
    if op == "scale":
        return [x[0] * f[0]]
    if op == "softmax":
        return [torch.softmax(x[0], dim=-1)]
    if op == "layernorm":
        return [F.layer_norm(x[0], (x[0].shape[-1],), x[1], x[2], f[0])]
    if op == "rmsnorm":  # Hugging Face LlamaRMSNorm
        y = x[0] * torch.rsqrt(x[0].pow(2).mean(-1, keepdim=True) + f[0])
        return [y * x[1] if x[1] is not None else y]
    if op == "gelu":
        return [F.gelu(x[0], approximate="tanh" if i[0] else "none")]
    if op == "silu":
        return [F.silu(x[0])]
    if op == "swiglu":
        return [F.silu(x[0]) * x[1]]
    if op == "embedding":
        return [F.embedding(x[0].long(), x[1])]
    if op == "rope":
        # attribute slots (graph_ops.def): f theta, factor, low_freq_factor, high_freq_factor;
        # i offset, inverse, original_max_pos (0: no llama3 scaling)
        scaling = (f[1], f[2], f[3], i[2]) if i[2] > 0 else None
        return [rope(x[0], f[0], i[0], i[1], scaling)]
    if op == "attention":
        return [attention(x[0], x[1], x[2], i[0], f[0])]
    if op == "transpose":
        return [x[0].permute(*lst)]
    if op == "reshape":
        return [x[0].reshape(out_shapes[0])]
    if op == "concat":
        return [torch.cat(x, dim=i[0])]
    if op == "split":
        return list(torch.split(x[0], lst, dim=i[0]))
    if op == "slice":
        axis, start, length = slice_len(n, out_shapes, x[0])
        return [x[0].narrow(axis, start, length)]
    if op == "reduce_sum":
        return [x[0].sum(dim=i[0], keepdim=bool(i[1]))]
    if op == "reduce_max":
        return [x[0].amax(dim=i[0], keepdim=bool(i[1]))]
    if op == "reduce_mean":
        return [x[0].mean(dim=i[0], keepdim=bool(i[1]))]
    if op == "cross_entropy":
        return [F.cross_entropy(x[0], x[1].long())]
    if op == "cast":
        return [x[0]]  # the rounding is done by store() from the output dtype
    if op == "broadcast":
        return [x[0].expand(*out_shapes[0])]
    raise SystemExit(f"torch_ref.py: node '{n['name']}': op '{op}' has no PyTorch reference")


def run_case(case):
    tensors = case["tensors"]
    raw = np.fromfile(case["data"], dtype="<f4")
    vals = [None] * len(tensors)
    pos = 0
    for k, t in enumerate(tensors):
        if t["role"] == "value":
            continue
        n = int(np.prod(t["shape"], dtype=np.int64))
        a = torch.from_numpy(raw[pos:pos + n].astype(np.float64)).reshape(t["shape"])
        pos += n
        if t["role"] == "weight":
            a.requires_grad_(True)
        vals[k] = a
    if pos != raw.size:
        raise SystemExit(f"torch_ref.py: case {case['name']}: data file has {raw.size} floats, "
                         f"leaves need {pos}")
    for n in case["nodes"]:
        ins = [vals[t] if t >= 0 else None for t in n["in"]]
        shapes = [tensors[t]["shape"] for t in n["out"]]
        outs = run_op(n["op"], ins, n, shapes)
        for t, y in zip(n["out"], outs):
            vals[t] = store(y.reshape(tensors[t]["shape"]), tensors[t]["dtype"])
    if case["loss"] >= 0:
        vals[case["loss"]].sum().backward()
    parts = [v.detach().reshape(-1).numpy() for v in vals]
    for k, t in enumerate(tensors):
        if t["role"] == "weight":
            g = vals[k].grad
            parts.append((g if g is not None else torch.zeros_like(vals[k])).reshape(-1).numpy())
    flat = np.concatenate(parts).astype("<f8") if parts else np.zeros(0, "<f8")
    with open(case["out"], "wb") as fh:
        fh.write(b"OTGRREF1" + struct.pack("<Q", flat.size) + flat.tobytes())


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: torch_ref.py SPEC.json")
    torch.set_num_threads(1)
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    for case in spec["cases"]:
        run_case(case)


if __name__ == "__main__":
    main()
