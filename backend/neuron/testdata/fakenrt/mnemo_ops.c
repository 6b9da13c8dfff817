/* mnemo_ops.c: the fake's arithmetic for mnemo's backend operations
 * (backend/ops.go), included by fakenrt.c.
 *
 * A NEFF stand-in runs one operation with the manifest line
 *
 *	op mnemo KIND key=value ...
 *
 * KIND is a backend.Op name (matmul rmsnorm add swiglu embed rope kvwrite
 * attention gather) and the keys are the Spec fields that op reads: M N K
 * w (weight format name, as package format prints it) bias eps heads kvheads
 * hd bt blocks seqs maxb kv (f32|bf16) and, for rope, dims base style
 * (normal|neox) factor low high orig. The model's tensors are found by the
 * names backend.Signature gives the op's parameters; in-place buffers are
 * the "X.must_alias_input" input and the output "X". Weight matrices are
 * u8 tensors holding the format's host encoding (format.RowBytes per row,
 * NVFP4's float32 tensor scale at the end).
 *
 * The numbers follow package kernels/format's decoders exactly and the CPU
 * backend's kernels in float32 (RMSNorm sums squares in double; matmul
 * accumulates in double, which is closer to the exact product than any
 * float32 kernel). Bad data (an id, slot, row or position out of range, a
 * malformed sequence) returns NRT_EXEC_OOB or NRT_EXEC_BAD_INPUT before
 * anything is written, except for embed and gather, whose outputs are
 * unspecified on error. */

static long mn_row_bytes(int f, long k)
{
	long n = k / wfmt[f].be * wfmt[f].bb;
	return f == WF_FP8 ? n + 4 : n;
}

static float f32_of_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static float rd_f32(const unsigned char *p, size_t i)
{
	float f;
	memcpy(&f, p + 4 * i, 4);
	return f;
}

static void wr_f32(unsigned char *p, size_t i, float f) { memcpy(p + 4 * i, &f, 4); }

static int32_t rd_i32(const unsigned char *p, size_t i)
{
	int32_t v;
	memcpy(&v, p + 4 * i, 4);
	return v;
}

