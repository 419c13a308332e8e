#!/usr/bin/python3
"""PyTorch reference for fp32 -> bf16 and fp32 -> fp16 rounding (used by test_torch.c).

Given a seed, deterministically builds >= 1,000,000 float32 bit patterns (random patterns,
ties, subnormals, +-0, NaN, +-Inf, values around the max and the min subnormal of both
formats), converts them with torch and writes, little endian:

    b"OTNUMREF", u32 version (1), u32 zero, u64 seed, u64 n,
    n x u32 input bits, n x u16 torch bf16 bits, n x u16 torch fp16 bits

Exits non-zero with a clear message when numpy or torch is missing: the C test then fails.
"""
import argparse
import os
import struct
import sys

try:
    import numpy as np
except ImportError as e:  # pragma: no cover - reported by the C test
    sys.exit(f"torch_ref.py: cannot import numpy with {sys.executable}: {e}; "
             "install Debian python3-numpy")
try:
    import torch
except ImportError as e:  # pragma: no cover
    sys.exit(f"torch_ref.py: cannot import torch with {sys.executable}: {e}; "
             "install Debian python3-torch")

U32 = np.uint32
MAGIC = b"OTNUMREF"
MIN_COUNT = 1_000_000


def f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(U32)


def with_both_signs(bits):
    bits = np.asarray(bits, dtype=U32)
    return np.concatenate([bits, bits | U32(0x80000000)])


def sweep(center, radius):
    """The fp32 patterns center-radius .. center+radius, kept within +0 .. +Inf."""
    lo = max(int(center) - radius, 0)
    hi = min(int(center) + radius, 0x7F800000)
    return np.arange(lo, hi + 1, dtype=np.uint64).astype(U32)


def fp16_midpoints():
    """Every midpoint between adjacent non-negative fp16 values (incl. max..65536), +-1 ulp."""
    vals = np.arange(0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    vals = np.append(vals, 65536.0)  # the value one past the max
    mids = f32_bits((vals[:-1] + vals[1:]) / 2)  # exact: one bit more than fp16
    return np.concatenate([mids, mids - U32(1), mids + U32(1)])


def build_inputs(seed):
    rng = np.random.default_rng(seed)
    parts = []
    # Uniformly random bit patterns: every class, in proportion.
    parts.append(rng.integers(0, 2**32, size=400_000, dtype=np.uint64).astype(U32))
    # Random finite values across fp16's range and a little beyond.
    exp = rng.integers(127 - 30, 127 + 18, size=200_000, dtype=np.uint64).astype(U32)
    man = rng.integers(0, 2**23, size=200_000, dtype=np.uint64).astype(U32)
    sign = rng.integers(0, 2, size=200_000, dtype=np.uint64).astype(U32) << U32(31)
    parts.append(sign | (exp << U32(23)) | man)
    # bf16 ties and their neighbours for every bf16 pattern (NaN/Inf ones included).
    hi = np.arange(65536, dtype=np.uint64).astype(U32) << U32(16)
    for low in (0x8000, 0x7FFF, 0x8001):
        parts.append(hi | U32(low))
    # fp16 ties (normal and subnormal) and their neighbours.
    parts.append(with_both_signs(fp16_midpoints()))
    # fp32 subnormals.
    sub = rng.integers(1, 2**23, size=50_000, dtype=np.uint64).astype(U32)
    parts.append(with_both_signs(sub))
    # NaNs with random payloads (quiet and signalling), and the specials.
    pay = rng.integers(1, 2**23, size=10_000, dtype=np.uint64).astype(U32)
    parts.append(with_both_signs(U32(0x7F800000) | pay))
    parts.append(with_both_signs([0x00000000, 0x7F800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF,
                                  0x7FBFFFFF, 0x7F7FFFFF, 0x00000001]))
    # Sweeps around the overflow boundaries and the smallest values of both formats.
    centers = [
        0x477FE000,  # fp16 max 65504
        0x477FF000,  # 65520 = fp16 max + ulp/2 (first value that overflows)
        0x47800000,  # 65536
        0x7F7F0000,  # bf16 max
        0x7F7F8000,  # bf16 max + ulp/2
        0x7F7FFFFF,  # FLT_MAX
        0x33800000,  # fp16 min subnormal 2^-24
        0x33000000,  # 2^-25, half of it
        0x38800000,  # fp16 min normal 2^-14
        0x00010000,  # bf16 min subnormal 2^-133
        0x00008000,  # 2^-134
        0x00800000,  # bf16 / fp32 min normal 2^-126
        0x00000000,  # zero and the smallest fp32 subnormals
    ]
    for c in centers:
        parts.append(with_both_signs(sweep(c, 2000)))
    bits = np.concatenate(parts)
    if bits.size < MIN_COUNT:
        sys.exit(f"torch_ref.py: only {bits.size} inputs, want >= {MIN_COUNT}")
    return bits


def torch_bits(bits, dtype):
    x = torch.from_numpy(bits.view(np.float32).copy())
    return x.to(dtype).view(torch.int16).numpy().view(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    bits = build_inputs(args.seed)
    bf16 = torch_bits(bits, torch.bfloat16)
    fp16 = torch_bits(bits, torch.float16)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<IIQQ", 1, 0, args.seed, bits.size))
        f.write(bits.astype("<u4").tobytes())
        f.write(bf16.astype("<u2").tobytes())
        f.write(fp16.astype("<u2").tobytes())
    os.replace(tmp, args.out)  # never leave a half-written file behind
    print(f"torch_ref.py: torch {torch.__version__}, {bits.size} values -> {args.out}")


if __name__ == "__main__":
    main()
