/* mnemo_ops.h: types of the fake's mnemo operations (see mnemo_ops.c),
 * included by fakenrt.c before its model struct. */
#ifndef MNEMO_OPS_H
#define MNEMO_OPS_H

enum { MN_MATMUL = 1, MN_RMSNORM, MN_ADD, MN_SWIGLU, MN_EMBED, MN_ROPE, MN_KVWRITE, MN_ATTENTION, MN_GATHER };

static const char *const mn_kinds[] = {"", "matmul", "rmsnorm", "add", "swiglu", "embed", "rope", "kvwrite", "attention", "gather"};

enum { WF_F32, WF_F16, WF_BF16, WF_FP8, WF_MXFP8, WF_MXFP8E5, WF_MXFP4, WF_NVFP4, WF_Q8_0, WF_Q4_0, WF_COUNT };

static const struct {
	const char *name;
	long be, bb; /* elements and bytes per block */
} wfmt[WF_COUNT] = {
	[WF_F32] = {"f32", 1, 4},	    [WF_F16] = {"f16", 1, 2},	  [WF_BF16] = {"bf16", 1, 2},
	[WF_FP8] = {"fp8", 1, 1},	    [WF_MXFP8] = {"mxfp8", 32, 33}, [WF_MXFP8E5] = {"mxfp8_e5m2", 32, 33},
	[WF_MXFP4] = {"mxfp4", 32, 17}, [WF_NVFP4] = {"nvfp4", 16, 9},  [WF_Q8_0] = {"q8_0", 32, 34},
	[WF_Q4_0] = {"q4_0", 32, 18},
};

#define MN_MAX_ROLES 8

struct mparams {
	int kind;
	long M, N, K, w, bias, heads, kvheads, hd, bt, blocks, seqs, maxb, kvbf16, dims, neox, orig;
	double eps, base, factor, low, high;
	int in[MN_MAX_ROLES], out[2]; /* model tensor index per role */
	int nin, nout;
};

#endif