static float e2m1(unsigned c)
{
	static const float t[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
	float v = t[c & 7];
	return c & 8 ? -v : v;
}

static float e8m0(unsigned char s)
{
	if (s == 0xFF)
		return NAN;
	if (s == 0)
		return f32_of_bits(0x00400000);
	return f32_of_bits((uint32_t)s << 23);
}

static uint16_t to_bf16(float x)
{
	uint32_t b;
	memcpy(&b, &x, 4);
	if ((b & 0x7FFFFFFF) > 0x7F800000)
		return (uint16_t)(b >> 16) | 0x0040;
	b += 0x7FFF + ((b >> 16) & 1);
	return (uint16_t)(b >> 16);
}

/* dequant_row decodes one row of k elements of format f, as
 * format.DequantizeRow does. */
static void dequant_row(int f, const unsigned char *src, long k, float *dst, float ts)
{
	long nb = k / wfmt[f].be, bb = wfmt[f].bb;
	switch (f) {
	case WF_F32:
		for (long i = 0; i < k; i++)
			dst[i] = rd_f32(src, i);
		return;
	case WF_F16:
	case WF_BF16:
		for (long i = 0; i < k; i++) {
			uint16_t h;
			memcpy(&h, src + 2 * i, 2);
			dst[i] = f == WF_F16 ? (float)half_to_double(h) : f32_of_bits((uint32_t)h << 16);
		}
		return;
	case WF_FP8: {
		float scale = rd_f32(src + k, 0);
		for (long i = 0; i < k; i++)
			dst[i] = (float)e4m3fn_decode(src[i]) * scale;
		return;
	}
	}
	if (ts == 0)
		ts = 1;
	for (long b = 0; b < nb; b++) {
		const unsigned char *s = src + b * bb;
		float *d = dst + b * wfmt[f].be;
		switch (f) {
		case WF_MXFP8:
		case WF_MXFP8E5:
		case WF_MXFP4: {
			if (s[0] == 0xFF) {
				for (int j = 0; j < 32; j++)
					d[j] = NAN;
				break;
			}
			float sc = e8m0(s[0]);
			if (f == WF_MXFP4) {
				for (int j = 0; j < 16; j++) {
					d[j] = e2m1(s[1 + j] & 0xF) * sc;
					d[j + 16] = e2m1(s[1 + j] >> 4) * sc;
				}
			} else {
				for (int j = 0; j < 32; j++)
					d[j] = (float)(f == WF_MXFP8 ? e4m3fn_decode(s[1 + j]) : e5m2_decode(s[1 + j])) * sc;
			}
			break;
		}
		case WF_NVFP4: {
			if ((s[0] & 0x80) || s[0] == 0x7F) {
				for (int j = 0; j < 16; j++)
					d[j] = NAN;
				break;
			}
			float sc = (float)e4m3fn_decode(s[0]);
			for (int j = 0; j < 8; j++) {
				d[j] = e2m1(s[1 + j] & 0xF) * sc * ts;
				d[j + 8] = e2m1(s[1 + j] >> 4) * sc * ts;
			}
			break;
		}
		case WF_Q8_0:
		case WF_Q4_0: {
			uint16_t h;
			memcpy(&h, s, 2);
			float dd = (float)half_to_double(h);
			if (f == WF_Q8_0) {
				for (int j = 0; j < 32; j++)
					d[j] = (float)(int8_t)s[2 + j] * dd;
			} else {
				for (int j = 0; j < 16; j++) {
					d[j] = (float)((int)(s[2 + j] & 0xF) - 8) * dd;
					d[j + 16] = (float)((int)(s[2 + j] >> 4) - 8) * dd;
				}
			}
			break;
		}
		}
	}
}

/* mn_role finds the tensor called name with the given usage and byte size;
 * -1 if it is missing or does not match. */
static int mn_role(nrt_model_t *m, const char *name, int usage, size_t size)
{
	int i = find_tensor(m, name);
	if (i < 0 || m->t[i].usage != usage || m->t[i].size != size)
		return -1;
	return i;
}

static int mn_kv(const char *v, long *out)
{
	if (strcmp(v, "f32") == 0)
		*out = 0;
	else if (strcmp(v, "bf16") == 0)
		*out = 1;
	else
		return -1;
	return 0;
}

/* mn_parse parses the words after "op mnemo" into p and resolves the
 * tensors. Returns 0 or -1. */
static int mn_parse(nrt_model_t *m, char **w, int nw, struct mparams *p)
{
	memset(p, 0, sizeof *p);
	p->w = -1;
	if (nw < 1)
		return -1;
	for (int k = 1; k < (int)(sizeof mn_kinds / sizeof mn_kinds[0]); k++)
		if (strcmp(w[0], mn_kinds[k]) == 0)
			p->kind = k;
	if (!p->kind)
		return -1;
	for (int i = 1; i < nw; i++) {
		char *eq = strchr(w[i], '=');
		if (!eq)
			return -1;
		*eq = 0;
		const char *k = w[i], *v = eq + 1;
		struct {
			const char *name;
			long *l;
			double *d;
		} keys[] = {
			{"M", &p->M, 0},	 {"N", &p->N, 0},	{"K", &p->K, 0},	  {"bias", &p->bias, 0},
			{"heads", &p->heads, 0}, {"kvheads", &p->kvheads, 0}, {"hd", &p->hd, 0},	  {"bt", &p->bt, 0},
			{"blocks", &p->blocks, 0}, {"seqs", &p->seqs, 0},   {"maxb", &p->maxb, 0}, {"dims", &p->dims, 0},
			{"orig", &p->orig, 0},   {"eps", 0, &p->eps},	{"base", 0, &p->base},   {"factor", 0, &p->factor},
			{"low", 0, &p->low},	 {"high", 0, &p->high},
		};
		int found = 0;
		for (size_t j = 0; j < sizeof keys / sizeof keys[0] && !found; j++) {
			if (strcmp(k, keys[j].name) != 0)
				continue;
			found = 1;
			char *end;
			if (keys[j].l)
				*keys[j].l = strtol(v, &end, 10);
			else
				*keys[j].d = strtod(v, &end);
			if (*end)
				return -1;
		}
		if (found)
			continue;
		if (strcmp(k, "w") == 0) {
			for (int f = 0; f < WF_COUNT; f++)
				if (strcmp(v, wfmt[f].name) == 0)
					p->w = f;
			if (p->w < 0)
				return -1;
		} else if (strcmp(k, "kv") == 0) {
			if (mn_kv(v, &p->kvbf16))
				return -1;
		} else if (strcmp(k, "style") == 0) {
			if (strcmp(v, "neox") == 0)
				p->neox = 1;
			else if (strcmp(v, "normal") != 0)
				return -1;
		} else {
			return -1;
		}
	}
	/* Resolve and size-check the tensors. */
	const size_t F = 4;
	long M = p->M, N = p->N, K = p->K;
	size_t kvw = (size_t)p->kvheads * p->hd, cache = (size_t)p->blocks * p->bt * kvw * (p->kvbf16 ? 2 : 4);
	struct {
		const char *name;
		size_t size;
	} in[MN_MAX_ROLES], out[2];
	int nin = 0, nout = 0;
#define IN(n, s) (in[nin].name = (n), in[nin].size = (s), nin++)
#define OUT(n, s) (out[nout].name = (n), out[nout].size = (s), nout++)
	if (M <= 0)
		return -1;
	switch (p->kind) {
	case MN_MATMUL:
	case MN_EMBED: {
		if (p->w < 0 || N <= 0 || K <= 0 || K % wfmt[p->w].be)
			return -1;
		size_t wb = (size_t)N * mn_row_bytes(p->w, K) + (p->w == WF_NVFP4 ? 4 : 0);
		if (p->kind == MN_MATMUL) {
			IN("x", F * M * K);
			IN("w", wb);
			if (p->bias)
				IN("b", F * N);
			OUT("y", F * M * N);
		} else {
			IN("ids", F * M);
			IN("table", wb);
			OUT("y", F * M * K);
		}
		break;
	}
	case MN_RMSNORM:
		if (N <= 0 || !(p->eps > 0) || p->heads < 0 || (p->heads && N % p->heads))
			return -1;
		IN("x", F * M * N);
		IN("g", F * (p->heads ? N / p->heads : N));
		OUT("y", F * M * N);
		break;
	case MN_ADD:
	case MN_SWIGLU:
		if (N <= 0)
			return -1;
		IN(p->kind == MN_ADD ? "a" : "gate", F * M * N);
		IN(p->kind == MN_ADD ? "b" : "up", F * M * N);
		OUT("y", F * M * N);
		break;
	case MN_GATHER:
		if (N <= 0 || K <= 0)
			return -1;
		IN("x", F * M * N);
		IN("idx", F * K);
		OUT("y", F * K * N);
		break;
	case MN_ROPE:
		if (p->heads <= 0 || p->hd <= 0 || p->dims <= 0 || p->dims % 2 || p->dims > p->hd || !(p->base > 1))
			return -1;
		IN("x.must_alias_input", F * M * p->heads * p->hd);
		IN("pos", F * M);
		OUT("x", F * M * p->heads * p->hd);
		break;
	case MN_KVWRITE:
		if (kvw == 0 || p->bt <= 0 || p->blocks <= 0)
			return -1;
		IN("k", F * M * kvw);
		IN("v", F * M * kvw);
		IN("slot", F * M);
		IN("kcache.must_alias_input", cache);
		IN("vcache.must_alias_input", cache);
		OUT("kcache", cache);
		OUT("vcache", cache);
		break;
	case MN_ATTENTION:
		if (kvw == 0 || p->bt <= 0 || p->blocks <= 0 || p->heads <= 0 || p->heads % p->kvheads || p->seqs <= 0 ||
		    p->maxb <= 0)
			return -1;
		IN("q", F * M * p->heads * p->hd);
		IN("kcache", cache);
		IN("vcache", cache);
		IN("table", F * p->seqs * p->maxb);
		IN("seq", F * p->seqs * 3);
		OUT("o", F * M * p->heads * p->hd);
		break;
	}
#undef IN
#undef OUT
	for (int i = 0; i < nin; i++)
		if ((p->in[i] = mn_role(m, in[i].name, 0, in[i].size)) < 0)
			return -1;
	for (int i = 0; i < nout; i++)
		if ((p->out[i] = mn_role(m, out[i].name, 1, out[i].size)) < 0)
			return -1;
	p->nin = nin;
	p->nout = nout;
	return 0;
}

static void mn_rope_freqs(const struct mparams *p, double *f)
{
	long half = p->dims / 2;
	for (long i = 0; i < half; i++)
		f[i] = pow(p->base, -2 * (double)i / (double)p->dims);
	if (p->factor == 0)
		return;
	double lowWave = (double)p->orig / p->low, highWave = (double)p->orig / p->high;
	for (long i = 0; i < half; i++) {
		double freq = f[i], wave = 2 * M_PI / freq;
		if (wave < highWave)
			continue;
		if (wave > lowWave) {
			f[i] = freq / p->factor;
		} else {
			double smooth = ((double)p->orig / wave - p->low) / (p->high - p->low);
			f[i] = (1 - smooth) * freq / p->factor + smooth * freq;
		}
	}
}

static float kv_get(const unsigned char *c, int bf16, size_t i)
{
	if (!bf16)
		return rd_f32(c, i);
	uint16_t h;
	memcpy(&h, c + 2 * i, 2);
	return f32_of_bits((uint32_t)h << 16);
}

static int mn_attention(const struct mparams *p, unsigned char **ptr)
{
	const unsigned char *q = ptr[p->in[0]], *kc = ptr[p->in[1]], *vc = ptr[p->in[2]];
	const unsigned char *table = ptr[p->in[3]], *seq = ptr[p->in[4]];
	unsigned char *o = ptr[p->out[0]];
	long M = p->M, H = p->heads, KVH = p->kvheads, hd = p->hd, bt = p->bt, width = H * hd, kvw = KVH * hd;
	int *owner = malloc(M * sizeof *owner);
	for (long r = 0; r < M; r++)
		owner[r] = -1;
	for (long s = 0; s < p->seqs; s++) {
		long first = rd_i32(seq, 3 * s), n = rd_i32(seq, 3 * s + 1), total = rd_i32(seq, 3 * s + 2);
		if (n == 0)
			continue;
		if (n < 0 || first < 0 || first + n > M || total < n || total > p->maxb * bt) {
			free(owner);
			return NRT_EXEC_BAD_INPUT;
		}
		for (long j = 0; j < (total + bt - 1) / bt; j++) {
			int32_t b = rd_i32(table, s * p->maxb + j);
			if (b < 0 || b >= p->blocks) {
				free(owner);
				return NRT_EXEC_OOB;
			}
		}
		for (long r = first; r < first + n; r++) {
			if (owner[r] >= 0) {
				free(owner);
				return NRT_EXEC_BAD_INPUT;
			}
			owner[r] = (int)s;
		}
	}
	float *kr = malloc(2 * kvw * sizeof(float)), *vr = kr + kvw;
	float *acc = malloc((width + 2 * H) * sizeof(float)), *mx = acc + width, *sum = mx + H;
	float scale = (float)(1 / sqrt((double)hd));
	long group = H / KVH;
	for (long r = 0; r < M; r++) {
		int s = owner[r];
		if (s < 0) {
			for (long i = 0; i < width; i++)
				wr_f32(o, r * width + i, 0);
			continue;
		}
		long first = rd_i32(seq, 3 * s), n = rd_i32(seq, 3 * s + 1), total = rd_i32(seq, 3 * s + 2);
		long ctx = total - n + (r - first) + 1;
		for (long i = 0; i < width; i++)
			acc[i] = 0;
		for (long h = 0; h < H; h++) {
			mx[h] = -INFINITY;
			sum[h] = 0;
		}
		for (long pos = 0; pos < ctx; pos++) {
			size_t off = ((size_t)rd_i32(table, s * p->maxb + pos / bt) * bt + pos % bt) * kvw;
			for (long i = 0; i < kvw; i++) {
				kr[i] = kv_get(kc, p->kvbf16, off + i);
				vr[i] = kv_get(vc, p->kvbf16, off + i);
			}
			for (long h = 0; h < H; h++) {
				long g = h / group;
				float sc = 0;
				for (long d = 0; d < hd; d++)
					sc += rd_f32(q, r * width + h * hd + d) * kr[g * hd + d];
				sc *= scale;
				float *ah = acc + h * hd;
				if (sc > mx[h]) {
					float c = (float)exp((double)(mx[h] - sc));
					sum[h] *= c;
					for (long d = 0; d < hd; d++)
						ah[d] *= c;
					mx[h] = sc;
				}
				float e = (float)exp((double)(sc - mx[h]));
				sum[h] += e;
				for (long d = 0; d < hd; d++)
					ah[d] += e * vr[g * hd + d];
			}
		}
		for (long h = 0; h < H; h++) {
			float inv = sum[h] == 0 ? 0 : 1 / sum[h];
			for (long d = 0; d < hd; d++)
				wr_f32(o, r * width + h * hd + d, sum[h] == 0 ? 0 : acc[h * hd + d] * inv);
		}
	}
	free(kr);
	free(acc);
	free(owner);
	return NRT_SUCCESS;
}

/* mn_run executes one parsed op on the bound tensor memory. */
static int mn_run(const struct mparams *p, unsigned char **ptr)
{
	long M = p->M, N = p->N, K = p->K;
	switch (p->kind) {
	case MN_MATMUL: {
		const unsigned char *x = ptr[p->in[0]], *w = ptr[p->in[1]];
		long rb = mn_row_bytes(p->w, K);
		float ts = p->w == WF_NVFP4 ? rd_f32(w + N * rb, 0) : 0;
		float *row = malloc(K * sizeof(float)), *y = malloc(M * N * sizeof(float));
		for (long j = 0; j < N; j++) {
			dequant_row(p->w, w + j * rb, K, row, ts);
			for (long i = 0; i < M; i++) {
				double acc = 0;
				for (long k = 0; k < K; k++)
					acc += (double)rd_f32(x, i * K + k) * (double)row[k];
				y[i * N + j] = (float)acc;
				if (p->bias)
					y[i * N + j] += rd_f32(ptr[p->in[2]], j);
			}
		}
		memcpy(ptr[p->out[0]], y, M * N * sizeof(float));
		free(row);
		free(y);
		return NRT_SUCCESS;
	}
	case MN_EMBED: {
		const unsigned char *ids = ptr[p->in[0]], *w = ptr[p->in[1]];
		long rb = mn_row_bytes(p->w, K);
		float ts = p->w == WF_NVFP4 ? rd_f32(w + N * rb, 0) : 0;
		float *row = malloc(K * sizeof(float));
		for (long i = 0; i < M; i++) {
			int32_t id = rd_i32(ids, i);
			if (id < 0 || id >= N) {
				free(row);
				return NRT_EXEC_OOB;
			}
			dequant_row(p->w, w + id * rb, K, row, ts);
			memcpy(ptr[p->out[0]] + i * K * 4, row, K * 4);
		}
		free(row);
		return NRT_SUCCESS;
	}
	case MN_RMSNORM: {
		const unsigned char *x = ptr[p->in[0]], *g = ptr[p->in[1]];
		unsigned char *y = ptr[p->out[0]];
		long seg = p->heads ? N / p->heads : N;
		for (long r = 0; r < M * N / seg; r++) {
			double ss = 0;
			for (long i = 0; i < seg; i++) {
				double v = rd_f32(x, r * seg + i);
				ss += v * v;
			}
			float inv = (float)(1 / sqrt(ss / (double)seg + (double)(float)p->eps));
			for (long i = 0; i < seg; i++)
				wr_f32(y, r * seg + i, rd_f32(x, r * seg + i) * inv * rd_f32(g, i));
		}
		return NRT_SUCCESS;
	}
	case MN_ADD:
	case MN_SWIGLU: {
		const unsigned char *a = ptr[p->in[0]], *b = ptr[p->in[1]];
		unsigned char *y = ptr[p->out[0]];
		for (long i = 0; i < M * N; i++) {
			float av = rd_f32(a, i), bv = rd_f32(b, i);
			wr_f32(y, i, p->kind == MN_ADD ? av + bv : av / (1 + (float)exp(-(double)av)) * bv);
		}
		return NRT_SUCCESS;
	}
	case MN_GATHER: {
		const unsigned char *x = ptr[p->in[0]], *idx = ptr[p->in[1]];
		for (long i = 0; i < K; i++) {
			int32_t r = rd_i32(idx, i);
			if (r < 0 || r >= M)
				return NRT_EXEC_OOB;
			memmove(ptr[p->out[0]] + i * N * 4, x + (size_t)r * N * 4, N * 4);
		}
		return NRT_SUCCESS;
	}
	case MN_ROPE: {
		unsigned char *x = ptr[p->out[0]];
		const unsigned char *pos = ptr[p->in[1]];
		long half = p->dims / 2, width = p->heads * p->hd;
		for (long i = 0; i < M; i++)
			if (rd_i32(pos, i) < 0)
				return NRT_EXEC_BAD_INPUT;
		double *f = malloc(half * sizeof(double));
		float *cs = malloc(2 * half * sizeof(float));
		mn_rope_freqs(p, f);
		for (long i = 0; i < M; i++) {
			double ps = rd_i32(pos, i);
			for (long j = 0; j < half; j++) {
				cs[2 * j] = (float)cos(ps * f[j]);
				cs[2 * j + 1] = (float)sin(ps * f[j]);
			}
			for (long h = 0; h < p->heads; h++) {
				size_t base = i * width + h * p->hd;
				for (long j = 0; j < half; j++) {
					long a = 2 * j, b = 2 * j + 1;
					if (p->neox)
						a = j, b = j + half;
					float x0 = rd_f32(x, base + a), x1 = rd_f32(x, base + b);
					wr_f32(x, base + a, x0 * cs[2 * j] - x1 * cs[2 * j + 1]);
					wr_f32(x, base + b, x0 * cs[2 * j + 1] + x1 * cs[2 * j]);
				}
			}
		}
		free(f);
		free(cs);
		return NRT_SUCCESS;
	}
	case MN_KVWRITE: {
		const unsigned char *k = ptr[p->in[0]], *v = ptr[p->in[1]], *slot = ptr[p->in[2]];
		unsigned char *kc = ptr[p->out[0]], *vc = ptr[p->out[1]];
		long kvw = p->kvheads * p->hd, limit = p->blocks * p->bt;
		for (long i = 0; i < M; i++) {
			int32_t s = rd_i32(slot, i);
			if (s < -1 || s >= limit)
				return NRT_EXEC_OOB;
		}
		for (long i = 0; i < M; i++) {
			int32_t s = rd_i32(slot, i);
			if (s < 0)
				continue;
			for (long e = 0; e < kvw; e++) {
				size_t at = (size_t)s * kvw + e;
				float kv = rd_f32(k, i * kvw + e), vv = rd_f32(v, i * kvw + e);
				if (p->kvbf16) {
					uint16_t kb = to_bf16(kv), vb = to_bf16(vv);
					memcpy(kc + 2 * at, &kb, 2);
					memcpy(vc + 2 * at, &vb, 2);
				} else {
					wr_f32(kc, at, kv);
					wr_f32(vc, at, vv);
				}
			}
		}
		return NRT_SUCCESS;
	}
	case MN_ATTENTION:
		return mn_attention(p, ptr);
	}
	return NRT_FAILURE;
}
