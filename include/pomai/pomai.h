/*
 * pomai/pomai.h: the pomai C ABI.
 *
 * Conventions (SPEC.md 1.1):
 *  - Every fallible function returns pomai_status_t*: NULL is success; a
 *    non-NULL status is owned by the caller and freed with pomai_status_free.
 *  - Inputs are copied or fully consumed before a call returns; the caller
 *    keeps ownership of everything it passes in.
 *  - Outputs are allocated by the library and freed only by the matching
 *    *_free function. Every *_free and pomai_close accept NULL.
 *  - No C++ exception and no crash crosses this boundary: NULL pointers, bad
 *    sizes, NaN, closed handles all come back as a status with a message that
 *    names the argument and the value.
 *  - All functions on one pomai_db_t are thread-safe. Searches run
 *    concurrently with writes and freezes.
 *  - Handles do not cross fork(). In a child process every pomai_db_t* and
 *    pomai_txn_t* made before the fork (by the parent or an earlier ancestor)
 *    is dead: every call on it returns POMAI_STATUS_CLOSED with a message
 *    saying it was made before fork() in process <pid>, and pomai_close of it
 *    returns NULL having done nothing: it touches no file, waits for no
 *    thread and leaves the parent's database, files and lock as they are
 *    (the child's copy of the database's memory is never freed). The parent
 *    keeps using its handles. A database the child opens after the fork works
 *    normally; one the parent holds open is locked (IO_ERROR) until the
 *    parent closes it. So open databases after forking, in each process.
 */
#ifndef POMAI_POMAI_H_
#define POMAI_POMAI_H_

#include "pomai/c_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ---------------------------------------------------------- */

/* The code of `status`; POMAI_STATUS_OK (0) for NULL. */
POMAI_EXPORT int pomai_status_code(const pomai_status_t* status);
/* The message of `status`, valid until the status is freed; "" for NULL. */
POMAI_EXPORT const char* pomai_status_message(const pomai_status_t* status);
/* Frees a status. NULL is a no-op. */
POMAI_EXPORT void pomai_status_free(pomai_status_t* status);

/* ---- library --------------------------------------------------------- */

/* ABI version: bumped only on incompatible changes (never so far). */
POMAI_EXPORT uint32_t pomai_abi_version(void);
/* Library version, e.g. "0.1.0"; static storage. */
POMAI_EXPORT const char* pomai_version_string(void);
/* Name of the SIMD target the distance kernels dispatch to on this CPU
 * (e.g. "AVX2", "AVX3", "SSE4", "EMU128"); static storage. */
POMAI_EXPORT const char* pomai_simd_target(void);
/* Frees memory the library returned through a plain pointer. NULL is a no-op. */
POMAI_EXPORT void pomai_free(void* ptr);

/* ---- open / close ---------------------------------------------------- */

/* Fills `opts` with the defaults: shards 4, dim 512, search_threads 0,
 * fsync NEVER, memory_budget 0, deadline 0, index HNSW, hnsw_m 32,
 * ef_construction 200, ef_search 64, adaptive_threshold 5000, metric L2.
 * Sets struct_size = sizeof(pomai_options_t). NULL is a no-op. */
POMAI_EXPORT void pomai_options_init(pomai_options_t* opts);

/* Opens (creating if missing) the database directory opts->path with its
 * default collection of u64-id rows (created with dim, metric and shards when
 * the directory has none: a directory made by pomai_db_open_ex gains one) and
 * stores a new handle in *out_db. The handle also works with the functions of
 * pomai/kv.h (transactions, named indexes). INVALID_ARGUMENT for a NULL/empty
 * path, dim 0 or above 65535, shards 0, an unknown metric, a struct_size
 * below 24, a directory written by a build of an older format, or a dim /
 * metric / shards that differs from the one the database was created with; IO_ERROR
 * when another process holds the database; CORRUPTION when a file is damaged
 * (the message names the file and the byte offset). */
