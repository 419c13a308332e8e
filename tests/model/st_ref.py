"""safetensors interop oracle for tests/model/test_safetensors.c, written with json + numpy
(+ torch for bf16 rounding) only, no safetensors library: the format is an 8-byte little-endian
header length, a JSON header, then the raw little-endian tensor bytes.

usage: st_ref.py write DIR   writes py_types.safetensors and py_gpt2_tiny.safetensors
       st_ref.py check DIR   checks c_f32.safetensors, c_bf16.safetensors, c_f16.safetensors
                             (written by the C test) value for value"""
import json
import struct
import sys

import numpy as np
import torch


def pattern(n):
    """The values both sides use: element i of a tensor is (i % 97) * 0.37 - 11.5 + 1e-3 * i."""
    i = np.arange(n, dtype=np.float64)
    return ((i % 97) * 0.37 - 11.5 + 1e-3 * i).astype(np.float32)


def bf16_bits(x):
    return torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def save(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], body[b:e])
    return header.get("__metadata__"), out


def gpt2_tiny_names(h=64, layers=2, inner=256, vocab=257, pos=128):
    """GPT2LMHeadModel's state-dict names and shapes (Conv1D weights are [in, out]), with the
    causal-mask buffers older checkpoints carry."""
    t = [("transformer.wte.weight", (vocab, h)), ("transformer.wpe.weight", (pos, h))]
    for l in range(layers):
        p = "transformer.h.%d." % l
        t += [(p + "ln_1.weight", (h,)), (p + "ln_1.bias", (h,)), (p + "attn.bias", (1, 1, pos, pos)),
              (p + "attn.c_attn.weight", (h, 3 * h)), (p + "attn.c_attn.bias", (3 * h,)),
              (p + "attn.c_proj.weight", (h, h)), (p + "attn.c_proj.bias", (h,)),
              (p + "ln_2.weight", (h,)), (p + "ln_2.bias", (h,)),
              (p + "mlp.c_fc.weight", (h, inner)), (p + "mlp.c_fc.bias", (inner,)),
              (p + "mlp.c_proj.weight", (inner, h)), (p + "mlp.c_proj.bias", (h,))]
    t += [("transformer.ln_f.weight", (h,)), ("transformer.ln_f.bias", (h,))]
    return t


def write(d):
    a = pattern(6)
    save(d + "/py_types.safetensors", [
        ("a_f32", "F32", (2, 3), a.tobytes()),
        ("b_f16", "F16", (4,), pattern(4).astype(np.float16).tobytes()),
        ("c_bf16", "BF16", (3, 2), bf16_bits(pattern(6)).tobytes()),
        ("d_scalar", "F32", (), np.float32(2.5).tobytes()),
        ("e_empty", "F32", (0, 5), b""),
        ("f_i64", "I64", (3,), np.array([1, -2, 3], dtype=np.int64).tobytes()),
    ], {"format": "pt", "note": "written by st_ref.py"})
    tensors = []
    for name, shape in gpt2_tiny_names():
        n = int(np.prod(shape))
        tensors.append((name, "BF16", shape, bf16_bits(pattern(n)).tobytes()))
    save(d + "/py_gpt2_tiny.safetensors", tensors, {"format": "pt"})


def check(d):
    for dtype in ("f32", "bf16", "f16"):
        meta, tensors = load("%s/c_%s.safetensors" % (d, dtype))
        assert meta.get("producer") == "opentrn", meta
        assert len(tensors) == 3, tensors.keys()
        for name, (st_dtype, shape, raw) in tensors.items():
            n = int(np.prod(shape)) if shape else 1
            want = pattern(n)
            if dtype == "f32":
                assert st_dtype == "F32", st_dtype
                got = np.frombuffer(raw, dtype="<f4")
                assert np.array_equal(got, want), name
            elif dtype == "bf16":
                assert st_dtype == "BF16", st_dtype
                got = np.frombuffer(raw, dtype="<u2")
                assert np.array_equal(got, bf16_bits(want)), name  # torch's round to nearest even
            else:
                assert st_dtype == "F16", st_dtype
                got = np.frombuffer(raw, dtype="<u2")
                assert np.array_equal(got, want.astype(np.float16).view(np.uint16)), name
    print("st_ref: C files check out")


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
