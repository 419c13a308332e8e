"""NumPy side of tests/runtime/test_npy.c (run with Debian's /usr/bin/python3 and python3-numpy).

  npy_ref.py write DIR   numpy writes reference arrays into DIR for the C reader to check
  npy_ref.py check DIR   numpy reads the arrays the C writer put in DIR and checks every value

Values follow one rule both sides compute: element i of a float array is i * 0.25 - 3, of an
integer array (i * 37 + 5) wrapped to the type (numpy's astype wraps like C).
Exit status 0 only if every check passes; any failure (numpy missing included) is non-zero.
"""
import os
import sys

import numpy as np

TYPES = ["<f4", "<f2", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4"]
SHAPES = {"s": (), "e": (0, 3), "v": (7,), "m": (2, 3, 4)}


def expected(descr, shape):
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.int64)
    dt = np.dtype(descr)
    if dt.kind == "f":
        vals = (i.astype(np.float64) * 0.25 - 3).astype(dt)
    else:
        vals = (i * 37 + 5).astype(dt)
    return vals.reshape(shape)


def name(descr, key, version=1):
    kind = descr[1:]
    return f"{kind}_{key}_v{version}.npy"


def write(d):
    for descr in TYPES:
        for key, shape in SHAPES.items():
            np.save(os.path.join(d, name(descr, key)), expected(descr, shape))
            with open(os.path.join(d, name(descr, key, 2)), "wb") as f:
                np.lib.format.write_array(f, expected(descr, shape), version=(2, 0))
    a = expected("<f4", (3, 4))
    np.save(os.path.join(d, "fortran.npy"), np.asfortranarray(a))
    np.save(os.path.join(d, "bigendian.npy"), a.astype(">f4"))
    np.save(os.path.join(d, "float64.npy"), a.astype(np.float64))
    np.save(os.path.join(d, "bool.npy"), a > 0)
    np.save(os.path.join(d, "structured.npy"), np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))


def check(d):
    bad = 0
    for descr in TYPES:
        for key, shape in SHAPES.items():
            for version in (1, 2):
                path = os.path.join(d, name(descr, key, version))
                a = np.load(path)
                want = expected(descr, shape)
                if a.dtype != want.dtype or a.shape != want.shape or not np.array_equal(a, want):
                    print(f"{path}: got {a.dtype} {a.shape} {a.ravel()[:8]}, want {want.dtype} {want.shape}")
                    bad += 1
                with open(path, "rb") as f:
                    major, minor = np.lib.format.read_magic(f)
                if (major, minor) != (version, 0):
                    print(f"{path}: version {major}.{minor}, want {version}.0")
                    bad += 1
    return bad


if __name__ == "__main__":
    mode, d = sys.argv[1], sys.argv[2]
    if mode == "write":
        write(d)
        sys.exit(0)
    sys.exit(1 if check(d) else 0)