POMAI_EXPORT pomai_status_t* pomai_open(const pomai_options_t* opts, pomai_db_t** out_db);

/* Closes the database: waits for running calls, makes the memtable durable
 * according to the fsync policy, releases the lock. A pomai_db_t* is an
 * opaque token, not an address, so using it after close is safe: any later
 * call returns POMAI_STATUS_CLOSED and a second pomai_close is a no-op
 * returning NULL. Calls on the handle that start while the close waits
 * return POMAI_STATUS_CLOSED, so a stream of calls cannot delay it. NULL is a
 * no-op, and so is a handle opened before a fork() in the parent (see the
 * conventions at the top). */
POMAI_EXPORT pomai_status_t* pomai_close(pomai_db_t* db);

/* ---- writes ---------------------------------------------------------- */

/* Inserts or replaces one vector (and its metadata). */
POMAI_EXPORT pomai_status_t* pomai_put(pomai_db_t* db, const pomai_upsert_t* item);

/* Inserts or replaces `n` vectors atomically: after a crash the batch is
 * present whole or not at all. Any invalid item (wrong dim, NaN or infinity,
 * NULL vector) fails the whole call and stores nothing. Within a batch the
 * last item with a given id wins. n == 0 is OK. */
POMAI_EXPORT pomai_status_t* pomai_put_batch(pomai_db_t* db, const pomai_upsert_t* items, size_t n);

/* Like pomai_put_batch for `n` rows of a dense row-major float32 matrix
 * `vectors` (n * dim floats) with ids `ids`, without metadata. */
POMAI_EXPORT pomai_status_t* pomai_put_array(pomai_db_t* db, const uint64_t* ids, const float* vectors,
                                             size_t n, uint32_t dim);

/* Deletes `id`. Deleting a missing id is OK. */
POMAI_EXPORT pomai_status_t* pomai_delete(pomai_db_t* db, uint64_t id);

/* Deletes `n` ids atomically. */
POMAI_EXPORT pomai_status_t* pomai_delete_batch(pomai_db_t* db, const uint64_t* ids, size_t n);

/* Turns the memtable into an immutable segment file and returns when the
 * segment is durable (fsynced, renamed, named by the manifest). Not needed
 * for visibility: writes are searchable at once. The u64-id row functions
 * below return INVALID_ARGUMENT "db has no default collection ..." on a
 * handle of pomai_db_open_ex. */
POMAI_EXPORT pomai_status_t* pomai_freeze(pomai_db_t* db);

/* Merges every segment into one (dropping overwritten and deleted rows and
 * all tombstones, starting the graph from the largest input's) and returns
 * when the merged segment is durable and named by the manifest. Searches run
 * throughout and never see a partial state. A background tiered policy also
 * merges segments after freezes; this forces a full merge. */
POMAI_EXPORT pomai_status_t* pomai_compact(pomai_db_t* db);

/* Statistics of the default collection as a NUL-terminated JSON object
 * stored in *out_json (free it with pomai_free): dim; "shards", per shard its
 * memtable rows; "segment_files", per segment file its rows, tombstones,
 * bytes and graph (m, ef_construction, max_level, avg_degree0, bytes,
 * vectors, reused_rows; null when it has none); and
 * totals: segments, segment_rows, segment_tombstones, segment_bytes,
 * memtable_rows, live_rows, dead_rows, graph_reused_rows. */
POMAI_EXPORT pomai_status_t* pomai_stats_json(pomai_db_t* db, char** out_json);

/* pomai_freeze and pomai_compact reporting progress to fn(done, total,
 * user_data) (see pomai_progress_fn); fn NULL is the same as the plain call. */
POMAI_EXPORT pomai_status_t* pomai_freeze_with_progress(pomai_db_t* db, pomai_progress_fn fn, void* user_data);
POMAI_EXPORT pomai_status_t* pomai_compact_with_progress(pomai_db_t* db, pomai_progress_fn fn, void* user_data);

/* ---- reads ----------------------------------------------------------- */

