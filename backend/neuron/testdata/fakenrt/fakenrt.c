/*
 * fakenrt: a host-memory stand-in for libnrt.so.1, built by mnemo's Go tests
 * with the system C compiler (cc -shared -fPIC). It implements the libnrt C
 * API that mnemo binds with real ownership and state rules so the Go side is
 * tested against a library that notices misuse:
 *
 *   - a state machine (uninitialised, initialised, closed; re-init allowed);
 *   - cores chosen from NEURON_RT_VISIBLE_CORES / NEURON_RT_NUM_CORES at
 *     nrt_init, out of FAKE_NRT_TOTAL_CORES (default 4);
 *   - a handle registry: every model, tensor, set and info array is recorded,
 *     and freed objects stay quarantined until fake_nrt_reset, so any use of a
 *     stale handle (use after free, double free) returns NRT_INVALID_HANDLE
 *     and counts as misuse (FAKE_NRT_STRICT=1 aborts instead);
 *   - a per-core memory budget (FAKE_NRT_HBM_BYTES, default 1 GiB), bounds
 *     checks, refcounted slice storage, fresh memory filled with 0xA5;
 *   - NEFF stand-ins: the real 1024-byte NEFF header followed by a text
 *     manifest instead of the tar (see parse_manifest);
 *   - execute checks every model tensor is bound with the right size and that
 *     each "X.must_alias_input" input is the very tensor bound to output "X",
 *     then runs the manifest's ops with real arithmetic (f32 and FP8 E4M3FN
 *     matmul among them, and every mnemo backend operation: mnemo_ops.c);
 *   - fault injection by function name and call number (fake_nrt_inject or
 *     FAKE_NRT_INJECT="fn:status:nth;...").
 *
 * Build variants: -DFAKE_NO_STATUS_STR omits nrt_get_status_as_str,
 * -DFAKE_LEGACY_DTYPES emulates libnrt 2.27 (sequential dtype codes),
 * -DFAKE_OMIT_EXECUTE omits nrt_execute (for the missing-symbol test).
 */
#define _GNU_SOURCE
#include "nrt_fake.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_VNC 64
#define MAX_MODEL_TENSORS 64
#define MAX_OPS 64
#define MAX_INJECT 32
#define TRACE_CAP (64 * 1024)

/* ---- global state ---------------------------------------------------- */

enum { ST_UNINIT = 0, ST_INIT = 1, ST_CLOSED = 2 };
enum { K_MODEL = 1, K_TENSOR, K_SET, K_INFO };

struct reg_entry {
	void *p;
	int kind;
	int alive;
};

struct inject {
	char fn[64];
	int status;
	int nth;
	int count;
	int active;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_state;
static struct reg_entry *g_reg;
static size_t g_nreg, g_capreg;
static struct inject g_inj[MAX_INJECT];
static int64_t g_misuse, g_leaks, g_inits, g_execs;
static uint32_t g_total = 4, g_visible;
static size_t g_used[MAX_VNC];
static size_t g_budget = (size_t)1 << 30;
static long g_timeout_ms;
static int g_busy_mode;
static uint64_t g_ver[3];
static int g_dtype_mode;
static char g_trace[TRACE_CAP];
static size_t g_trace_len;

static void trace(const char *fn)
{
	size_t n = strlen(fn);
	if (g_trace_len + n + 2 > TRACE_CAP)
		return;
	memcpy(g_trace + g_trace_len, fn, n);
	g_trace_len += n;
	g_trace[g_trace_len++] = '\n';
	g_trace[g_trace_len] = 0;
}

static void misuse(const char *what)
{
	const char *strict = getenv("FAKE_NRT_STRICT");
	g_misuse++;
	if (strict && strcmp(strict, "1") == 0) {
		fprintf(stderr, "fakenrt: misuse: %s\n", what);
		abort();
	}
}

static int inject_hit(const char *fn)
{
	for (int i = 0; i < MAX_INJECT; i++) {
		struct inject *in = &g_inj[i];
		if (!in->active || strcmp(in->fn, fn) != 0)
			continue;
		in->count++;
		if (in->nth == 0)
			return in->status;
		if (in->count == in->nth) {
			in->active = 0;
			return in->status;
		}
	}
	return 0;
}

static int inject_add(const char *fn, int status, int nth)
{
	for (int i = 0; i < MAX_INJECT; i++) {
		struct inject *in = &g_inj[i];
		if (in->active)
			continue;
		snprintf(in->fn, sizeof in->fn, "%s", fn);
		in->status = status;
		in->nth = nth;
		in->count = 0;
		in->active = 1;
		return 0;
	}
	return -1;
}

/* parse_inject_env reads FAKE_NRT_INJECT = "fn:status:nth;fn:status:nth". */
static void parse_inject_env(void)
{
	const char *env = getenv("FAKE_NRT_INJECT");
	char buf[1024];
	if (!env || !*env)
		return;
	snprintf(buf, sizeof buf, "%s", env);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		char fn[64];
		int status, nth;
		if (sscanf(tok, "%63[^:]:%d:%d", fn, &status, &nth) == 3)
			inject_add(fn, status, nth);
	}
}

static void default_version(void)
{
#ifdef FAKE_LEGACY_DTYPES
	g_ver[0] = 2, g_ver[1] = 27, g_ver[2] = 0;
#else
	g_ver[0] = 2, g_ver[1] = 34, g_ver[2] = 10;
#endif
	g_dtype_mode = 0;
}

__attribute__((constructor)) static void fake_load(void)
{
	default_version();
	parse_inject_env();
}

static int gate(void)
{
	if (g_state == ST_UNINIT)
		return NRT_UNINITIALIZED;
	if (g_state == ST_CLOSED)
		return NRT_CLOSED;
	return NRT_SUCCESS;
}

static int version_below(uint64_t ma, uint64_t mi, uint64_t pa)
{
	if (g_ver[0] != ma)
		return g_ver[0] < ma;
	if (g_ver[1] != mi)
		return g_ver[1] < mi;
	return g_ver[2] < pa;
}

static void reg_add(void *p, int kind)
{
	for (size_t i = 0; i < g_nreg; i++) {
		if (g_reg[i].p == p) { /* cannot happen while quarantined */
			g_reg[i].kind = kind;
			g_reg[i].alive = 1;
			return;
		}
	}
	if (g_nreg == g_capreg) {
		g_capreg = g_capreg ? 2 * g_capreg : 256;
		g_reg = realloc(g_reg, g_capreg * sizeof *g_reg);
	}
	g_reg[g_nreg++] = (struct reg_entry){p, kind, 1};
}

