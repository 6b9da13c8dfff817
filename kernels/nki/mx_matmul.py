"""MX matmul for Trainium3 (NeuronCore-v4): y[M, N] = x[M, K] @ W[N, K]^T
with MXFP4 weights, activations quantized to MXFP8 on device with
quantize_mx, both multiplied by nc_matmul_mx (dequantization fused).

NOT RUN: this kernel has never been compiled or executed (no Neuron SDK or
Trainium3 was available); see README.md. The NumPy reference and the
weight-layout transform run anywhere (`python3 mx_matmul.py`).

Matmul-MX contracts 512 elements per pass: 128 partitions x 4 elements
packed in one _x4 value, and one E8M0 scale covers 8 partitions x 4 packed
elements. Those 32 elements need not be contiguous in K, because any
permutation of the contraction index leaves the product unchanged if both
operands use it. So each OCP block of 32 consecutive k (mnemo's MXFP4 and
MXF8E4M3 host encodings) is placed on one hardware group: within a K tile
of 512, element k = 32j + 8q + i (block j < 16, q < 4, i < 8) goes to
partition p = 8j + i, packed slot q. Weights keep their exact codes and
scales; activations are interleaved the same way before quantize_mx.

Device weight layout "trn3_mx_kn" (the NEFF's input `w`, bytes):
  data   [K/4, N] of x4 values (uint16 for MXFP4: slot q in bits 4q..4q+3;
         uint32 for MXFP8: slot q in byte q), row t*128 + p of K tile t;
  scales [K/32, N] uint8 E8M0, row t*16 + j for block j of tile t.
Unverified: the nibble/byte order of slots inside an _x4 value and the
scale placement (partition 32*(j//4) + j%4 of the quadrant, read from the
MX deep-dive's description). mnemo's backend does not repack weights into
this layout yet; manifest entries built from it carry "weight_layout":
"trn3_mx_kn" and the backend reports them unsupported.
"""

import numpy as np

from formats import e2m1, e4m3fn, e8m0, mxfp4_rows

LAYOUT = "trn3_mx_kn"