/* *out_exists = whether a live (not deleted) row with `id` exists. */
POMAI_EXPORT pomai_status_t* pomai_exists(pomai_db_t* db, uint64_t id, bool* out_exists);

/* Copies the live row `id` into a new record stored in *out_record; NOT_FOUND
 * when there is none. Free the record with pomai_record_free. */
POMAI_EXPORT pomai_status_t* pomai_get(pomai_db_t* db, uint64_t id, pomai_record_t** out_record);
POMAI_EXPORT void pomai_record_free(pomai_record_t* record);

/* *out_count = number of live rows. */
POMAI_EXPORT pomai_status_t* pomai_count(pomai_db_t* db, uint64_t* out_count);

/* Top-k search for one query. The memtable and segments with fewer than
 * adaptive_threshold rows are searched exactly; larger segments through their
 * HNSW graph (approximate, ef = max(topk, ef_search)). Scores are
 * higher-is-better, sorted by score descending then id ascending. topk 0
 * gives 0 results; a topk larger than the number of live rows gives all of
 * them. Deleted and overwritten rows never come back. */
POMAI_EXPORT pomai_status_t* pomai_search(pomai_db_t* db, const pomai_query_t* query,
                                          pomai_search_results_t** out_results);
POMAI_EXPORT void pomai_search_results_free(pomai_search_results_t* results);

/* Searches `n` queries (each with its own topk) and stores an array of `n`
 * results (48-byte structs) in *out_results. Free with
 * pomai_search_batch_free(results, n). */
POMAI_EXPORT pomai_status_t* pomai_search_batch(pomai_db_t* db, const pomai_query_t* queries, size_t n,
                                                pomai_search_results_t** out_results);
POMAI_EXPORT void pomai_search_batch_free(pomai_search_results_t* results, size_t n);

/* Searches `n` queries given as a dense row-major float32 matrix (n * dim)
 * with one topk (and ef_search, 0 = the open's default), writing into
 * caller-owned arrays of n * topk elements:
 * out_ids and out_scores (row i holds query i's results, best first) and
 * out_counts (n elements: how many results row i has; the rest of the row
 * is filled with id UINT64_MAX and score -infinity). */
POMAI_EXPORT pomai_status_t* pomai_search_array(pomai_db_t* db, const float* queries, size_t n, uint32_t dim,
                                                uint32_t topk, uint32_t ef_search, uint64_t* out_ids,
                                                float* out_scores, uint32_t* out_counts);

/* ---- attributes, filters, scans (docs/FILTERS.md) ------------------- */

/* Inserts or replaces `rows->n` rows atomically: vectors, optional metadata
 * and attribute columns (columns a row is not given are null in its new
 * version). A column's type is fixed by its first write: another type is
 * INVALID_ARGUMENT naming the column and both types. Any invalid row or
 * column fails the whole call and stores nothing. Within a batch the last row
 * with a given id wins. n == 0 is OK. */
POMAI_EXPORT pomai_status_t* pomai_put_rows(pomai_db_t* db, const pomai_rows_t* rows);

/* Sets the given attribute columns of the `n` live rows `ids` (their
 * vectors, metadata and other columns stay), atomically. NOT_FOUND naming
 * the first id that has no live row, and nothing changes. */
POMAI_EXPORT pomai_status_t* pomai_update_attributes(pomai_db_t* db, const uint64_t* ids, size_t n,
                                                     const pomai_column_t* columns, size_t column_count);

/* The default collection's attribute columns as a NUL-terminated JSON object
 * in *out_json (free with pomai_free): {"columns": [{"name", "type"}]} with
 * type "int64", "float64", "bool", "string" or "tags", in name order. */
POMAI_EXPORT pomai_status_t* pomai_schema_json(pomai_db_t* db, char** out_json);

/* *out_count = live rows that pass `filter` (NULL = every row). */
POMAI_EXPORT pomai_status_t* pomai_count_where(pomai_db_t* db, const pomai_filter_t* filter, uint64_t* out_count);

