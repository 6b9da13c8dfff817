"""NumPy decoders of mnemo's weight formats (package kernels/format), the
reference the NKI kernels are checked against, and the device layouts the
kernels take. Pure NumPy: runs anywhere."""

import numpy as np


def e4m3fn(codes):
    """OCP FP8 E4M3 "FN" codes -> float32: bias 7, subnormals, max 448,
    S.1111.111 is NaN, no infinities (format.E4M3Table)."""
    c = np.asarray(codes, dtype=np.uint8).astype(np.int32)
    s = np.where(c & 0x80, -1.0, 1.0)
    e = (c >> 3) & 0xF
    m = c & 7
    v = np.where(e == 0, np.ldexp(m.astype(np.float64), -9), np.ldexp((8 + m).astype(np.float64), e - 10))
    v = np.where((e == 15) & (m == 7), np.nan, v)
    return (s * v).astype(np.float32)


def e2m1(nibbles):
    """FP4 E2M1 codes (low 4 bits) -> float32 (format.E2M1Table)."""
    t = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)
    c = np.asarray(nibbles, dtype=np.uint8) & 0xF
    v = t[c & 7]
    return np.where(c & 8, -v, v).astype(np.float32)


def e8m0(scales):
    """E8M0 scale bytes -> float32: 2^(s-127); 0xFF is NaN (format.E8M0ToFloat32)."""
    s = np.asarray(scales, dtype=np.uint8).astype(np.int32)
    v = np.ldexp(np.float32(1), np.minimum(s, 254) - 127).astype(np.float32)
    return np.where(s == 0xFF, np.float32(np.nan), v).astype(np.float32)


def fp8_rows(host, n, k):
    """Decode F8E4M3Row weights: n rows of k codes then a float32 scale."""
    rows = np.frombuffer(host, dtype=np.uint8).reshape(n, k + 4)
    scale = rows[:, k:].copy().view("<f4").reshape(n, 1)
    return e4m3fn(rows[:, :k]) * scale


def mxfp4_rows(host, n, k):
    """Decode MXFP4 weights: per 32 elements one E8M0 byte then 16 bytes of
    nibbles; element j is the low nibble of byte j (j < 16) or the high
    nibble of byte j-16."""
    blocks = np.frombuffer(host, dtype=np.uint8).reshape(n, k // 32, 17)
    lo, hi = e2m1(blocks[:, :, 1:] & 0xF), e2m1(blocks[:, :, 1:] >> 4)
    vals = np.concatenate([lo, hi], axis=2) * e8m0(blocks[:, :, :1])
    return vals.reshape(n, k).astype(np.float32)


def quantize_e4m3fn(x):
    """Round float32 to the nearest E4M3FN value (ties to even), saturating
    at ±448; used to make test weights."""
    x = np.asarray(x, dtype=np.float64)
    table = e4m3fn(np.arange(256, dtype=np.uint8)).astype(np.float64)
    finite = np.where(np.isnan(table), np.inf, table)
    codes = np.argmin(np.abs(x[..., None] - finite), axis=-1).astype(np.uint8)
    return codes


def fp8_host(w):
    """Encode an [n, k] float32 matrix as F8E4M3Row host bytes."""
    n, k = w.shape
    amax = np.abs(w).max(axis=1, keepdims=True)
    scale = np.where(amax > 0, amax / 448.0, 1.0).astype(np.float32)
    codes = quantize_e4m3fn(w / scale)
    return np.concatenate([codes, scale.view(np.uint8).reshape(n, 4)], axis=1).tobytes()
