"""PyTorch oracle for tests/model/test_model_graph.c and test_train.c: the same GPT-2 / Llama
models in plain torch (float64), from the same weights.

usage: model_torch.py grads DIR   reads DIR/config.json, DIR/weights.safetensors, DIR/job.json
                                  (batch, seq), DIR/ids.bin, DIR/targets.bin (int32); writes
                                  DIR/ref.safetensors: logits, loss, "<weight>.grad" for every weight
       model_torch.py train DIR   the same inputs plus job.json "steps", "hyper" (one [6] list per
                                  step, the C trainer's ADAMW input), "beta1", "beta2", and the
                                  windows in DIR/windows.bin ([steps, batch, seq + 1] int32); runs
                                  torch.optim.AdamW (weight decay for tensors of 2+ dims only)
                                  after clip_grad_norm_; writes DIR/ref.safetensors:
                                  "losses" [steps] and every final weight
       model_torch.py generate DIR greedy continuation of job.json "prompt" (ids) by "n" ids over a
                                  sliding window of "seq"; writes DIR/ref.safetensors: "ids"

Only json, struct, numpy and torch (Debian python3-torch): the safetensors format is an 8-byte
little-endian header length, a JSON header, then raw little-endian tensor bytes."""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_common import llama3_inv_freq as llama3_inv_freq_hf, st_read_f32  # noqa: E402

DT = torch.float64


def st_load(path):
    return {k: torch.tensor(a.astype(np.float64), dtype=DT) for k, a in st_read_f32(path).items()}
def st_save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        raw = np.ascontiguousarray(t.detach().to(torch.float32).numpy()).astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def attention(q, k, v):
    """q [B, H, S, D], k and v [B, Hkv, S, D]: causal softmax attention, kv heads shared (repeat_kv)."""
    rep = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    S = q.shape[2]
    mask = torch.ones(S, S, dtype=torch.bool).tril()
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def heads(x, B, S, H, D):
    return x.view(B, S, H, D).transpose(1, 2)


def merge(x, B, S):
    return x.transpose(1, 2).reshape(B, S, -1)


def gpt2(W, cfg, ids):
    B, S = ids.shape
    D, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    hd = D // H
    x = W["wte.weight"][ids] + W["wpe.weight"][:S]
    for l in range(cfg["n_layer"]):
        p = "h.%d." % l
        h = F.layer_norm(x, (D,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        q, k, v = (h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]).split(D, dim=-1)
        a = merge(attention(heads(q, B, S, H, hd), heads(k, B, S, H, hd), heads(v, B, S, H, hd)), B, S)
        x = x + a @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (D,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        f = F.gelu(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + f @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (D,), W["ln_f.weight"], W["ln_f.bias"], eps)
    return x.reshape(B * S, D) @ W["wte.weight"].t()


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def llama3_inv_freq(inv, rs):
    return llama3_inv_freq_hf(inv, rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                              rs["original_max_position_embeddings"])
def rope(x, theta, rs=None):
    """Hugging Face rotate_half convention, positions 0..S-1; rs: config rope_scaling (llama3) or None."""
    S, D = x.shape[2], x.shape[3]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=DT) / D))
    if rs is not None:
        if rs.get("rope_type", rs.get("type")) != "llama3":
            raise SystemExit("model_torch.py: rope_scaling %r is not llama3" % (rs,))
        inv = llama3_inv_freq(inv, rs)
    f = torch.outer(torch.arange(S, dtype=DT), inv)
    emb = torch.cat([f, f], dim=-1)
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return x * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()


def llama(W, cfg, ids):
    B, S = ids.shape
    D, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or D // H
    eps, theta, rs = cfg["rms_norm_eps"], cfg["rope_theta"], cfg.get("rope_scaling")
    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q = rope(heads(h @ W[p + "self_attn.q_proj.weight"].t(), B, S, H, hd), theta, rs)
        k = rope(heads(h @ W[p + "self_attn.k_proj.weight"].t(), B, S, Hkv, hd), theta, rs)
        v = heads(h @ W[p + "self_attn.v_proj.weight"].t(), B, S, Hkv, hd)
        x = x + merge(attention(q, k, v), B, S) @ W[p + "self_attn.o_proj.weight"].t()
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        g = F.silu(h @ W[p + "mlp.gate_proj.weight"].t()) * (h @ W[p + "mlp.up_proj.weight"].t())
        x = x + g @ W[p + "mlp.down_proj.weight"].t()
    x = rms(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x.reshape(B * S, D) @ head.t()


def forward(W, cfg, ids):
    return llama(W, cfg, ids) if cfg["model_type"] == "llama" else gpt2(W, cfg, ids)


def load(d):
    cfg = json.load(open(d + "/config.json"))
    job = json.load(open(d + "/job.json"))
    W = st_load(d + "/weights.safetensors")
    for t in W.values():
        t.requires_grad_(True)
    return cfg, job, W


def ints(path, shape):
    return torch.tensor(np.fromfile(path, dtype="<i4").astype(np.int64).reshape(shape))


def grads(d):
    cfg, job, W = load(d)
    B, S = job["batch"], job["seq"]
    ids, targets = ints(d + "/ids.bin", (B, S)), ints(d + "/targets.bin", (B * S,))
    logits = forward(W, cfg, ids)
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    out = {"logits": logits, "loss": loss.reshape(1)}
    for name, t in W.items():
        out[name + ".grad"] = t.grad
    st_save(d + "/ref.safetensors", out)


def train(d):
    cfg, job, W = load(d)
    B, S, n = job["batch"], job["seq"], job["steps"]
    win = ints(d + "/windows.bin", (n, B, S + 1))
    names = list(W.keys())
    h0 = job["hyper"][0]
    # two param groups (GPT-2 / nanoGPT / Hugging Face practice): weight decay for tensors of 2 or
    # more dims (matmul weights, embeddings), none for biases and norm gains
    groups = [{"params": [W[k] for k in names if W[k].dim() >= 2], "weight_decay": h0[1]},
              {"params": [W[k] for k in names if W[k].dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=h0[0], betas=(job["beta1"], job["beta2"]), eps=h0[2])
    losses = []
    for s in range(n):
        opt.zero_grad()
        loss = F.cross_entropy(forward(W, cfg, win[s, :, :S]), win[s, :, 1:].reshape(-1))
        loss.backward()
        if job["hyper"][s][5] > 0:
            torch.nn.utils.clip_grad_norm_([W[k] for k in names], job["hyper"][s][5])
        for group in opt.param_groups:
            group["lr"] = job["hyper"][s][0]
        opt.step()
        losses.append(loss.item())
    out = {"losses": torch.tensor(losses, dtype=DT)}
    out.update({k: W[k] for k in names})
    st_save(d + "/ref.safetensors", out)


def generate(d):
    """Greedy continuation of job.json "prompt" by "n" ids over a sliding window of "seq" ids."""
    cfg, job, W = load(d)
    ids = list(job["prompt"])
    with torch.no_grad():
        for _ in range(job["n"]):
            ctx = torch.tensor([ids[-job["seq"]:]])
            ids.append(int(forward(W, cfg, ctx)[-1].argmax()))
    st_save(d + "/ref.safetensors", {"ids": torch.tensor(ids[len(job["prompt"]):], dtype=DT)})


if __name__ == "__main__":
    {"grads": grads, "train": train, "generate": generate}[sys.argv[1]](sys.argv[2])