def _perm(k):
    """perm[t*512 + 4*p + q] = the k placed at partition p, slot q of tile t."""
    out = np.empty(k, dtype=np.int64)
    for t in range(k // 512):
        for j in range(16):
            for q in range(4):
                for i in range(8):
                    out[t * 512 + 4 * (8 * j + i) + q] = t * 512 + 32 * j + 8 * q + i
    return out


def mxfp4_codes(host, n, k):
    """Host MXFP4 bytes -> element codes [n, k] (uint8 nibbles) and E8M0
    scales [n, k/32]."""
    blocks = np.frombuffer(host, dtype=np.uint8).reshape(n, k // 32, 17)
    codes = np.concatenate([blocks[:, :, 1:] & 0xF, blocks[:, :, 1:] >> 4], axis=2).reshape(n, k)
    return codes, blocks[:, :, 0]


def trn3_layout(host, n, k):
    """Host MXFP4 bytes -> the kernel's layout (data bytes, then scales)."""
    assert k % 512 == 0
    codes, scales = mxfp4_codes(host, n, k)
    c = codes[:, _perm(k)].reshape(n, k // 4, 4).astype(np.uint16)
    packed = c[:, :, 0] | c[:, :, 1] << 4 | c[:, :, 2] << 8 | c[:, :, 3] << 12  # [n, k/4]
    return np.concatenate([packed.T.astype("<u2").view(np.uint8).reshape(-1), scales.T.reshape(-1)])


def decode_trn3_layout(w, n, k):
    """The kernel's layout -> W[n, k] float32 in natural k order."""
    data = w[: k // 4 * n * 2].view("<u2").reshape(k // 4, n).T  # [n, k/4]
    scales = w[k // 4 * n * 2:].reshape(k // 32, n).T  # [n, k/32]
    codes = np.stack([(data >> (4 * q)) & 0xF for q in range(4)], axis=2).reshape(n, k)
    natural = np.empty_like(codes)
    natural[:, _perm(k)] = codes
    return e2m1(natural) * np.repeat(e8m0(scales), 32, axis=1)


def quantize_mx8_ref(x):
    """OCP MXFP8 (E4M3) quantization of x [m, k] in blocks of 32 along k:
    scale 2^(floor(log2 amax) - 8), elements rounded to E4M3FN. A stand-in
    for quantize_mx, whose exact rounding is not documented."""
    m, k = x.shape
    b = x.reshape(m, k // 32, 32).astype(np.float64)
    amax = np.abs(b).max(axis=2, keepdims=True)
    e = np.floor(np.log2(np.where(amax > 0, amax, 1))) - 8
    scale = np.ldexp(1.0, e.astype(np.int64))
    table = e4m3fn(np.arange(256, dtype=np.uint8)).astype(np.float64)
    finite = np.sort(table[np.isfinite(table)])
    v = np.clip(b / scale, -448, 448)
    idx = np.clip(np.searchsorted(finite, v), 1, len(finite) - 1)
    lo, hi = finite[idx - 1], finite[idx]
    q = np.where(np.abs(v - lo) <= np.abs(hi - v), lo, hi)
    return (q * scale).reshape(m, k).astype(np.float32)


def reference(x, w, n, k):
    return quantize_mx8_ref(x) @ decode_trn3_layout(w, n, k).T


def kernel():
    """Returns the @nki.jit kernel for MXFP4 weights (imports nki lazily)."""
    import nki
    import nki.isa as nisa
    import nki.language as nl

    @nki.jit
    def mx_matmul(x, w):
        M, K = x.shape
        N = w.shape[0] * 32 // (K * 17)  # w holds K*N*17/32 bytes
        TN, KT = 128, 512
        assert M <= 512 and N % TN == 0 and K % KT == 0
        data = w.ap(dtype=nl.float4_e2m1fn_x4, pattern=[[N, K // 4], [1, N]], offset=0)
        y = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
        for n0 in nl.affine_range(N // TN):
            acc = nl.ndarray((TN, M), dtype=nl.float32, buffer=nl.psum)
            for t in nl.affine_range(K // KT):
                # Activations, interleaved: (p, f, q) = x[f, t*512 + 32*(p//8) + 8q + p%8], cast to bf16.
                xi = nl.ndarray((128, M, 4), dtype=nl.bfloat16, buffer=nl.sbuf)
                for j in nl.static_range(16):
                    nisa.dma_copy(dst=xi[8 * j:8 * j + 8, :, :],
                                  src=x.ap(pattern=[[1, 8], [K, M], [8, 4]], offset=t * KT + 32 * j))
                xq = nl.ndarray((128, M), dtype=nl.float8_e4m3fn_x4, buffer=nl.sbuf)
                xs = nl.ndarray((128, M), dtype=nl.uint8, buffer=nl.sbuf)
                nisa.quantize_mx(src=xi.reshape((128, 4 * M)), dst=xq, dst_scale=xs)
                # Weights: a [128, TN] x4 tile and its 16 scale rows, scattered to
                # partition 32*(j//4) + j%4 (unverified placement).
                wq = nl.ndarray((128, TN), dtype=nl.float4_e2m1fn_x4, buffer=nl.sbuf)
                nisa.dma_copy(dst=wq, src=data[t * 128:(t + 1) * 128, n0 * TN:(n0 + 1) * TN])
                ws = nl.ndarray((128, TN), dtype=nl.uint8, buffer=nl.sbuf)
                nisa.memset(dst=ws, value=0)
                for j in nl.static_range(16):
                    p = 32 * (j // 4) + j % 4
                    nisa.dma_copy(dst=ws[p:p + 1, :],
                                  src=w.ap(pattern=[[N, 1], [1, TN]], offset=K // 4 * N * 2 + (t * 16 + j) * N + n0 * TN))
                nisa.nc_matmul_mx(dst=acc, stationary=wq, moving=xq, stationary_scale=ws, moving_scale=xs)
            out = nl.ndarray((TN, M), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=out, src=acc)
            nisa.dma_copy(dst=y.ap(pattern=[[1, TN], [N, M]], offset=n0 * TN), src=out)  # transposed store
        return y

    return mx_matmul


def check(m=8, n=128, k=1024, seed=0, run=None):
    """Checks the layout transform exactly against formats.mxfp4_rows and,
    given run(kernel, x, w) -> y (device or simulator), the kernel against
    the reference."""
    rng = np.random.default_rng(seed)
    # Random valid MXFP4 host bytes: scales near 2^0, any element codes.
    blocks = rng.integers(0, 256, size=(n, k // 32, 17), dtype=np.uint8)
    blocks[:, :, 0] = rng.integers(120, 130, size=(n, k // 32), dtype=np.uint8)
    host = blocks.tobytes()
    dec = mxfp4_rows(host, n, k)
    lay = trn3_layout(host, n, k)
    assert lay.size == len(host)
    np.testing.assert_array_equal(decode_trn3_layout(lay, n, k), dec)
    x = rng.standard_normal((m, k)).astype(np.float32)
    ref = reference(x, lay, n, k)
    exact = x @ dec.T
    rel = np.abs(ref - exact).max() / np.abs(exact).max()
    assert rel < 0.1, f"MXFP8 activations drift {rel} from the exact product"
    if run is not None:
        got = run(kernel(), x, lay)
        np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max())
    return rel


if __name__ == "__main__":
    print(f"mx_matmul reference check passed (MXFP8 activations vs exact: {check():.3g} relative)")