/* Deletes, as one atomic batch, the live rows that pass `filter` at one
 * snapshot (rows written after it are kept); *out_deleted = how many
 * (out_deleted may be NULL). A NULL filter or an empty one (no expression and
 * no ids) is INVALID_ARGUMENT: deleting every row is not done by accident. */
POMAI_EXPORT pomai_status_t* pomai_delete_where(pomai_db_t* db, const pomai_filter_t* filter, uint64_t* out_deleted);

/* pomai_search_array over the rows that pass `filter` (NULL = every row):
 * each query gets min(topk, rows that pass) results. */
POMAI_EXPORT pomai_status_t* pomai_search_array_filtered(pomai_db_t* db, const float* queries, size_t n,
                                                         uint32_t dim, uint32_t topk, uint32_t ef_search,
                                                         const pomai_filter_t* filter, uint64_t* out_ids,
                                                         float* out_scores, uint32_t* out_counts);

/* Reads the live rows that pass options->filter at one snapshot, in id
 * order, as a stream of Arrow record batches (the C Stream Interface,
 * pomai/arrow_c.h) stored in *out_stream, which the caller releases with
 * out_stream->release. Columns: "id" (uint64), then "vector"
 * (fixed_size_list<float32>[dim]) and "metadata" (large_binary, empty for a
 * row without) as flags
 * ask, then the asked attribute columns (int64, float64, bool, large_utf8,
 * large_list<large_utf8>), every attribute nullable. The stream pins the
 * snapshot's files until released; it may outlive neither the database
 * handle's close (a get_next after pomai_close fails with CLOSED's message)
 * nor a fork. options NULL = every row, vectors and metadata, every column. */
POMAI_EXPORT pomai_status_t* pomai_scan(pomai_db_t* db, const pomai_scan_options_t* options,
                                        struct ArrowArrayStream* out_stream);

/* ---- checks ---------------------------------------------------------- */

/* Checks the files of the open database `db` (of pomai_open or
 * pomai_db_open_ex) with the checks of `pomai-inspect verify DIR`
 * (docs/FORMAT.md, "pomai-inspect"): CURRENT and the manifest log decode;
 * every segment the manifest names exists and passes every checksum and its
 * structural checks (ids sorted, graph links in range, entries and groups,
 * ...); every live WAL file reads to its end and its records decode, with
 * sequence numbers increasing. The "checked" files' kinds are "current",
 * "manifest", "wal" and "segment". It reads every byte of every file, so it takes
 * time in proportion to the database's size. Writes and searches go on
 * meanwhile; until it returns, no freeze, flush or compaction replaces the
 * manifest or deletes a file (they wait), so the files it checks are the
 * database's current ones. An in-memory database has no files: nothing is
 * checked and the report says so in a note.
 *
 * db: an open database handle.
 * out_report_json: receives a NUL-terminated JSON object, owned by the caller
 *   and freed with pomai_free: "ok" (bool: no problem found), "error" (the
 *   first problem or null), "problems" ([{"file", "offset" (byte offset in
 *   file, or null), "code" (POMAI_STATUS_*), "message"}]), "notes" ([{"file",
 *   "offset", "message"}]: torn WAL tails, orphan files, damaged caches),
 *   "checked" ([{"file", "kind", "ok", "detail"}]), "counts" ({"checked",
 *   "problems", "notes"}), "path", "command" ("verify"). Set to NULL on
 *   failure.
 * Returns NULL when the check ran, whether or not it found damage (read
 * "ok"); INVALID_ARGUMENT for a NULL db or out_report_json or a handle that
 * pomai_open / pomai_db_open_ex did not return; CLOSED for a closed handle. */
POMAI_EXPORT pomai_status_t* pomai_verify(pomai_db_t* db, char** out_report_json);

#ifdef __cplusplus
} /* extern "C" */
#endif

#include "pomai/kv.h"

#endif /* POMAI_POMAI_H_ */