/* reg_find returns the entry for p, or NULL if p was never handed out. */
static struct reg_entry *reg_find(const void *p)
{
	for (size_t i = 0; i < g_nreg; i++)
		if (g_reg[i].p == p)
			return &g_reg[i];
	return NULL;
}

/* live returns 1 if p is a live object of the kind, else counts misuse. */
static int live(const void *p, int kind, const char *what)
{
	struct reg_entry *e = reg_find(p);
	if (!e || e->kind != kind || !e->alive) {
		misuse(what);
		return 0;
	}
	return 1;
}

static void reg_kill(const void *p)
{
	struct reg_entry *e = reg_find(p);
	if (e)
		e->alive = 0;
}

/* ---- dtypes ------------------------------------------------------------ */

enum { FT_UNKNOWN, FT_F32, FT_F16, FT_BF16, FT_I8, FT_U8, FT_I16, FT_U16, FT_I32, FT_U32, FT_I64, FT_U64, FT_F32R,
       FT_F8E3, FT_F8E4, FT_F8E5, FT_COUNT };

static const struct {
	const char *name;
	size_t size;
	int legacy, v228;
} dtypes[FT_COUNT] = {
	[FT_UNKNOWN] = {"unknown", 0, 0, 0}, [FT_F32] = {"f32", 4, 1, 0xA},   [FT_F16] = {"f16", 2, 2, 0x7},
	[FT_BF16] = {"bf16", 2, 3, 0x6},     [FT_I8] = {"i8", 1, 4, 0x2},     [FT_U8] = {"u8", 1, 5, 0x3},
	[FT_I16] = {"i16", 2, 6, 0x4},       [FT_U16] = {"u16", 2, 7, 0x5},   [FT_I32] = {"i32", 4, 8, 0x8},
	[FT_U32] = {"u32", 4, 9, 0x9},       [FT_I64] = {"i64", 8, 10, 0xC},  [FT_U64] = {"u64", 8, 11, 0x1},
	[FT_F32R] = {"f32r", 4, 0, 0xB},     [FT_F8E3] = {"f8e3", 1, 0, 0xD}, [FT_F8E4] = {"f8e4", 1, 0, 0xE},
	[FT_F8E5] = {"f8e5", 1, 0, 0xF},
};

static int dtype_code(int ft)
{
	int legacy = g_dtype_mode == 1 || (g_dtype_mode == 0 && version_below(2, 30, 0));
	return legacy ? dtypes[ft].legacy : dtypes[ft].v228;
}

