/*
 * pomai/kv.h: the keyspace part of the pomai C ABI (SPEC.md 1.3), used by the
 * `alopex` Python package: byte-string keys and values, typed vector values,
 * optimistic transactions with snapshot isolation, and named HNSW indexes.
 *
 * Same conventions as pomai/pomai.h (included by it): a NULL pomai_status_t*
 * is success; handles are opaque tokens, so a closed handle gives
 * POMAI_STATUS_CLOSED and never a crash; inputs are copied before a call
 * returns; what the library allocates is freed by the named *_free function.
 *
 * There is one kind of database. It has one ordered keyspace: every value in
 * it is either plain bytes or a vector record (metric, dimension, optional
 * metadata, float32 data); beside it live the named indexes and, once
 * pomai_open has opened the directory, the default collection of u64-id rows
 * of pomai.h. The functions below work on a handle of either open function
 * (pomai_db_open_ex or pomai_open), which is closed with pomai_close.
 * pomai_db_open_ex does not open the default collection: the u64-id row
 * functions of pomai.h (pomai_put, pomai_search, ...) return INVALID_ARGUMENT
 * on its handles (open the directory with pomai_open to use them), and its
 * flushes and merges keep the rows a directory holds.
 *
 * Keys are 1 to 65535 bytes (an empty or longer key is INVALID_ARGUMENT);
 * values are at most 1 GiB. Index names are 1 to 255 bytes of UTF-8 without
 * NUL. Vector dimensions are 1 to 65535; every float must be finite.
 */
#ifndef POMAI_KV_H_
#define POMAI_KV_H_

#include "pomai/c_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pomai_txn_t pomai_txn_t;

enum {
  POMAI_STORAGE_DISK = 0,      /* files in `path`; survives the process */
  POMAI_STORAGE_IN_MEMORY = 1  /* no files at all; gone at close */
};

enum {
  POMAI_TXN_READ_ONLY = 0,
  POMAI_TXN_READ_WRITE = 1
};

/* Options of pomai_db_open_ex. 40 bytes. Minimum struct_size: 20 (through storage_mode). */
typedef struct pomai_db_options_ex_t {
  uint32_t struct_size;            /* [0] */
  const char* path;                /* [8]  database directory for POMAI_STORAGE_DISK, created if missing;
                                       ignored (may be NULL) for POMAI_STORAGE_IN_MEMORY */
  uint32_t storage_mode;           /* [16] POMAI_STORAGE_* */
  pomai_fsync_policy_t fsync_policy; /* [20] disk mode: NEVER (default) or ALWAYS (fdatasync before a commit returns) */
  uint64_t memory_limit_bytes;     /* [24] 0 = none. When set, a commit that would make memory_usage's
                                       used_bytes exceed it fails with RESOURCE_EXHAUSTED
                                       "memory limit exceeded" and changes nothing. */
  uint32_t search_threads;         /* [32] 0 = all cores */
} pomai_db_options_ex_t;

/* Memory of a database, in bytes. used_bytes counts the memtable (keys,
 * values, vectors, rows, versions still needed by snapshots) and the mapped
 * segment bytes; total_bytes is
 * memory_limit_bytes when one is set, else the machine's physical memory;
 * free_bytes = total_bytes - used_bytes (0 when used exceeds total). */
typedef struct pomai_memory_stats_t {
  uint64_t total_bytes;
  uint64_t used_bytes;
  uint64_t free_bytes;
} pomai_memory_stats_t;

/* Configuration of a named HNSW index. 20 bytes. Minimum struct_size: 8 (through dim). */
typedef struct pomai_hnsw_config_t {
  uint32_t struct_size;      /* [0] */
  uint32_t dim;              /* [4]  1..65535 */
  uint32_t m;                /* [8]  2..100; default 16 */
  uint32_t ef_construction;  /* [12] m..4096; default 200 */
  uint32_t metric;           /* [16] POMAI_METRIC_*; default COSINE */
} pomai_hnsw_config_t;

