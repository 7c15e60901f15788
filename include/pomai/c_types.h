/*
 * pomai/c_types.h: the types of the pomai C ABI.
 *
 * Layout-compatible with the documented PomaiDB C API (x86-64 offsets in
 * comments; tests/capi/layout_test.cc pins every one of them).
 *
 * Versioning rule: every input struct starts with `uint32_t struct_size`, set
 * by the caller to sizeof(its struct). The library reads a field only when
 * struct_size covers it; a field not covered takes its default. New fields are
 * only ever added at the end. Arrays of input structs are walked with a
 * stride of the first element's struct_size, and every element must carry the
 * same struct_size; in an array of more than one element that stride must be
 * a multiple of 8 (the structs' alignment), else INVALID_ARGUMENT.
 *
 * This header must stay parseable by cffi's cdef after `cc -E -P` with
 * POMAI_EXPORT defined empty: no function-like macros in declarations, no
 * inline functions.
 */
#ifndef POMAI_C_TYPES_H_
#define POMAI_C_TYPES_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pomai/arrow_c.h"

#ifndef POMAI_EXPORT
#if defined(_WIN32)
#define POMAI_EXPORT __declspec(dllexport)
#else
#define POMAI_EXPORT __attribute__((visibility("default")))
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles. */
typedef struct pomai_db_t pomai_db_t;
typedef struct pomai_status_t pomai_status_t;

/* Status codes. NULL status means OK. New codes are added at the end only. */
typedef enum pomai_status_code_t {
  POMAI_STATUS_OK = 0,
  POMAI_STATUS_INVALID_ARGUMENT = 1,
  POMAI_STATUS_NOT_FOUND = 2,
  POMAI_STATUS_ALREADY_EXISTS = 3,
  POMAI_STATUS_IO_ERROR = 4,
  POMAI_STATUS_CORRUPTION = 5,
  POMAI_STATUS_RESOURCE_EXHAUSTED = 6,
  POMAI_STATUS_DEADLINE_EXCEEDED = 7,
  POMAI_STATUS_INTERNAL = 8,
  POMAI_STATUS_UNIMPLEMENTED = 9,
  POMAI_STATUS_PARTIAL_FAILURE = 10,
  /* Beyond PomaiDB. */
  POMAI_STATUS_CONFLICT = 11,  /* a transaction lost a write-write conflict */
  POMAI_STATUS_CLOSED = 12,    /* the handle was closed */
  POMAI_STATUS_READ_ONLY = 13  /* a write through a read-only handle or transaction */
} pomai_status_code_t;

typedef enum pomai_fsync_policy_t {
  POMAI_FSYNC_POLICY_NEVER = 0,  /* acknowledge after write(); the OS decides when it is durable */
  POMAI_FSYNC_POLICY_ALWAYS = 1  /* fdatasync the log before acknowledging a write */
} pomai_fsync_policy_t;

enum {
  POMAI_INDEX_TYPE_IVF = 0,
  POMAI_INDEX_TYPE_HNSW = 1
};

enum {
  POMAI_METRIC_L2 = 0,     /* score = -||q - v||^2 */
  POMAI_METRIC_IP = 1,     /* score = q . v */
  POMAI_METRIC_COSINE = 2  /* score = q . v / (|q| |v|), 0 when a norm is 0 */
};

enum {
  POMAI_HNSW_VECTORS_SQ8 = 0,     /* an 8-bit per-dimension scaled copy, exact float32 rerank (default) */
  POMAI_HNSW_VECTORS_FLOAT32 = 1  /* the float32 rows themselves; no copy */
};

