"""FP8 matmul for Trainium2 (NeuronCore-v3): y[M, N] = x[M, K] @ W[N, K]^T
for F8E4M3Row weights, on the Tensor Engine in double-row FP8 mode.

NOT RUN: this kernel has never been compiled or executed (no Neuron SDK or
Trainium was available); see README.md. The NumPy reference and the
weight-layout transform below run anywhere (`python3 fp8_matmul.py`).

Device weight layout "trn2_fp8_kn" (what the NEFF's input `w` holds):
  uint8 [K + 4, N]; row k < K holds, for every output column n, the Trn2
  float8_e4m3 code of W[n, k] / s[n]; rows K..K+3 hold the little-endian
  float32 bytes of s[n] = 2 * rowscale[n]. Trainium2's float8_e4m3 is the
  IEEE-style E4M3 (largest finite 240), so the OCP E4M3FN codes of the host
  encoding (largest 448) are halved; halving is exact except for the few
  smallest subnormals. mnemo's backend does not repack weights into this
  layout yet: manifest entries built from this kernel carry
  "weight_layout": "trn2_fp8_kn" and the backend reports them unsupported.

Activations are cast to float8_e4m3 by the DMA (f32 -> fp8, no scale), so
the kernel is accurate only for activations within E4M3's range; the
reference models that cast.
"""

import numpy as np

from formats import e4m3fn, fp8_host, fp8_rows

LAYOUT = "trn2_fp8_kn"


def trn2_layout(host, n, k):
    """Host F8E4M3Row bytes -> the kernel's uint8 [k+4, n] layout."""
    rows = np.frombuffer(host, dtype=np.uint8).reshape(n, k + 4)
    codes = rows[:, :k]
    scale = rows[:, k:].copy().view("<f4").reshape(n)
    half = e4m3fn(codes) / 2  # |v| <= 224: fits Trn2's E4M3
    half_codes = _encode_ieee_e4m3(half)
    out = np.empty((k + 4, n), dtype=np.uint8)
    out[:k] = half_codes.T
    out[k:] = (2 * scale).astype("<f4").view(np.uint8).reshape(n, 4).T
    return out


def _ieee_e4m3_table():
    c = np.arange(256)
    s = np.where(c & 0x80, -1.0, 1.0)
    e, m = (c >> 3) & 0xF, c & 7
    v = np.where(e == 0, np.ldexp(m.astype(np.float64), -9), np.ldexp(8.0 + m, e - 10))
    v = np.where(e == 15, np.nan, v)  # inf/NaN codes: never produced here
    return s * v


def _encode_ieee_e4m3(v):
    t = _ieee_e4m3_table()
    finite = np.where(np.isnan(t), np.inf, t)
    return np.argmin(np.abs(np.asarray(v, np.float64)[..., None] - finite), axis=-1).astype(np.uint8)


def decode_trn2_layout(w, k):
    """The kernel's layout -> W[N, K] float32 (for the reference)."""
    n = w.shape[1]
    vals = _ieee_e4m3_table()[w[:k]].T  # [n, k]
    scale = w[k:].T.copy().view("<f4").reshape(n, 1)
    return (vals * scale).astype(np.float32)


def reference(x, w, k):
    """What the kernel computes: fp8-cast activations times the layout's
    weights, accumulated in float32."""
    xq = _ieee_e4m3_table()[_encode_ieee_e4m3(np.clip(x, -240, 240))].astype(np.float32)
    return xq @ decode_trn2_layout(w, k).T


def kernel():
    """Returns the @nki.jit kernel (imports nki only when asked)."""
    import nki
    import nki.isa as nisa
    import nki.language as nl

    @nki.jit
    def fp8_matmul(x, w):
        M, K = x.shape
        N = w.shape[1]
        TM, TN, TK = 128, 512, 256  # double_row contracts 2 x 128 rows per pass
        assert M <= TM and N % TN == 0 and K % TK == 0
        y = nl.ndarray((M, N), dtype=nl.float32, buffer=nl.shared_hbm)
        for n0 in nl.affine_range(N // TN):
            acc = nl.ndarray((M, TN), dtype=nl.float32, buffer=nl.psum)
            for k0 in nl.affine_range(K // TK):
                # Stationary: x^T tile [128, 2, M], element (p, j, m) = x[m, k0 + 128j + p],
                # cast f32 -> fp8 by the DMA. (Unverified: the [128, 2, F] operand shape
                # of double_row; any split works if both operands use the same one.)
                xt = nl.ndarray((128, 2, M), dtype=nl.float8_e4m3, buffer=nl.sbuf)
                nisa.dma_copy(dst=xt, src=x.ap(pattern=[[1, 128], [128, 2], [K, M]], offset=k0 * TK))
                # Moving: weight codes [128, 2, TN], element (p, j, n) = w[k0 + 128j + p, n0*TN + n].
                wt = nl.ndarray((128, 2, TN), dtype=nl.float8_e4m3, buffer=nl.sbuf)
                nisa.dma_copy(dst=wt, src=w.ap(dtype=nl.float8_e4m3, pattern=[[N, 128], [128 * N, 2], [1, TN]],
                                               offset=k0 * TK * N + n0 * TN))
                nisa.nc_matmul(dst=acc, stationary=xt, moving=wt, perf_mode=nisa.matmul_perf_mode.double_row)
            # Column scales s[n] (rows K..K+3 as float32), broadcast over the M partitions.
            sc = nl.ndarray((M, TN), dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=sc, src=w.ap(dtype=nl.float32, pattern=[[0, M], [1, TN]], offset=(K * N) // 4 + n0 * TN))
            out = nl.ndarray((M, TN), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_tensor(dst=out, data1=acc, data2=sc, op=nl.multiply)
            nisa.dma_copy(dst=y[0:M, n0 * TN:(n0 + 1) * TN], src=out)
        return y

    return fp8_matmul


def check(m=8, n=512, k=256, seed=0, run=None):
    """Checks the layout transform exactly against formats.fp8_rows and,
    given run(kernel, x, w) -> y (device or NKI simulator), the kernel
    against the reference."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32)
    host = fp8_host(w)
    dec = fp8_rows(host, n, k)
    lay = trn2_layout(host, n, k)
    back = decode_trn2_layout(lay, k)
    err = np.abs(back - dec).max() / np.abs(dec).max()
    assert err < 1e-2, f"layout transform error {err}"  # only halved subnormals move
    x = rng.standard_normal((m, k)).astype(np.float32)
    ref = reference(x, lay, k)
    exact = x @ dec.T
    rel = np.abs(ref - exact).max() / np.abs(exact).max()
    assert rel < 0.1, f"fp8 activations drift {rel} from the exact product"
    if run is not None:
        got = run(kernel(), x, lay)
        np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max())
    return rel


if __name__ == "__main__":
    print(f"fp8_matmul reference check passed (fp8 activations vs exact: {check():.3g} relative)")