/* Statistics of a named HNSW index over its graphs (one per segment holding
 * its entries). Entries committed since the last flush (searched exactly
 * until the next one puts them into a graph) count as level-0 nodes, so
 * level_distribution sums to node_count + deleted_count. */
typedef struct pomai_hnsw_stats_t {
  uint64_t node_count;           /* live (searchable) entries */
  uint64_t deleted_count;        /* nodes still in a graph whose entry was deleted or replaced */
  uint64_t memory_bytes;         /* bytes of the index: its segments' vectors and graphs, its memtable rows */
  double avg_edges_per_node;     /* mean layer-0 degree over the nodes of the graph (0 when there are none) */
  uint32_t level_count;          /* number of levels used: level_distribution[0..level_count) */
  uint64_t level_distribution[32]; /* nodes whose top level is i */
} pomai_hnsw_stats_t;

/* One search hit. Pointers are owned by the enclosing pomai_kv_hits_t. */
typedef struct pomai_kv_hit_t {
  const uint8_t* key;
  size_t key_len;
  float score;               /* higher is better: COSINE similarity, L2 negative Euclidean distance, IP dot */
  bool has_metadata;
  const uint8_t* metadata;   /* NULL when !has_metadata */
  size_t metadata_len;
  const float* vector;       /* NULL unless vectors were asked for */
  uint32_t dim;              /* length of vector (0 when NULL) */
} pomai_kv_hit_t;

typedef struct pomai_kv_hits_t {
  size_t count;
  pomai_kv_hit_t* hits;      /* count hits, best first (score descending, then key ascending) */
} pomai_kv_hits_t;

/* Frees hits returned by a search. NULL is a no-op. */
POMAI_EXPORT void pomai_kv_hits_free(pomai_kv_hits_t* hits);

/* ---- database -------------------------------------------------------- */

/* Defaults: disk mode, path NULL, fsync NEVER, no memory limit, all cores;
 * struct_size = sizeof(pomai_db_options_ex_t). NULL is a no-op. */
POMAI_EXPORT void pomai_db_options_ex_init(pomai_db_options_ex_t* opts);

/* Opens (creating if missing) a database and stores its handle in
 * *out_db; close it with pomai_close, which rolls back every transaction
 * still active (their handles then give CLOSED). Disk mode recovers every
 * committed transaction from the log after a crash. INVALID_ARGUMENT for a
 * NULL/empty path in disk mode, an unknown storage mode or fsync policy, or
 * a directory written by a build of an older format; IO_ERROR when
 * another process holds the database; CORRUPTION naming file and offset. */
POMAI_EXPORT pomai_status_t* pomai_db_open_ex(const pomai_db_options_ex_t* opts, pomai_db_t** out_db);

/* Disk mode: turns the memtable into a durable segment file (and returns when
 * the manifest names it). In-memory mode: INVALID_ARGUMENT "in-memory database
 * cannot be flushed". */
POMAI_EXPORT pomai_status_t* pomai_db_flush(pomai_db_t* db);

/* Fills *out with the database's memory figures (see pomai_memory_stats_t). */
POMAI_EXPORT pomai_status_t* pomai_db_memory_usage(pomai_db_t* db, pomai_memory_stats_t* out);

/* ---- transactions ---------------------------------------------------- */

/* Begins a transaction in `mode` (POMAI_TXN_*) on a snapshot of every
 * committed transaction, and stores its handle in *out_txn. A transaction is
 * used by one thread at a time (calls from several threads are serialised,
 * never a crash). It ends with pomai_txn_commit or pomai_txn_rollback; after
 * that, or after the database is closed, every call on it returns CLOSED
 * "transaction is closed". A failed operation other than commit leaves it
 * active. */
POMAI_EXPORT pomai_status_t* pomai_txn_begin(pomai_db_t* db, uint32_t mode, pomai_txn_t** out_txn);

/* Reads `key` as of the transaction's snapshot plus its own writes.
 * *out_found = false when the key is absent or deleted. When found, the value
 * has *out_len bytes and is copied into value_buf when *out_len <= buf_cap;
 * otherwise nothing is copied and the caller retries with a buffer of
 * *out_len bytes (the answer is stable within a transaction). value_buf may
 * be NULL when buf_cap is 0. For a key holding a vector record the value is
 * the record's metadata (empty when it has none). */