/* Options of pomai_open. 72 bytes. Minimum struct_size: 24 (through dim). */
typedef struct pomai_options_t {
  uint32_t struct_size;            /* [0] */
  const char* path;                /* [8]  database directory, created if missing */
  uint32_t shards;                 /* [16] fixed at creation; a hit reports shard id % shards */
  uint32_t dim;                    /* [20] 1 to 65535, fixed at creation */
  uint32_t search_threads;         /* [24] 0 = all cores */
  pomai_fsync_policy_t fsync_policy; /* [28] */
  uint64_t memory_budget_bytes;    /* [32] memtable size that triggers a freeze; 0 = 256 MiB */
  uint32_t deadline_ms;            /* [40] default per-call budget; 0 = none */
  uint8_t index_type;              /* [44] POMAI_INDEX_TYPE_*: HNSW builds a graph per segment; IVF is not
                                      implemented: segments get no graph and every search is exact.
                                      Read only when struct_size >= 52 (48 is the older layout, whose
                                      byte 44 is padding). */
  uint32_t hnsw_m;                 /* [48] */
  uint32_t hnsw_ef_construction;   /* [52] */
  uint32_t hnsw_ef_search;         /* [56] */
  uint32_t adaptive_threshold;     /* [60] segments with fewer rows are searched exactly (and get no graph) */
  uint8_t metric;                  /* [64] POMAI_METRIC_*, fixed at creation */
  /* Beyond PomaiDB (its struct ends at metric; byte 65 is padding there, zero from ctypes): */
  uint8_t hnsw_vectors;            /* [65] POMAI_HNSW_VECTORS_*: what graph searches walk, for segments built
                                      after this open (each segment records its own). Read only when
                                      struct_size >= 66. */
} pomai_options_t;

/* Progress of a long freeze or compaction: `done` of `total` rows indexed
 * into HNSW graphs so far. Called from engine threads, one call at a time,
 * at most about a thousand times per segment, and last with done == total.
 * It must not call back into the database. */
typedef void (*pomai_progress_fn)(uint64_t done, uint64_t total, void* user_data);

/* One vector to insert or replace. 48 bytes. Minimum struct_size: 28 (through dim). */
typedef struct pomai_upsert_t {
  uint32_t struct_size;      /* [0] */
  uint64_t id;               /* [8] */
  const float* vector;       /* [16] dim floats */
  uint32_t dim;              /* [24] must equal the database's dim */
  const uint8_t* metadata;   /* [32] may be NULL when metadata_len is 0 */
  uint32_t metadata_len;     /* [40] */
} pomai_upsert_t;

/* One query. 64 bytes. Minimum struct_size: 24 (through topk). */
typedef struct pomai_query_t {
  uint32_t struct_size;            /* [0] */
  const float* vector;             /* [8] dim floats */
  uint32_t dim;                    /* [16] */
  uint32_t topk;                   /* [20] */
  const char* filter_expression;   /* [24] NULL or "" = no filter; else docs/FILTERS.md's language */
  float alpha;                     /* [32] reserved (hybrid search weight); ignored */
  uint32_t deadline_ms;            /* [36] 0 = the database's default */
  uint32_t flags;                  /* [40] reserved; must be 0 */
  /* Beyond PomaiDB (struct_size 48): */
  uint32_t ef_search;              /* [44] HNSW ef for this query; 0 = the open's hnsw_ef_search; never below topk */
  /* struct_size 64: */
  const uint64_t* filter_ids;      /* [48] NULL = no id allow-list; else only rows with these ids pass */
  size_t filter_id_count;          /* [56] */
} pomai_query_t;

/* One stored row, as returned by pomai_get. Freed with pomai_record_free. 48 bytes. */
typedef struct pomai_record_t {
  uint32_t struct_size;      /* [0] */
  uint64_t id;               /* [8] */
  uint32_t dim;              /* [16] */
  const float* vector;       /* [24] dim floats, owned by the record */
  const uint8_t* metadata;   /* [32] owned by the record; NULL when metadata_len is 0 */
  uint32_t metadata_len;     /* [40] */
  bool is_deleted;           /* [44] always false for a record pomai_get returns */
} pomai_record_t;

/* Reserved for zero-copy access to stored vectors; pomai never fills it (pointers are NULL). 40 bytes. */
typedef struct pomai_semantic_pointer_t {
  uint32_t struct_size;      /* [0] */
  const void* raw_data_ptr;  /* [8] */
  uint32_t dim;              /* [16] */
  float quant_min;           /* [20] */
  float quant_inv_scale;     /* [24] */
  uint64_t session_id;       /* [32] */
} pomai_semantic_pointer_t;