static double half_to_double(uint16_t h)
{
	int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
	double v;
	if (e == 0)
		v = ldexp(m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp(1024 + m, e - 25);
	return s ? -v : v;
}

/* e4m3fn_decode is OCP E4M3 "FN": bias 7, no infinities, S.1111.111 is NaN,
 * max 448. */
static double e4m3fn_decode(uint8_t b)
{
	int s = b >> 7, e = (b >> 3) & 0xF, m = b & 7;
	double v;
	if (e == 15 && m == 7)
		return NAN;
	v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
	return s ? -v : v;
}

static double e5m2_decode(uint8_t b)
{
	int s = b >> 7, e = (b >> 2) & 0x1F, m = b & 3;
	double v;
	if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = e == 0 ? ldexp(m, -16) : ldexp(4 + m, e - 17);
	return s ? -v : v;
}

static double ld(int ft, const unsigned char *p, size_t i)
{
	switch (ft) {
	case FT_F32:
	case FT_F32R: {
		float f;
		memcpy(&f, p + 4 * i, 4);
		return f;
	}
	case FT_F16: {
		uint16_t h;
		memcpy(&h, p + 2 * i, 2);
		return half_to_double(h);
	}
	case FT_BF16: {
		uint16_t h;
		uint32_t u;
		float f;
		memcpy(&h, p + 2 * i, 2);
		u = (uint32_t)h << 16;
		memcpy(&f, &u, 4);
		return f;
	}
	case FT_I8: return (int8_t)p[i];
	case FT_U8: return p[i];
	case FT_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
	case FT_U16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return v; }
	case FT_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
	case FT_U32: { uint32_t v; memcpy(&v, p + 4 * i, 4); return v; }
	case FT_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
	case FT_U64: { uint64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
	case FT_F8E4: return e4m3fn_decode(p[i]);
	case FT_F8E5: return e5m2_decode(p[i]);
	default: return 0;
	}
}

static void st(int ft, unsigned char *p, size_t i, double v)
{
	switch (ft) {
	case FT_F32:
	case FT_F32R: { float f = (float)v; memcpy(p + 4 * i, &f, 4); break; }
	case FT_I32: { int32_t x = (int32_t)v; memcpy(p + 4 * i, &x, 4); break; }
	case FT_U32: { uint32_t x = (uint32_t)v; memcpy(p + 4 * i, &x, 4); break; }
	case FT_I64: { int64_t x = (int64_t)v; memcpy(p + 8 * i, &x, 8); break; }
	case FT_I8: p[i] = (uint8_t)(int8_t)v; break;
	case FT_U8: p[i] = (uint8_t)v; break;
	default: break;
	}
}

/* ---- objects ----------------------------------------------------------- */

struct storage {
	size_t refs;
	size_t size;
	int vnc;
	unsigned char *data;
};

struct nrt_tensor {
	struct storage *st;
	size_t off, size;
	int set_refs;
	char name[64];
};

struct set_entry {
	char name[NRT_TENSOR_NAME_MAX];
	nrt_tensor_t *t;
};

struct fake_set {
	int n, cap;
	struct set_entry *e;
};

#include "mnemo_ops.h"

enum { OP_COPY = 1, OP_ADD, OP_SCALE, OP_MATMUL, OP_ARGMAX, OP_KV_APPEND, OP_NAN, OP_SLEEP, OP_FAIL, OP_MNEMO };

struct mtensor {
	char name[NRT_TENSOR_NAME_MAX];
	int usage, ft;
	uint32_t shape[8];
	uint32_t ndim;
	size_t size;
};

struct mop {
	int kind;
	int a, b, out;
	double k;
	long n;
	struct mparams mn; /* OP_MNEMO */
};

struct nrt_model {
	int vnc;
	size_t charged;
	int nt, nops;
	struct mtensor t[MAX_MODEL_TENSORS];
	struct mop ops[MAX_OPS];
	pthread_mutex_t mu;
};

static void storage_release(struct storage *s)
{
	if (--s->refs > 0)
		return;
	g_used[s->vnc] -= s->size;
	free(s->data);
	free(s);
}

static void tensor_kill(nrt_tensor_t *t)
{
	reg_kill(t);
	storage_release(t->st);
	t->st = NULL;
}

static void model_kill(nrt_model_t *m)
{
	reg_kill(m);
	g_used[m->vnc] -= m->charged;
	m->charged = 0;
}

static void set_kill(struct fake_set *s)
{
	for (int i = 0; i < s->n; i++)
		s->e[i].t->set_refs--;
	free(s->e);
	s->e = NULL;
	s->n = s->cap = 0;
	reg_kill(s);
}

static void info_kill(nrt_tensor_info_array_t *a)
{
	for (uint64_t i = 0; i < a->tensor_count; i++)
		free(a->tensor_array[i].shape);
	memset(a->tensor_array, 0x5A, a->tensor_count * sizeof(nrt_tensor_info_t));
	reg_kill(a);
}

/* ---- version, status, init/close ---------------------------------------- */

NRT_STATUS nrt_get_version(nrt_version_t *ver, size_t size)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_get_version");
	st = inject_hit("nrt_get_version");
	if (!st && (!ver || size < sizeof *ver))
		st = NRT_INVALID;
	if (!st) {
		memset(ver, 0, sizeof *ver);
		ver->rt_major = g_ver[0];
		ver->rt_minor = g_ver[1];
		ver->rt_patch = g_ver[2];
		snprintf(ver->rt_detail, sizeof ver->rt_detail, "fakenrt %llu.%llu.%llu", (unsigned long long)g_ver[0],
			 (unsigned long long)g_ver[1], (unsigned long long)g_ver[2]);
		snprintf(ver->git_hash, sizeof ver->git_hash, "fake");
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

#ifndef FAKE_NO_STATUS_STR
const char *nrt_get_status_as_str(NRT_STATUS status)
{
	switch (status) {
	case NRT_SUCCESS: return "fake: success";
	case NRT_FAILURE: return "fake: failure";
	case NRT_INVALID: return "fake: invalid";
	case NRT_INVALID_HANDLE: return "fake: invalid handle";
	case NRT_RESOURCE: return "fake: out of resources";
	case NRT_TIMEOUT: return "fake: timeout";
	case NRT_EXEC_NC_BUSY: return "fake: neuron core busy";
	case NRT_EXEC_COMPLETED_WITH_NUM_ERR: return "fake: completed with numerical errors";
	default: return NULL;
	}
}
#endif

/* parse_cores parses "3", "0-1", "3-5,6": contiguous, increasing, < total.
 * Returns the count or -1. */
static int parse_cores(const char *s, uint32_t total)
{
	long first = -1, last = -1;
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b;
		if (end == s || a < 0)
			return -1;
		b = a;
		s = end;
		if (*s == '-') {
			s++;
			b = strtol(s, &end, 10);
			if (end == s || b < a)
				return -1;
			s = end;
		}
		if (first < 0)
			first = a;
		else if (a != last + 1)
			return -1;
		last = b;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	if (first < 0 || last >= (long)total)
		return -1;
	return (int)(last - first + 1);
}

static uint32_t env_u32(const char *name, uint32_t def)
{
	const char *v = getenv(name);
	return v && *v ? (uint32_t)strtoul(v, NULL, 10) : def;
}

/* visible_from_env computes the visible core count from the environment,
 * or returns a status. */
static int visible_from_env(uint32_t *out)
{
	const char *vis = getenv("NEURON_RT_VISIBLE_CORES");
	uint32_t total = env_u32("FAKE_NRT_TOTAL_CORES", 4);
	if (total > MAX_VNC)
		total = MAX_VNC;
	g_total = total;
	if (vis && *vis) {
		int n = parse_cores(vis, total);
		if (n < 0)
			return NRT_FAILURE;
		*out = (uint32_t)n;
		return NRT_SUCCESS;
	}
	uint32_t n = env_u32("NEURON_RT_NUM_CORES", 0);
	if (n > total)
		return NRT_LOAD_NOT_ENOUGH_NC;
	*out = n ? n : total;
	return NRT_SUCCESS;
}

NRT_STATUS nrt_init(nrt_framework_type_t framework, const char *fw_version, const char *fal_version)
{
	int st;
	uint32_t vis = 0;
	pthread_mutex_lock(&g_mu);
	trace("nrt_init");
	st = inject_hit("nrt_init");
	if (!st && g_state == ST_INIT)
		st = NRT_FAILURE;
	if (!st && (framework != NRT_FRAMEWORK_TYPE_NO_FW || !fw_version || !fal_version))
		st = NRT_INVALID;
	if (!st)
		st = visible_from_env(&vis);
	if (!st) {
		const char *b = getenv("FAKE_NRT_HBM_BYTES");
		const char *busy = getenv("FAKE_NRT_BUSY");
		g_budget = b && *b ? (size_t)strtoull(b, NULL, 10) : (size_t)1 << 30;
		g_timeout_ms = (long)env_u32("NEURON_RT_EXEC_TIMEOUT", 0) * 1000;
		g_busy_mode = busy && strcmp(busy, "1") == 0;
		g_visible = vis;
		memset(g_used, 0, sizeof g_used);
		g_state = ST_INIT;
		g_inits++;
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

void nrt_close(void)
{
	pthread_mutex_lock(&g_mu);
	trace("nrt_close");
	if (g_state != ST_INIT) {
		pthread_mutex_unlock(&g_mu);
		return;
	}
	/* Live objects are leaks: count them and release them so later use of
	 * their handles is caught. Sets first (they reference tensors). */
	for (int pass = 0; pass < 4; pass++) {
		static const int order[4] = {K_SET, K_INFO, K_TENSOR, K_MODEL};
		for (size_t i = 0; i < g_nreg; i++) {
			struct reg_entry *e = &g_reg[i];
			if (!e->alive || e->kind != order[pass])
				continue;
			g_leaks++;
			switch (e->kind) {
			case K_SET: set_kill(e->p); break;
			case K_INFO: info_kill(e->p); break;
			case K_TENSOR: tensor_kill(e->p); break;
			case K_MODEL: model_kill(e->p); break;
			}
		}
	}
	g_state = ST_CLOSED;
	pthread_mutex_unlock(&g_mu);
}

static NRT_STATUS count_call(const char *fn, uint32_t *n, int total)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace(fn);
	st = inject_hit(fn);
	if (!st && !n)
		st = NRT_INVALID;
	if (!st) {
		if (total) {
			g_total = env_u32("FAKE_NRT_TOTAL_CORES", 4);
			*n = g_total;
		} else if (g_state == ST_INIT) {
			*n = g_visible;
		} else {
			st = visible_from_env(n);
		}
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_get_total_vnc_count(uint32_t *n) { return count_call("nrt_get_total_vnc_count", n, 1); }
NRT_STATUS nrt_get_visible_vnc_count(uint32_t *n) { return count_call("nrt_get_visible_vnc_count", n, 0); }

/* ---- NEFF stand-in ------------------------------------------------------ */

#define NEFF_HEADER 1024
#define OFF_HEADER_SIZE 8
#define OFF_DATA_SIZE 16
#define OFF_VERSION_MAJOR 24
#define OFF_BUILD_VERSION 40
#define OFF_LNC 552

static int find_tensor(nrt_model_t *m, const char *name)
{
	for (int i = 0; i < m->nt; i++)
		if (strcmp(m->t[i].name, name) == 0)
			return i;
	return -1;
}

static int parse_dtype(const char *s)
{
	for (int i = 1; i < FT_COUNT; i++)
		if (strcmp(dtypes[i].name, s) == 0)
			return i;
	return -1;
}

static size_t elems(const struct mtensor *t)
{
	size_t n = 1;
	for (uint32_t i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

#include "mnemo_ops.c"

/* parse_op parses the words after "op". Returns 0 or -1. */
static int parse_op(nrt_model_t *m, char **w, int nw)
{
	struct mop *op;
	if (m->nops == MAX_OPS || nw < 1)
		return -1;
	op = &m->ops[m->nops];
	memset(op, 0, sizeof *op);
	op->a = op->b = op->out = -1;
	const char *k = w[0];
	if (strcmp(k, "mnemo") == 0) {
		if (mn_parse(m, w + 1, nw - 1, &op->mn))
			return -1;
		op->kind = OP_MNEMO;
		m->nops++;
		return 0;
	}
	if (strcmp(k, "sleep_ms") == 0 && nw == 2) {
		op->kind = OP_SLEEP;
		op->n = strtol(w[1], NULL, 10);
	} else if (strcmp(k, "fail") == 0 && nw == 2) {
		op->kind = OP_FAIL;
		op->n = strtol(w[1], NULL, 10);
	} else if (strcmp(k, "nan") == 0 && nw == 3 && strcmp(w[1], "->") == 0) {
		op->kind = OP_NAN;
		op->out = find_tensor(m, w[2]);
	} else if ((strcmp(k, "copy") == 0 || strcmp(k, "argmax") == 0) && nw == 4 && strcmp(w[2], "->") == 0) {
		op->kind = k[0] == 'c' ? OP_COPY : OP_ARGMAX;
		op->a = find_tensor(m, w[1]);
		op->out = find_tensor(m, w[3]);
	} else if (nw == 5 && strcmp(w[3], "->") == 0) {
		if (strcmp(k, "add") == 0)
			op->kind = OP_ADD;
		else if (strcmp(k, "scale") == 0)
			op->kind = OP_SCALE;
		else if (strcmp(k, "matmul") == 0)
			op->kind = OP_MATMUL;
		else if (strcmp(k, "kv_append") == 0)
			op->kind = OP_KV_APPEND;
		else
			return -1;
		op->a = find_tensor(m, w[1]);
		if (op->kind == OP_SCALE) {
			op->k = strtod(w[2], NULL);
			op->b = 0;
		} else {
			op->b = find_tensor(m, w[2]);
		}
		op->out = find_tensor(m, w[4]);
	} else {
		return -1;
	}
	if (op->kind != OP_SLEEP && op->kind != OP_FAIL) {
		int need_b = op->kind == OP_ADD || op->kind == OP_MATMUL || op->kind == OP_KV_APPEND;
		if (op->out < 0 || m->t[op->out].usage != 1 || (op->kind != OP_NAN && op->a < 0) ||
		    (need_b && op->b < 0))
			return -1;
	}
	/* shape checks */
	struct mtensor *a = op->a >= 0 ? &m->t[op->a] : NULL, *b = op->b >= 0 && op->kind != OP_SCALE ? &m->t[op->b] : NULL,
		       *o = op->out >= 0 ? &m->t[op->out] : NULL;
	switch (op->kind) {
	case OP_COPY:
		if (a->size != o->size)
			return -1;
		break;
	case OP_ADD:
		if (elems(a) != elems(o) || elems(b) != elems(o))
			return -1;
		break;
	case OP_SCALE:
		if (elems(a) != elems(o))
			return -1;
		break;
	case OP_MATMUL:
		if (a->ndim != 2 || b->ndim != 2 || o->ndim != 2 || a->shape[1] != b->shape[0] ||
		    o->shape[0] != a->shape[0] || o->shape[1] != b->shape[1] || (o->ft != FT_F32))
			return -1;
		break;
	case OP_ARGMAX:
		if (a->ndim < 1 || o->ft != FT_I32 || elems(o) != elems(a) / a->shape[a->ndim - 1])
			return -1;
		break;
	case OP_KV_APPEND:
		/* a = x (one row), b = pos (i32), out = cache [rows, ...] */
		if (o->ndim < 1 || o->shape[0] == 0 || a->size != o->size / o->shape[0] || b->ft != FT_I32)
			return -1;
		break;
	case OP_NAN:
		if (o->ft != FT_F32 || o->size < 4)
			return -1;
		break;
	}
	m->nops++;
	return 0;
}

/* parse_manifest reads lines
 *   tensor in|out NAME DTYPE d0,d1,...   ("-" for a scalar)
 *   op KIND ARGS...
 * Returns 0 or -1. */
static int parse_manifest(nrt_model_t *m, const char *text, size_t n)
{
	char *buf = malloc(n + 1), *save = NULL;
	int rc = 0;
	memcpy(buf, text, n);
	buf[n] = 0;
	for (char *line = strtok_r(buf, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
		char *w[32], *s2 = NULL;
		int nw = 0;
		for (char *t = strtok_r(line, " \t\r", &s2); t && nw < 32; t = strtok_r(NULL, " \t\r", &s2))
			w[nw++] = t;
		if (nw == 0 || w[0][0] == '#')
			continue;
		if (strcmp(w[0], "tensor") == 0 && nw == 5) {
			struct mtensor *t;
			if (m->nt == MAX_MODEL_TENSORS || strlen(w[2]) >= NRT_TENSOR_NAME_MAX || find_tensor(m, w[2]) >= 0) {
				rc = -1;
				break;
			}
			t = &m->t[m->nt];
			memset(t, 0, sizeof *t);
			if (strcmp(w[1], "in") == 0)
				t->usage = 0;
			else if (strcmp(w[1], "out") == 0)
				t->usage = 1;
			else {
				rc = -1;
				break;
			}
			snprintf(t->name, sizeof t->name, "%s", w[2]);
			t->ft = parse_dtype(w[3]);
			if (t->ft < 0) {
				rc = -1;
				break;
			}
			if (strcmp(w[4], "-") != 0) {
				char *s3 = NULL;
				for (char *d = strtok_r(w[4], ",", &s3); d; d = strtok_r(NULL, ",", &s3)) {
					if (t->ndim == 8) {
						rc = -1;
						break;
					}
					t->shape[t->ndim++] = (uint32_t)strtoul(d, NULL, 10);
				}
			}
			t->size = elems(t) * dtypes[t->ft].size;
			m->nt++;
		} else if (strcmp(w[0], "op") == 0) {
			rc = parse_op(m, w + 1, nw - 1);
		} else {
			rc = -1;
		}
	}
	free(buf);
	return rc;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

NRT_STATUS nrt_load(const void *neff_bytes, size_t size, int32_t vnc, int32_t vnc_count, nrt_model_t **model)
{
	const unsigned char *b = neff_bytes;
	nrt_model_t *m = NULL;
	int st;
	(void)vnc_count;
	pthread_mutex_lock(&g_mu);
	trace("nrt_load");
	st = gate();
	if (!st)
		st = inject_hit("nrt_load");
	if (!st && (!b || !model))
		st = NRT_INVALID;
	if (!st && (size < NEFF_HEADER || rd64(b + OFF_HEADER_SIZE) != NEFF_HEADER ||
		    rd64(b + OFF_DATA_SIZE) != size - NEFF_HEADER || memcmp(b + OFF_BUILD_VERSION, "FAKENEFF", 8) != 0))
		st = NRT_INVALID;
	if (!st && rd64(b + OFF_VERSION_MAJOR) > 2)
		st = NRT_UNSUPPORTED_NEFF_VERSION;
	if (!st) {
		uint32_t lnc;
		memcpy(&lnc, b + OFF_LNC, 4);
		if (lnc != env_u32("NEURON_LOGICAL_NC_CONFIG", 2))
			st = NRT_INVALID;
	}
	if (!st && vnc < -1)
		st = NRT_INVALID;
	if (!st && vnc >= (int32_t)g_visible)
		st = NRT_LOAD_NOT_ENOUGH_NC;
	if (!st) {
		m = calloc(1, sizeof *m);
		m->vnc = vnc < 0 ? 0 : vnc;
		if (parse_manifest(m, (const char *)b + NEFF_HEADER, size - NEFF_HEADER) != 0)
			st = NRT_INVALID;
	}
	if (!st) {
		m->charged = size - NEFF_HEADER;
		if (g_used[m->vnc] + m->charged > g_budget)
			st = NRT_RESOURCE;
	}
	if (st) {
		free(m);
	} else {
		g_used[m->vnc] += m->charged;
		pthread_mutex_init(&m->mu, NULL);
		reg_add(m, K_MODEL);
		*model = m;
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_unload(nrt_model_t *model)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_unload");
	st = gate();
	if (!st)
		st = inject_hit("nrt_unload");
	if (!st && !live(model, K_MODEL, "nrt_unload: bad model"))
		st = NRT_INVALID_HANDLE;
	if (!st)
		model_kill(model);
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_get_model_tensor_info(nrt_model_t *model, nrt_tensor_info_array_t **out)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_get_model_tensor_info");
	st = gate();
	if (!st)
		st = inject_hit("nrt_get_model_tensor_info");
	if (!st && !out)
		st = NRT_INVALID;
	if (!st && !live(model, K_MODEL, "nrt_get_model_tensor_info: bad model"))
		st = NRT_INVALID_HANDLE;
	if (!st) {
		nrt_tensor_info_array_t *a =
			malloc(sizeof *a + (size_t)model->nt * sizeof(nrt_tensor_info_t));
		a->tensor_count = (uint64_t)model->nt;
		for (int i = 0; i < model->nt; i++) {
			nrt_tensor_info_t *ti = &a->tensor_array[i];
			struct mtensor *t = &model->t[i];
			memset(ti, 0, sizeof *ti);
			snprintf(ti->name, sizeof ti->name, "%s", t->name);
			ti->usage = t->usage;
			ti->size = t->size;
			ti->dtype = dtype_code(t->ft);
			ti->ndim = t->ndim;
			ti->shape = t->ndim ? malloc(t->ndim * sizeof(uint32_t)) : NULL;
			if (t->ndim)
				memcpy(ti->shape, t->shape, t->ndim * sizeof(uint32_t));
		}
		reg_add(a, K_INFO);
		*out = a;
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_free_model_tensor_info(nrt_tensor_info_array_t *info)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_free_model_tensor_info");
	st = gate();
	if (!st)
		st = inject_hit("nrt_free_model_tensor_info");
	if (!st && !live(info, K_INFO, "nrt_free_model_tensor_info: bad array"))
		st = NRT_INVALID_HANDLE;
	if (!st)
		info_kill(info);
	pthread_mutex_unlock(&g_mu);
	return st;
}

/* ---- tensors ----------------------------------------------------------- */

static nrt_tensor_t *tensor_new(struct storage *s, size_t off, size_t size, const char *name)
{
	nrt_tensor_t *t = calloc(1, sizeof *t);
	t->st = s;
	t->off = off;
	t->size = size;
	snprintf(t->name, sizeof t->name, "%s", name ? name : "");
	reg_add(t, K_TENSOR);
	return t;
}

NRT_STATUS nrt_tensor_allocate(nrt_tensor_placement_t placement, int vnc, size_t size, const char *name,
			       nrt_tensor_t **tensor)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_allocate");
	st = gate();
	if (!st)
		st = inject_hit("nrt_tensor_allocate");
	if (!st && (!tensor || placement < NRT_TENSOR_PLACEMENT_DEVICE || placement > NRT_TENSOR_PLACEMENT_VIRTUAL))
		st = NRT_INVALID;
	if (!st && placement == NRT_TENSOR_PLACEMENT_VIRTUAL && !version_below(2, 32, 31))
		st = NRT_INVALID;
	if (!st && placement == NRT_TENSOR_PLACEMENT_DEVICE && (vnc < 0 || vnc >= (int)g_visible))
		st = NRT_INVALID;
	if (!st && size >= ((size_t)4 << 30) && version_below(2, 30, 50))
		st = NRT_RESOURCE;
	if (!st) {
		int v = vnc < 0 ? 0 : vnc;
		if (g_used[v] + size > g_budget || g_used[v] + size < g_used[v])
			st = NRT_RESOURCE;
		else {
			struct storage *s = calloc(1, sizeof *s);
			s->data = malloc(size ? size : 1);
			if (!s->data) {
				free(s);
				st = NRT_RESOURCE;
			} else {
				memset(s->data, 0xA5, size);
				s->refs = 1;
				s->size = size;
				s->vnc = v;
				g_used[v] += size;
				*tensor = tensor_new(s, 0, size, name);
			}
		}
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

void nrt_tensor_free(nrt_tensor_t **tensor)
{
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_free");
	if (tensor && *tensor) {
		nrt_tensor_t *t = *tensor;
		if (live(t, K_TENSOR, "nrt_tensor_free: bad or freed tensor")) {
			if (t->set_refs > 0)
				misuse("nrt_tensor_free: tensor still in a live tensor set");
			tensor_kill(t);
		}
		*tensor = NULL;
	}
	pthread_mutex_unlock(&g_mu);
}

/* tensor_op validates a tensor and a byte range for an op. */
static int tensor_range(const nrt_tensor_t *t, size_t off, size_t n, const char *what)
{
	if (!live(t, K_TENSOR, what))
		return NRT_INVALID_HANDLE;
	if (off > t->size || n > t->size - off)
		return NRT_INVALID;
	return NRT_SUCCESS;
}

NRT_STATUS nrt_tensor_read(const nrt_tensor_t *tensor, void *buf, size_t offset, size_t size)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_read");
	st = gate();
	if (!st)
		st = inject_hit("nrt_tensor_read");
	if (!st)
		st = tensor_range(tensor, offset, size, "nrt_tensor_read: bad tensor");
	if (!st && size && !buf)
		st = NRT_INVALID;
	if (!st && size)
		memcpy(buf, tensor->st->data + tensor->off + offset, size);
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_tensor_write(nrt_tensor_t *tensor, const void *buf, size_t offset, size_t size)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_write");
	st = gate();
	if (!st)
		st = inject_hit("nrt_tensor_write");
	if (!st)
		st = tensor_range(tensor, offset, size, "nrt_tensor_write: bad tensor");
	if (!st && size && !buf)
		st = NRT_INVALID;
	if (!st && size)
		memcpy(tensor->st->data + tensor->off + offset, buf, size);
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_tensor_copy(const nrt_tensor_t *src, size_t src_offset, nrt_tensor_t *dst, size_t dst_offset,
			   size_t size)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_copy");
	st = gate();
	if (!st)
		st = inject_hit("nrt_tensor_copy");
	if (!st)
		st = tensor_range(src, src_offset, size, "nrt_tensor_copy: bad source");
	if (!st)
		st = tensor_range(dst, dst_offset, size, "nrt_tensor_copy: bad destination");
	if (!st && src->st->vnc != dst->st->vnc)
		st = NRT_INVALID;
	if (!st && size)
		memmove(dst->st->data + dst->off + dst_offset, src->st->data + src->off + src_offset, size);
	pthread_mutex_unlock(&g_mu);
	return st;
}

size_t nrt_tensor_get_size(const nrt_tensor_t *tensor)
{
	size_t n = 0;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_get_size");
	if (gate() == NRT_SUCCESS && live(tensor, K_TENSOR, "nrt_tensor_get_size: bad tensor"))
		n = tensor->size;
	pthread_mutex_unlock(&g_mu);
	return n;
}

NRT_STATUS nrt_tensor_memset(nrt_tensor_t *tensor, uint64_t offset, int value, size_t size)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_memset");
	st = gate();
	if (!st)
		st = inject_hit("nrt_tensor_memset");
	if (!st)
		st = tensor_range(tensor, (size_t)offset, size, "nrt_tensor_memset: bad tensor");
	if (!st && size)
		memset(tensor->st->data + tensor->off + offset, value, size);
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_tensor_allocate_slice(const nrt_tensor_t *src, size_t offset, size_t size, const char *name,
				     nrt_tensor_t **slice)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_tensor_allocate_slice");
	st = gate();
	if (!st)
		st = inject_hit("nrt_tensor_allocate_slice");
	if (!st && !slice)
		st = NRT_INVALID;
	if (!st)
		st = tensor_range(src, offset, size, "nrt_tensor_allocate_slice: bad source");
	if (!st) {
		src->st->refs++;
		*slice = tensor_new(src->st, src->off + offset, size, name);
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

/* ---- tensor sets ------------------------------------------------------- */

NRT_STATUS nrt_allocate_tensor_set(nrt_tensor_set_t **result)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_allocate_tensor_set");
	st = gate();
	if (!st)
		st = inject_hit("nrt_allocate_tensor_set");
	if (!st && !result)
		st = NRT_INVALID;
	if (!st) {
		struct fake_set *s = calloc(1, sizeof *s);
		reg_add(s, K_SET);
		*result = s;
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

void nrt_destroy_tensor_set(nrt_tensor_set_t **set)
{
	pthread_mutex_lock(&g_mu);
	trace("nrt_destroy_tensor_set");
	if (set && *set) {
		if (live(*set, K_SET, "nrt_destroy_tensor_set: bad or destroyed set"))
			set_kill(*set);
		*set = NULL;
	}
	pthread_mutex_unlock(&g_mu);
}

static struct set_entry *set_lookup(struct fake_set *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->e[i].name, name) == 0)
			return &s->e[i];
	return NULL;
}

NRT_STATUS nrt_add_tensor_to_tensor_set(nrt_tensor_set_t *set, const char *name, nrt_tensor_t *tensor)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_add_tensor_to_tensor_set");
	st = gate();
	if (!st)
		st = inject_hit("nrt_add_tensor_to_tensor_set");
	if (!st && (!name || strlen(name) >= NRT_TENSOR_NAME_MAX))
		st = NRT_INVALID;
	if (!st && !live(set, K_SET, "nrt_add_tensor_to_tensor_set: bad set"))
		st = NRT_INVALID_HANDLE;
	if (!st && !live(tensor, K_TENSOR, "nrt_add_tensor_to_tensor_set: bad tensor"))
		st = NRT_INVALID_HANDLE;
	if (!st) {
		struct fake_set *s = set;
		struct set_entry *e = set_lookup(s, name);
		if (e) {
			e->t->set_refs--;
		} else {
			if (s->n == s->cap) {
				s->cap = s->cap ? 2 * s->cap : 8;
				s->e = realloc(s->e, (size_t)s->cap * sizeof *s->e);
			}
			e = &s->e[s->n++];
			snprintf(e->name, sizeof e->name, "%s", name);
		}
		e->t = tensor;
		tensor->set_refs++;
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

NRT_STATUS nrt_get_tensor_from_tensor_set(nrt_tensor_set_t *set, const char *name, nrt_tensor_t **tensor)
{
	int st;
	pthread_mutex_lock(&g_mu);
	trace("nrt_get_tensor_from_tensor_set");
	st = gate();
	if (!st)
		st = inject_hit("nrt_get_tensor_from_tensor_set");
	if (!st && (!name || !tensor))
		st = NRT_INVALID;
	if (!st && !live(set, K_SET, "nrt_get_tensor_from_tensor_set: bad set"))
		st = NRT_INVALID_HANDLE;
	if (!st) {
		struct set_entry *e = set_lookup(set, name);
		if (!e)
			st = NRT_FAILURE;
		else
			*tensor = e->t;
	}
	pthread_mutex_unlock(&g_mu);
	return st;
}

/* ---- execute ----------------------------------------------------------- */

/* bind resolves every model tensor in the sets. Called under g_mu. */
static int bind(nrt_model_t *m, struct fake_set *in, struct fake_set *out, unsigned char **ptr)
{
	for (int i = 0; i < m->nt; i++) {
		struct mtensor *t = &m->t[i];
		struct set_entry *e = set_lookup(t->usage == 0 ? in : out, t->name);
		if (!e)
			return NRT_INVALID;
		if (!live(e->t, K_TENSOR, "nrt_execute: freed tensor in set"))
			return NRT_INVALID_HANDLE;
		if (e->t->size != t->size)
			return NRT_INVALID;
		ptr[i] = e->t->st->data + e->t->off;
	}
	/* Every "X.must_alias_input" input must be the tensor bound to "X". */
	static const char suffix[] = ".must_alias_input";
	for (int i = 0; i < m->nt; i++) {
		struct mtensor *t = &m->t[i];
		size_t n = strlen(t->name), sn = sizeof suffix - 1;
		if (t->usage != 0 || n <= sn || strcmp(t->name + n - sn, suffix) != 0)
			continue;
		char base[NRT_TENSOR_NAME_MAX];
		memcpy(base, t->name, n - sn);
		base[n - sn] = 0;
		struct set_entry *ie = set_lookup(in, t->name), *oe = set_lookup(out, base);
		if (!oe || oe->t != ie->t)
			return NRT_INVALID;
	}
	return NRT_SUCCESS;
}

static int run_ops(nrt_model_t *m, unsigned char **ptr)
{
	int status = NRT_SUCCESS;
	for (int k = 0; k < m->nops; k++) {
		struct mop *op = &m->ops[k];
		struct mtensor *a = op->a >= 0 ? &m->t[op->a] : NULL, *o = op->out >= 0 ? &m->t[op->out] : NULL;
		struct mtensor *b = op->kind != OP_SCALE && op->b >= 0 ? &m->t[op->b] : NULL;
		switch (op->kind) {
		case OP_COPY:
			memmove(ptr[op->out], ptr[op->a], o->size);
			break;
		case OP_ADD:
			for (size_t i = 0; i < elems(o); i++)
				st(o->ft, ptr[op->out], i, ld(a->ft, ptr[op->a], i) + ld(b->ft, ptr[op->b], i));
			break;
		case OP_SCALE:
			for (size_t i = 0; i < elems(o); i++)
				st(o->ft, ptr[op->out], i, (float)ld(a->ft, ptr[op->a], i) * (float)op->k);
			break;
		case OP_MATMUL: {
			/* out[M,N] = a[M,K] @ b[K,N], float accumulation in k order */
			size_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
			float *res = malloc(M * N * sizeof(float));
			for (size_t i = 0; i < M; i++)
				for (size_t j = 0; j < N; j++) {
					float acc = 0;
					for (size_t kk = 0; kk < K; kk++) {
						float p = (float)ld(a->ft, ptr[op->a], i * K + kk) *
							  (float)ld(b->ft, ptr[op->b], kk * N + j);
						acc = acc + p;
					}
					res[i * N + j] = acc;
				}
			memcpy(ptr[op->out], res, M * N * sizeof(float));
			free(res);
			break;
		}
		case OP_ARGMAX: {
			size_t C = a->shape[a->ndim - 1], R = elems(a) / C;
			for (size_t r = 0; r < R; r++) {
				size_t best = 0;
				double bv = -INFINITY;
				for (size_t c = 0; c < C; c++) {
					double v = ld(a->ft, ptr[op->a], r * C + c);
					if (v > bv) {
						bv = v;
						best = c;
					}
				}
				st(FT_I32, ptr[op->out], r, (double)best);
			}
			break;
		}
		case OP_KV_APPEND: {
			int32_t pos;
			size_t row = o->size / o->shape[0];
			memcpy(&pos, ptr[op->b], 4);
			if (pos < 0 || (uint32_t)pos >= o->shape[0])
				return NRT_EXEC_OOB;
			memmove(ptr[op->out] + (size_t)pos * row, ptr[op->a], row);
			break;
		}
		case OP_NAN: {
			float f = NAN;
			memcpy(ptr[op->out], &f, 4);
			status = NRT_EXEC_COMPLETED_WITH_NUM_ERR;
			break;
		}
		case OP_SLEEP:
			if (g_timeout_ms > 0 && op->n > g_timeout_ms) {
				usleep((useconds_t)g_timeout_ms * 1000);
				return NRT_TIMEOUT;
			}
			usleep((useconds_t)op->n * 1000);
			break;
		case OP_FAIL:
			return (int)op->n;
		case OP_MNEMO: {
			int s = mn_run(&op->mn, ptr);
			if (s)
				return s;
			break;
		}
		}
	}
	return status;
}

/* feed_back copies each output "outputN" into input "inputN" for
 * nrt_execute_repeat. */
static void feed_back(nrt_model_t *m, unsigned char **ptr)
{
	for (int i = 0; i < m->nt; i++) {
		char want[NRT_TENSOR_NAME_MAX];
		if (m->t[i].usage != 1 || strncmp(m->t[i].name, "output", 6) != 0)
			continue;
		snprintf(want, sizeof want, "input%s", m->t[i].name + 6);
		int j = find_tensor(m, want);
		if (j >= 0 && m->t[j].size == m->t[i].size && ptr[j] != ptr[i])
			memmove(ptr[j], ptr[i], m->t[i].size);
	}
}

static NRT_STATUS execute(const char *fn, nrt_model_t *model, const nrt_tensor_set_t *in, nrt_tensor_set_t *out,
			  int repeat)
{
	unsigned char *ptr[MAX_MODEL_TENSORS];
	int st, injected = 0, busy = 0;
	pthread_mutex_lock(&g_mu);
	trace(fn);
	st = gate();
	if (!st) {
		injected = inject_hit(fn);
		if (injected && injected != NRT_EXEC_COMPLETED_WITH_NUM_ERR)
			st = injected;
	}
	if (!st && !live(model, K_MODEL, "nrt_execute: bad model"))
		st = NRT_INVALID_HANDLE;
	if (!st && (!live(in, K_SET, "nrt_execute: bad input set") || !live(out, K_SET, "nrt_execute: bad output set")))
		st = NRT_INVALID_HANDLE;
	if (!st && repeat < 1)
		st = NRT_INVALID;
	if (!st)
		st = bind(model, (struct fake_set *)in, out, ptr);
	if (!st)
		g_execs++;
	busy = g_busy_mode;
	pthread_mutex_unlock(&g_mu);
	if (st)
		return st;

	if (busy) {
		if (pthread_mutex_trylock(&model->mu) != 0)
			return NRT_EXEC_NC_BUSY;
	} else {
		pthread_mutex_lock(&model->mu);
	}
	for (int r = 0; r < repeat && !st; r++) {
		if (r > 0)
			feed_back(model, ptr);
		st = run_ops(model, ptr);
		if (st == NRT_EXEC_COMPLETED_WITH_NUM_ERR && r + 1 < repeat)
			st = NRT_SUCCESS;
	}
	pthread_mutex_unlock(&model->mu);
	if (!st && injected)
		st = injected;
	return st;
}

#ifndef FAKE_OMIT_EXECUTE
NRT_STATUS nrt_execute(nrt_model_t *model, const nrt_tensor_set_t *in, nrt_tensor_set_t *out)
{
	return execute("nrt_execute", model, in, out, 1);
}
#endif

NRT_STATUS nrt_execute_repeat(nrt_model_t *model, const nrt_tensor_set_t *in, nrt_tensor_set_t *out, int repeat_count)
{
	return execute("nrt_execute_repeat", model, in, out, repeat_count);
}

/* ---- fake-only controls ------------------------------------------------ */

void fake_nrt_reset(void)
{
	pthread_mutex_lock(&g_mu);
	for (size_t i = 0; i < g_nreg; i++) {
		struct reg_entry *e = &g_reg[i];
		if (e->alive) {
			switch (e->kind) {
			case K_SET: set_kill(e->p); break;
			case K_INFO: info_kill(e->p); break;
			case K_TENSOR: tensor_kill(e->p); break;
			case K_MODEL: model_kill(e->p); break;
			}
		}
	}
	for (size_t i = 0; i < g_nreg; i++) {
		struct reg_entry *e = &g_reg[i];
		if (e->kind == K_MODEL)
			pthread_mutex_destroy(&((nrt_model_t *)e->p)->mu);
		free(e->p);
	}
	free(g_reg);
	g_reg = NULL;
	g_nreg = g_capreg = 0;
	memset(g_inj, 0, sizeof g_inj);
	memset(g_used, 0, sizeof g_used);
	g_misuse = g_leaks = g_inits = g_execs = 0;
	g_state = ST_UNINIT;
	g_visible = 0;
	g_trace_len = 0;
	g_trace[0] = 0;
	default_version();
	parse_inject_env();
	pthread_mutex_unlock(&g_mu);
}

int fake_nrt_inject(const char *fn, int status, int nth)
{
	int rc;
	pthread_mutex_lock(&g_mu);
	rc = fn ? inject_add(fn, status, nth) : -1;
	pthread_mutex_unlock(&g_mu);
	return rc;
}

void fake_nrt_stats(int64_t out[FAKE_STAT_COUNT])
{
	memset(out, 0, FAKE_STAT_COUNT * sizeof *out);
	pthread_mutex_lock(&g_mu);
	for (size_t i = 0; i < g_nreg; i++) {
		if (!g_reg[i].alive)
			continue;
		switch (g_reg[i].kind) {
		case K_MODEL: out[FAKE_STAT_LIVE_MODELS]++; break;
		case K_TENSOR: out[FAKE_STAT_LIVE_TENSORS]++; break;
		case K_SET: out[FAKE_STAT_LIVE_SETS]++; break;
		case K_INFO: out[FAKE_STAT_LIVE_INFOS]++; break;
		}
	}
	out[FAKE_STAT_MISUSE] = g_misuse;
	out[FAKE_STAT_LEAKS] = g_leaks;
	out[FAKE_STAT_BYTES_VNC0] = (int64_t)g_used[0];
	out[FAKE_STAT_BYTES_VNC1] = (int64_t)g_used[1];
	out[FAKE_STAT_STATE] = g_state;
	out[FAKE_STAT_VISIBLE] = g_visible;
	out[FAKE_STAT_INITS] = g_inits;
	out[FAKE_STAT_EXECS] = g_execs;
	pthread_mutex_unlock(&g_mu);
}

size_t fake_nrt_trace(char *buf, size_t n)
{
	size_t len;
	pthread_mutex_lock(&g_mu);
	len = g_trace_len;
	if (buf && n) {
		size_t c = len < n - 1 ? len : n - 1;
		memcpy(buf, g_trace, c);
		buf[c] = 0;
	}
	pthread_mutex_unlock(&g_mu);
	return len;
}

void fake_nrt_layout(size_t out[FAKE_LAYOUT_COUNT])
{
	out[FAKE_LAYOUT_INFO_SIZE] = sizeof(nrt_tensor_info_t);
	out[FAKE_LAYOUT_INFO_NAME] = offsetof(nrt_tensor_info_t, name);
	out[FAKE_LAYOUT_INFO_USAGE] = offsetof(nrt_tensor_info_t, usage);
	out[FAKE_LAYOUT_INFO_SIZE_FIELD] = offsetof(nrt_tensor_info_t, size);
	out[FAKE_LAYOUT_INFO_DTYPE] = offsetof(nrt_tensor_info_t, dtype);
	out[FAKE_LAYOUT_INFO_SHAPE] = offsetof(nrt_tensor_info_t, shape);
	out[FAKE_LAYOUT_INFO_NDIM] = offsetof(nrt_tensor_info_t, ndim);
	out[FAKE_LAYOUT_ARRAY_FIRST] = offsetof(nrt_tensor_info_array_t, tensor_array);
	out[FAKE_LAYOUT_VERSION_SIZE] = sizeof(nrt_version_t);
	out[FAKE_LAYOUT_VERSION_DETAIL] = offsetof(nrt_version_t, rt_detail);
	out[FAKE_LAYOUT_VERSION_GIT] = offsetof(nrt_version_t, git_hash);
}

void fake_nrt_set_version(uint64_t major, uint64_t minor, uint64_t patch, int dtype_mode)
{
	pthread_mutex_lock(&g_mu);
	g_ver[0] = major;
	g_ver[1] = minor;
	g_ver[2] = patch;
	g_dtype_mode = dtype_mode;
	pthread_mutex_unlock(&g_mu);
}