POMAI_EXPORT pomai_status_t* pomai_txn_get(pomai_txn_t* txn, const uint8_t* key, size_t key_len,
                                           uint8_t* value_buf, size_t buf_cap, size_t* out_len, bool* out_found);

/* Writes `key` = `value` (a plain-bytes value) in the transaction's write set;
 * visible to the transaction at once, to others after commit. READ_ONLY when
 * the transaction is read-only. value may be NULL when value_len is 0. */
POMAI_EXPORT pomai_status_t* pomai_txn_put(pomai_txn_t* txn, const uint8_t* key, size_t key_len,
                                           const uint8_t* value, size_t value_len);

/* Deletes `key` (a missing key is fine). READ_ONLY when read-only. */
POMAI_EXPORT pomai_status_t* pomai_txn_delete(pomai_txn_t* txn, const uint8_t* key, size_t key_len);

/* Makes the transaction's writes durable and visible, atomically: after a
 * crash all of them are present or none. First committer wins: when another
 * transaction committed a write to a key this one wrote (or to a named index
 * entry this one wrote, or to a key in a range this one's scans read: see
 * pomai_txn_scan) after this one began, returns CONFLICT "transaction
 * conflict" and nothing is applied. RESOURCE_EXHAUSTED "memory limit
 * exceeded" when the memory limit would be passed. The transaction is closed
 * afterwards whatever the outcome. Committing a read-only or empty
 * transaction succeeds and writes nothing. */
POMAI_EXPORT pomai_status_t* pomai_txn_commit(pomai_txn_t* txn);

/* Discards the transaction's writes and closes it. */
POMAI_EXPORT pomai_status_t* pomai_txn_rollback(pomai_txn_t* txn);

/* ---- key-range scans inside transactions ----------------------------- */

/* One entry of a scan batch. Pointers are owned by the enclosing batch. */
typedef struct pomai_kv_entry_t {
  const uint8_t* key;
  size_t key_len;
  const uint8_t* value;      /* NULL when value_len is 0 */
  size_t value_len;
} pomai_kv_entry_t;

/* A batch of pomai_txn_scan, freed by pomai_kv_scan_batch_free. */
typedef struct pomai_kv_scan_batch_t {
  size_t count;
  pomai_kv_entry_t* entries;  /* count entries, keys strictly ascending */
  bool more;                  /* another entry follows the last one: continue
                                 with lo = next_lo */
  const uint8_t* next_lo;     /* when more: the last key followed by one 0x00
                                 byte (the smallest key after it); else NULL */
  size_t next_lo_len;
} pomai_kv_scan_batch_t;

/* Frees a scan batch. NULL is a no-op. */
POMAI_EXPORT void pomai_kv_scan_batch_free(pomai_kv_scan_batch_t* batch);

/* Reads the keys in [lo, hi) that hold plain-bytes values, in ascending
 * byte order (shorter first on a common prefix), as of the transaction's
 * snapshot plus its own writes (its puts are seen, its deletes hide), and
 * stores a batch of them in *out_batch: at most max_entries (at least 1)
 * entries and, when max_bytes is not 0, at most max_bytes of keys plus
 * values, except that the first entry always comes back whatever its size.
 * Keys holding vector records are skipped (read them with
 * pomai_txn_get_vector or the searches); named-index entries and the rows
 * of pomai.h's collection are never seen.
 *
 * Bounds are byte strings of any length: lo_len 0 is the start of the
 * keyspace; hi NULL (hi_len 0) is no upper bound. A prefix P is the range
 * [P, P') where P' is P without its trailing 0xFF bytes and its last byte
 * then incremented (no bound when P is empty or all 0xFF). lo == hi gives an
 * empty batch.
 *
 * Each call is stateless: to read on, call again with lo = next_lo (the
 * previous batch may be freed first). A later call sees the transaction's
 * writes made in between. The first call on a range collects the range's
 * versions in the memtables (about 64 bytes per key there), which later
 * calls with the same hi reuse (the transaction keeps those of its 4 latest
 * ranges until it ends).
 *
 * In a READ_WRITE transaction each call records the range it read ([lo, hi)
 * when !more, [lo, next_lo) otherwise): the commit then also returns
 * CONFLICT when another transaction committed, after this one began, a write
 * (insert, update, delete; of a plain value or a vector record) to a key in
 * such a range, so a scan sees no phantom that a commit would miss. The
 * check reads the recorded ranges of the layers written since the snapshot,
 * under the commit lock. A transaction that writes nothing commits without
 * checks.
 *
 * INVALID_ARGUMENT for a NULL out_batch, lo NULL with lo_len > 0, hi NULL
 * with hi_len > 0, lo > hi ("lo '...' is greater than hi '...'"), or
 * max_entries 0; CORRUPTION naming file and offset for a damaged segment
 * entry in the range. *out_batch is NULL after a failure. */
