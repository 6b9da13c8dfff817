/*
 * Prototypes of the libnrt C API as mnemo binds it, written from the public
 * Neuron SDK headers (nrt.h, nrt_experimental.h, nrt_status.h, nrt_version.h,
 * SDK 2.28) and the runtime developer guide. Only what the fake implements.
 * Plus the fake-only control functions, all prefixed fake_nrt_.
 */
#ifndef MNEMO_NRT_FAKE_H
#define MNEMO_NRT_FAKE_H

#include <stddef.h>
#include <stdint.h>

typedef int NRT_STATUS;
enum {
	NRT_SUCCESS = 0,
	NRT_FAILURE = 1,
	NRT_INVALID = 2,
	NRT_INVALID_HANDLE = 3,
	NRT_RESOURCE = 4,
	NRT_TIMEOUT = 5,
	NRT_HW_ERROR = 6,
	NRT_QUEUE_FULL = 7,
	NRT_LOAD_NOT_ENOUGH_NC = 9,
	NRT_UNSUPPORTED_NEFF_VERSION = 10,
	NRT_FAIL_HOST_MEM_ALLOC = 11,
	NRT_UNINITIALIZED = 13,
	NRT_CLOSED = 14,
	NRT_QUEUE_EMPTY = 15,
	NRT_EXEC_UNIT_UNRECOVERABLE = 101,
	NRT_EXEC_BAD_INPUT = 1002,
	NRT_EXEC_COMPLETED_WITH_NUM_ERR = 1003,
	NRT_EXEC_COMPLETED_WITH_ERR = 1004,
	NRT_EXEC_NC_BUSY = 1005,
	NRT_EXEC_OOB = 1006,
	NRT_COLL_PENDING = 1100,
	NRT_EXEC_HW_ERR_COLLECTIVES = 1200,
	NRT_EXEC_HW_ERR_HBM_UE = 1201,
	NRT_EXEC_HW_ERR_NC_UE = 1202,
	NRT_EXEC_HW_ERR_DMA_ABORT = 1203,
	NRT_EXEC_SW_NQ_OVERFLOW = 1204,
	NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE = 1205,
	NRT_NETWORK_PROXY_FAILURE = 1206,
};

typedef enum {
	NRT_TENSOR_PLACEMENT_DEVICE,
	NRT_TENSOR_PLACEMENT_HOST,
	NRT_TENSOR_PLACEMENT_VIRTUAL,
} nrt_tensor_placement_t;

typedef enum {
	NRT_FRAMEWORK_TYPE_INVALID = 0,
	NRT_FRAMEWORK_TYPE_NO_FW = 1,
} nrt_framework_type_t;

typedef enum { NRT_TENSOR_USAGE_INPUT = 0, NRT_TENSOR_USAGE_OUTPUT = 1 } nrt_tensor_usage_t;

/* nrt_dtype_t is an int-sized enum; its numbering depends on the version. */
typedef int nrt_dtype_t;

#define NRT_TENSOR_NAME_MAX 256

typedef struct nrt_tensor_info {
	char name[NRT_TENSOR_NAME_MAX];
	nrt_tensor_usage_t usage;
	size_t size;
	nrt_dtype_t dtype;
	uint32_t *shape;
	uint32_t ndim;
} nrt_tensor_info_t;

typedef struct nrt_tensor_info_array {
	uint64_t tensor_count;
	nrt_tensor_info_t tensor_array[];
} nrt_tensor_info_array_t;

#define RT_VERSION_DETAIL_LEN 128
#define GIT_HASH_LEN 64

typedef struct nrt_version {
	uint64_t rt_major;
	uint64_t rt_minor;
	uint64_t rt_patch;
	uint64_t rt_maintenance;
	char rt_detail[RT_VERSION_DETAIL_LEN];
	char git_hash[GIT_HASH_LEN];
} nrt_version_t;

typedef struct nrt_model nrt_model_t;
typedef struct nrt_tensor nrt_tensor_t;
typedef void nrt_tensor_set_t;

NRT_STATUS nrt_get_version(nrt_version_t *ver, size_t size);
const char *nrt_get_status_as_str(NRT_STATUS status);
NRT_STATUS nrt_init(nrt_framework_type_t framework, const char *fw_version, const char *fal_version);
void nrt_close(void);
NRT_STATUS nrt_get_total_vnc_count(uint32_t *vnc_count);
NRT_STATUS nrt_get_visible_vnc_count(uint32_t *vnc_count);
NRT_STATUS nrt_load(const void *neff_bytes, size_t size, int32_t vnc, int32_t vnc_count, nrt_model_t **model);
NRT_STATUS nrt_unload(nrt_model_t *model);
NRT_STATUS nrt_get_model_tensor_info(nrt_model_t *model, nrt_tensor_info_array_t **tensor_info);
NRT_STATUS nrt_free_model_tensor_info(nrt_tensor_info_array_t *tensor_info);
NRT_STATUS nrt_tensor_allocate(nrt_tensor_placement_t tensor_placement, int vnc, size_t size, const char *name,
			       nrt_tensor_t **tensor);
