"""Shows that OpenBLAS's sgemm can round an element by its position and the product's shape.

  OPENBLAS_CORETYPE=Haswell /usr/bin/python3 results/benchmarks/openblas_shape_dependence.py

Calls cblas_sgemm of the system OpenBLAS through ctypes on float32 data and
prints the largest difference (a) between two identical columns 40 apart in
one product and (b) between a 10-row product and the first 10 rows of a
33-row one. Both are 0 when the kernel computes every element alike. On an
AMD EPYC with OpenBLAS 0.3.21 this printed 4.8e-07 and 9.5e-07 under the
Haswell and Zen kernels, and 0 and 0 under Sandybridge (the finding in
docs/reproducibility.md, "OpenBLAS kernel pinning").
"""
import ctypes

import numpy as np

LIB = ctypes.CDLL("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
CBLAS_ROW_MAJOR, CBLAS_NO_TRANS = 101, 111


def sgemm(a, b):
    m, k = a.shape
    n = b.shape[1]
    c = np.zeros((m, n), np.float32)
    ptr = ctypes.POINTER(ctypes.c_float)
    LIB.cblas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, m, n, k, ctypes.c_float(1.0),
                    a.ctypes.data_as(ptr), k, b.ctypes.data_as(ptr), n, ctypes.c_float(0.0),
                    c.ctypes.data_as(ptr), n)
    return c


def main():
    rng = np.random.default_rng(4)
    columns = rng.standard_normal((8, 40)).astype(np.float32)
    w = np.ascontiguousarray(np.tile(columns, (1, 5)))  # [8, 200]: each column five times
    x = rng.standard_normal((33, 8)).astype(np.float32)
    c = sgemm(x, w)
    print("identical columns 40 apart, max difference:", np.abs(c[:, :40] - c[:, 40:80]).max())
    c10 = sgemm(np.ascontiguousarray(x[:10]), w)
    print("10 rows vs the first 10 of 33, max difference:", np.abs(c10 - c[:10]).max())


if __name__ == "__main__":
    main()