POMAI_EXPORT pomai_status_t* pomai_txn_scan(pomai_txn_t* txn, const uint8_t* lo, size_t lo_len, const uint8_t* hi,
                                            size_t hi_len, size_t max_entries, size_t max_bytes,
                                            pomai_kv_scan_batch_t** out_batch);

/* ---- vectors inside transactions (flat, exact search) ---------------- */

/* Stores a vector record under `key`: `dim` finite floats, the metric
 * (POMAI_METRIC_*) and, when has_metadata, `metadata_len` bytes of metadata.
 * INVALID_ARGUMENT for dim 0, NaN or infinity, an unknown metric. */
POMAI_EXPORT pomai_status_t* pomai_txn_upsert_vector(pomai_txn_t* txn, const uint8_t* key, size_t key_len,
                                                     bool has_metadata, const uint8_t* metadata, size_t metadata_len,
                                                     const float* vector, uint32_t dim, uint32_t metric);

/* Reads the vector record under `key` (snapshot plus own writes): NOT_FOUND
 * when the key is absent, deleted or holds plain bytes; INVALID_ARGUMENT when
 * it was stored with another metric. *out_dim is set to its dimension and
 * the floats are copied into buf when *out_dim <= buf_cap (retry otherwise,
 * as for pomai_txn_get). */
POMAI_EXPORT pomai_status_t* pomai_txn_get_vector(pomai_txn_t* txn, const uint8_t* key, size_t key_len,
                                                  uint32_t metric, float* buf, uint32_t buf_cap, uint32_t* out_dim);

/* Exact top-k over the vector records visible to the transaction (its
 * snapshot plus its own uncommitted upserts), or only over the keys of the
 * filter when has_filter (filter_count keys; absent or non-vector keys are
 * skipped). A candidate stored with another metric or dimension is
 * INVALID_ARGUMENT naming the key. k 0 gives 0 hits. With return_vectors
 * each hit carries its vector. Hits are owned by *out_hits. */
POMAI_EXPORT pomai_status_t* pomai_txn_search_similar(pomai_txn_t* txn, const float* query, uint32_t dim,
                                                      uint32_t metric, uint32_t k, bool has_filter,
                                                      const uint8_t* const* filter_keys, const size_t* filter_key_lens,
                                                      size_t filter_count, bool return_vectors,
                                                      pomai_kv_hits_t** out_hits);

/* ---- named HNSW indexes ---------------------------------------------- */

/* Creates the index `name` (replacing an existing one and its entries),
 * durably. INVALID_ARGUMENT "invalid parameter ..." for dim outside 1..65535,
 * m outside 2..100, ef_construction outside m..4096, an unknown metric. */
POMAI_EXPORT pomai_status_t* pomai_index_create(pomai_db_t* db, const char* name, const pomai_hnsw_config_t* config);

/* Drops the index `name` and its entries, durably. NOT_FOUND when missing. */
POMAI_EXPORT pomai_status_t* pomai_index_drop(pomai_db_t* db, const char* name);