void nrt_tensor_free(nrt_tensor_t **tensor);
NRT_STATUS nrt_tensor_read(const nrt_tensor_t *tensor, void *buf, size_t offset, size_t size);
NRT_STATUS nrt_tensor_write(nrt_tensor_t *tensor, const void *buf, size_t offset, size_t size);
NRT_STATUS nrt_tensor_copy(const nrt_tensor_t *src, size_t src_offset, nrt_tensor_t *dst, size_t dst_offset,
			   size_t size);
size_t nrt_tensor_get_size(const nrt_tensor_t *tensor);
NRT_STATUS nrt_tensor_memset(nrt_tensor_t *tensor, uint64_t offset, int value, size_t size);
NRT_STATUS nrt_tensor_allocate_slice(const nrt_tensor_t *tensor_source, size_t offset, size_t size, const char *name,
				     nrt_tensor_t **tensor_slice);
NRT_STATUS nrt_allocate_tensor_set(nrt_tensor_set_t **result);
void nrt_destroy_tensor_set(nrt_tensor_set_t **tensor_set);
NRT_STATUS nrt_add_tensor_to_tensor_set(nrt_tensor_set_t *tensor_set, const char *tensor_name, nrt_tensor_t *tensor);
NRT_STATUS nrt_get_tensor_from_tensor_set(nrt_tensor_set_t *tensor_set, const char *tensor_name,
					  nrt_tensor_t **tensor);
NRT_STATUS nrt_execute(nrt_model_t *model, const nrt_tensor_set_t *input_set, nrt_tensor_set_t *output_set);
NRT_STATUS nrt_execute_repeat(nrt_model_t *model, const nrt_tensor_set_t *input_set, nrt_tensor_set_t *output_set,
			      int repeat_count);

/* Fake-only controls. */

/* fake_nrt_reset returns the fake to its freshly loaded state: uninitialised,
 * no objects (quarantined handles are released), no injections, default
 * version, zero counters. It re-reads FAKE_NRT_INJECT. */
void fake_nrt_reset(void);

/* fake_nrt_inject makes the nth call (1-based, counted from now) of function
 * fn return status; nth 0 fails every call until reset. Returns 0, or -1 when
 * the injection table is full. */
int fake_nrt_inject(const char *fn, int status, int nth);

/* fake_nrt_stats fills out with FAKE_STAT_COUNT counters (see FAKE_STAT_*). */
enum {
	FAKE_STAT_LIVE_MODELS,
	FAKE_STAT_LIVE_TENSORS,
	FAKE_STAT_LIVE_SETS,
	FAKE_STAT_LIVE_INFOS,
	FAKE_STAT_MISUSE,
	FAKE_STAT_LEAKS,
	FAKE_STAT_BYTES_VNC0,
	FAKE_STAT_BYTES_VNC1,
	FAKE_STAT_STATE,
	FAKE_STAT_VISIBLE,
	FAKE_STAT_INITS,
	FAKE_STAT_EXECS,
	FAKE_STAT_COUNT
};
void fake_nrt_stats(int64_t out[FAKE_STAT_COUNT]);

/* fake_nrt_trace copies the call log (one function name per line, oldest
 * first) into buf as a NUL-terminated string; returns the full length. */
size_t fake_nrt_trace(char *buf, size_t n);

/* fake_nrt_layout reports the C compiler's view of the structs that cross
 * the FFI: see FAKE_LAYOUT_*. */
enum {
	FAKE_LAYOUT_INFO_SIZE,
	FAKE_LAYOUT_INFO_NAME,
	FAKE_LAYOUT_INFO_USAGE,
	FAKE_LAYOUT_INFO_SIZE_FIELD,
	FAKE_LAYOUT_INFO_DTYPE,
	FAKE_LAYOUT_INFO_SHAPE,
	FAKE_LAYOUT_INFO_NDIM,
	FAKE_LAYOUT_ARRAY_FIRST,
	FAKE_LAYOUT_VERSION_SIZE,
	FAKE_LAYOUT_VERSION_DETAIL,
	FAKE_LAYOUT_VERSION_GIT,
	FAKE_LAYOUT_COUNT
};
void fake_nrt_layout(size_t out[FAKE_LAYOUT_COUNT]);

/* fake_nrt_set_version sets the emulated libnrt version. dtype_mode selects
 * the dtype numbering reported by tensor info: 0 by version (sequential
 * codes below 2.30), 1 always sequential (legacy), 2 always the SDK 2.28
 * codes. */
void fake_nrt_set_version(uint64_t major, uint64_t minor, uint64_t patch, int dtype_mode);

#endif