/* Results of one query. 48 bytes. Arrays are owned by the results and freed with them. */
typedef struct pomai_search_results_t {
  uint32_t struct_size;                          /* [0] */
  size_t count;                                  /* [8] */
  uint64_t* ids;                                 /* [16] count ids, best first */
  float* scores;                                 /* [24] count scores, higher is better */
  uint32_t* shard_ids;                           /* [32] count shard numbers */
  pomai_semantic_pointer_t* zero_copy_pointers;  /* [40] always NULL */
} pomai_search_results_t;

/* ---- attributes and filters (docs/FILTERS.md) ------------------------- */

enum {
  POMAI_ATTR_INT64 = 1,
  POMAI_ATTR_FLOAT64 = 2,
  POMAI_ATTR_BOOL = 3,
  POMAI_ATTR_STRING = 4, /* UTF-8, at most 65535 bytes */
  POMAI_ATTR_TAGS = 5    /* a list of strings */
};

/* One attribute column of a batch of n rows, in the buffer layout of Arrow
 * where it can be (a pyarrow or numpy column passes without conversion).
 * 48 bytes. Minimum struct_size: 48. */
typedef struct pomai_column_t {
  uint32_t struct_size;        /* [0] */
  uint32_t type;               /* [4] POMAI_ATTR_* */
  const char* name;            /* [8] NUL-terminated UTF-8, 1..255 bytes, not "id" */
  const uint8_t* validity;     /* [16] NULL: every row has a value; else a bitmap, bit i (least significant
                                  first, Arrow's layout) set when row i has a value */
  const void* values;          /* [24] INT64: n int64; FLOAT64: n double (no NaN); BOOL: n bytes, 0 or 1;
                                  STRING, TAGS: the UTF-8 bytes the offsets point into */
  const int64_t* offsets;      /* [32] STRING: n + 1 byte offsets into values; TAGS: n + 1 offsets into
                                  tag_offsets (row i's tags are strings offsets[i] .. offsets[i+1] - 1) */
  const int64_t* tag_offsets;  /* [40] TAGS: offsets[n] + 1 byte offsets into values; else unused */
} pomai_column_t;

/* A batch of rows for pomai_put_rows: vectors, optional metadata and
 * attribute columns. 64 bytes. Minimum struct_size: 32 (through vectors). */
typedef struct pomai_rows_t {
  uint32_t struct_size;              /* [0] */
  uint32_t dim;                      /* [4] must equal the database's dim */
  size_t n;                          /* [8] rows */
  const uint64_t* ids;               /* [16] n ids */
  const float* vectors;              /* [24] n * dim floats, row-major, finite */
  const int64_t* metadata_offsets;   /* [32] NULL: no metadata; else n + 1 offsets into metadata */
  const uint8_t* metadata;           /* [40] */
  const pomai_column_t* columns;     /* [48] column_count columns of n rows each */
  size_t column_count;               /* [56] */
} pomai_rows_t;

/* Which rows a count, delete, scan or array search reads: the rows that pass
 * `expression` (docs/FILTERS.md) and whose id is among `ids`. 32 bytes.
 * Minimum struct_size: 16 (through expression). */
typedef struct pomai_filter_t {
  uint32_t struct_size;      /* [0] */
  const char* expression;    /* [8] NULL or "" = every row */
  const uint64_t* ids;       /* [16] NULL = no id allow-list */
  size_t id_count;           /* [24] */
} pomai_filter_t;

/* What pomai_scan returns: ids always, then what flags ask, then attribute
 * columns. 40 bytes. Minimum struct_size: 8. */
enum {
  POMAI_SCAN_VECTORS = 1,   /* a "vector" column: fixed_size_list<float32>[dim] */
  POMAI_SCAN_METADATA = 2   /* a "metadata" column: large_binary, empty when a row has none */
};
typedef struct pomai_scan_options_t {
  uint32_t struct_size;            /* [0] */
  uint32_t flags;                  /* [4] POMAI_SCAN_* bits */
  const pomai_filter_t* filter;    /* [8] NULL = every row */
  const char* const* columns;      /* [16] attribute columns to return, in this order; NULL = all of them */
  size_t column_count;             /* [24] */
  size_t batch_rows;               /* [32] rows per batch at most; 0 = 65536 */
} pomai_scan_options_t;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* POMAI_C_TYPES_H_ */