/* Fills *out with the index's statistics; NOT_FOUND when missing. */
POMAI_EXPORT pomai_status_t* pomai_index_stats(pomai_db_t* db, const char* name, pomai_hnsw_stats_t* out);

/* Approximate top-k over the index's committed entries, ef = max(k,
 * ef_search) (ef_search 0 = max(k, 50)). Each hit carries the entry's key,
 * score and metadata (no vector). NOT_FOUND when the index is missing;
 * INVALID_ARGUMENT for a query of another dimension or with NaN/infinity.
 * out_stats may be NULL; when given it receives the index's statistics at
 * the time of the search. */
POMAI_EXPORT pomai_status_t* pomai_index_search(pomai_db_t* db, const char* name, const float* query, uint32_t dim,
                                                uint32_t k, uint32_t ef_search, pomai_kv_hits_t** out_hits,
                                                pomai_hnsw_stats_t* out_stats);

/* pomai_index_search returning only the entries whose attributes pass
 * `where`, a filter expression (docs/FILTERS.md; NULL or "" = every entry):
 * min(k, passing entries) hits. INVALID_ARGUMENT "filter: ..." for a bad
 * expression, an attribute no entry has and `id` (entries have byte keys,
 * not u64 ids). */
POMAI_EXPORT pomai_status_t* pomai_index_search_where(pomai_db_t* db, const char* name, const float* query,
                                                      uint32_t dim, uint32_t k, uint32_t ef_search, const char* where,
                                                      pomai_kv_hits_t** out_hits, pomai_hnsw_stats_t* out_stats);

/* Makes index `name` ready to search through graphs now, as its first
 * pomai_index_search or pomai_index_stats would: when it has committed
 * entries and no graph yet, flushes the memtable to a segment, building the
 * graph of every index with entries there (which takes a while for many
 * entries), and calls fn(rows linked, rows, user_data) from one thread at a
 * time during the builds. Graphs live in the segments: after a reopen
 * nothing is built again. Returns at once, without calling fn, when the
 * index has a graph (or no entries). fn may be NULL. NOT_FOUND when the
 * index is missing; the flush's error when it fails (a search or stats call
 * then searches the entries exactly instead and does not fail). */
POMAI_EXPORT pomai_status_t* pomai_index_prepare(pomai_db_t* db, const char* name, pomai_progress_fn fn,
                                                 void* user_data);

/* Adds or replaces the entry `key` of index `name` in a READ_WRITE
 * transaction; applied at commit (invisible to searches before, discarded by
 * rollback). NOT_FOUND when the index is missing; INVALID_ARGUMENT for a
 * wrong dimension or NaN/infinity. */
POMAI_EXPORT pomai_status_t* pomai_txn_index_upsert(pomai_txn_t* txn, const char* name, const uint8_t* key,
                                                    size_t key_len, const float* vector, uint32_t dim,
                                                    bool has_metadata, const uint8_t* metadata, size_t metadata_len);

/* pomai_txn_index_upsert with typed attributes for pomai_index_search_where:
 * column_count columns (pomai_column_t, c_types.h) of ONE row each; a null
 * value (validity bit 0) leaves that attribute out. INVALID_ARGUMENT naming
 * the column for a bad name, type or value (the rules of pomai_put_rows).
 * An attribute's type is fixed by its first write to the index: a commit
 * giving it another is INVALID_ARGUMENT naming the entry and both types. */
POMAI_EXPORT pomai_status_t* pomai_txn_index_upsert_attrs(pomai_txn_t* txn, const char* name, const uint8_t* key,
                                                          size_t key_len, const float* vector, uint32_t dim,
                                                          bool has_metadata, const uint8_t* metadata,
                                                          size_t metadata_len, const pomai_column_t* columns,
                                                          size_t column_count);

/* Removes the entry `key` of index `name` at commit (a missing entry is fine). */
POMAI_EXPORT pomai_status_t* pomai_txn_index_delete(pomai_txn_t* txn, const char* name, const uint8_t* key,
                                                    size_t key_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* POMAI_KV_H_ */
