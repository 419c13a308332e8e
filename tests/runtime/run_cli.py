"""End-to-end checks of `opentrn run` with real .npy files (Debian's /usr/bin/python3 + numpy).

  run_cli.py OPENTRN SOURCE_DIR WORK_DIR

numpy writes the inputs, `opentrn run` runs the example kernels, numpy reads the outputs and
compares them with references computed here; the trace and --json statistics must parse.
Exit status 0 only if every check passes (numpy missing is a failure, not a skip).
"""
import json
import os
import subprocess
import sys

import numpy as np

OPENTRN, SRC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
KDIR = os.path.join(SRC, "examples", "kernels")
os.makedirs(WORK, exist_ok=True)
failures = []


def path(name):
    return os.path.join(WORK, name)


def run(*args, status=0, pattern=None):
    p = subprocess.run([OPENTRN, "run", *args], capture_output=True, text=True)
    out = p.stdout + p.stderr
    if p.returncode != status or (pattern and pattern not in out):
        failures.append(f"opentrn run {' '.join(args)}: status {p.returncode} (want {status}), "
                        f"expected {pattern!r} in:\n{out}")
    return p


def check(cond, what):
    if not cond:
        failures.append(what)


def bf16_bits(x):
    """fp32 -> bf16 bits, round to nearest even (finite inputs)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


# GELU (tanh) on bf16 through --in/--out, with a trace and JSON statistics.
x = np.linspace(-4, 4, 128 * 1024, dtype=np.float32).reshape(128, 1024)
np.save(path("gelu_x.npy"), bf16_bits(x))
p = run(os.path.join(KDIR, "gelu.s"), "--chip", "trn2", "--in", "x=" + path("gelu_x.npy"),
        "--out", "y=" + path("gelu_y.npy"), "--trace", path("gelu.json"), "--json")
if p.returncode == 0:
    y = np.load(path("gelu_y.npy"))
    check(y.dtype == np.uint16 and y.shape == (128, 1024), f"gelu y: {y.dtype} {y.shape}")
    xb = bf16_value(bf16_bits(x)).astype(np.float64)
    ref = 0.5 * xb * (1 + np.tanh(np.sqrt(2 / np.pi) * (xb + 0.044715 * xb**3)))
    err = np.abs(bf16_value(y) - ref).max()
    check(err < 0.02, f"gelu: max error {err}")
    stats = json.loads(p.stdout)  # --json: stdout holds only the JSON
    check(stats["total_ps"] > 0 and stats["insns"] == 15, f"gelu stats: {stats['total_ps']} ps, {stats['insns']} insns")
    check(stats["memory"]["hbm"]["written_bytes"] == 128 * 1024 * 2, "gelu: HBM bytes written")
    trace = json.load(open(path("gelu.json")))
    cats = [e.get("cat") for e in trace["traceEvents"] if e["ph"] == "X"]
    check(cats.count("dma") == 4 and "wait" in cats and "insn" in cats, f"gelu trace categories {set(cats)}")
    check(not [f for f in os.listdir(WORK) if ".tmp" in f], "temporary files left behind")

# LayerNorm on fp32 with weights, from a program file, with the statistics table.
xl = np.random.default_rng(1).standard_normal((128, 512)).astype(np.float32)
gamma = np.linspace(0.5, 1.5, 512, dtype=np.float32)
beta = np.linspace(-1, 1, 512, dtype=np.float32)
for n, a in (("ln_x", xl), ("ln_g", gamma), ("ln_b", beta)):
    np.save(path(n + ".npy"), a)
subprocess.run([OPENTRN, "asm", os.path.join(KDIR, "layernorm.s"), "-o", path("layernorm.prog")], check=True,
               capture_output=True)
p = run(path("layernorm.prog"), "--in", "x=" + path("ln_x.npy"), "--in", "gamma=" + path("ln_g.npy"),
        "--in", "beta=" + path("ln_b.npy"), "--out", "y=" + path("ln_y.npy"), "--stats", pattern="busy ns")
if p.returncode == 0:
    mean = xl.mean(axis=1, keepdims=True, dtype=np.float64)
    var = xl.var(axis=1, keepdims=True, dtype=np.float64)
    ref = (xl - mean) / np.sqrt(var + 1e-5) * gamma + beta
    err = np.abs(np.load(path("ln_y.npy")) - ref).max()
    check(err < 1e-4, f"layernorm: max error {err}")

# Rejected inputs, each with a message naming the problem (exit status 1).
np.save(path("f32.npy"), x)
np.save(path("wrong_shape.npy"), bf16_bits(x).reshape(1024, 128))
np.save(path("fortran.npy"), np.asfortranarray(bf16_bits(x)))
gelu = os.path.join(KDIR, "gelu.s")
run(gelu, "--in", "x=" + path("f32.npy"), status=1, pattern="expected an array of dtype '<u2' (its bits)")
run(gelu, "--in", "x=" + path("wrong_shape.npy"), status=1, pattern="holds '<u2' [1024, 128]")
run(gelu, "--in", "x=" + path("fortran.npy"), status=1, pattern="Fortran-order")
run(gelu, "--in", "q=" + path("f32.npy"), status=1, pattern="no tensor 'q' (it has: x, y)")
run(gelu, status=1, pattern="1 tensor(s) have no value: 'x' (input)")
run(gelu, "--in", "x=" + path("gelu_x.npy"), "--out", "y=" + path("no/such/dir/y.npy"), status=1,
    pattern="no/such/dir/y.npy")
# An existing output is replaced only by a complete file.
np.save(path("keep.npy"), np.zeros(3, np.float32))
run(gelu, "--in", "x=" + path("gelu_x.npy"), "--out", "x=" + path("keep.npy"), status=0)
check(np.load(path("keep.npy")).shape == (128, 1024), "--out replaced the file")

# Modes and options.
run(gelu, "--allow-missing", "--mode", "timing", "--stats", status=0, pattern="(timing)")
run(gelu, "--in", "x=" + path("gelu_x.npy"), "--mode", "functional", status=0, pattern="0.000 us")
run(gelu, "--in", "x=" + path("gelu_x.npy"), "--sr", "--seed", "7", "--race-check", "--nan-trap", "--uninit", "warn",
    "--budget", "1000", "--scalesim", status=0)
run(gelu, "--in", "x=" + path("gelu_x.npy"), "--budget", "3", status=1, pattern="")

if failures:
    print("\n\n".join(failures))
    sys.exit(1)
print("run_cli: all checks passed")
