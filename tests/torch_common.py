"""Helpers shared by the PyTorch reference scripts (tests/model/model_torch.py,
tests/compiler/torch_ref.py, bench/torch_gpt2_forward.py); each puts this folder on sys.path.

Only json, math, struct, numpy and torch (Debian python3-torch; no safetensors package)."""
import json
import math
import struct

import numpy as np


def st_read_f32(path):
    """The F32 tensors of a safetensors file as numpy float32 arrays, by name.  The format: an
    8-byte little-endian header length, a JSON header, then raw little-endian tensor bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit("%s: tensor %s is %s, expected F32" % (path, name, info["dtype"]))
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(info["shape"]).copy()
    return out


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, old_context_len):
    """Hugging Face modeling_rope_utils._compute_llama3_parameters, written out from its source
    (in inv_freq's dtype)."""
    import torch
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
