// The C ABI's struct layouts: pomai.h's pinned to SPEC.md 1.2 (PomaiDB-compatible)
// and kv.h's documented x86-64 layout.
#include <gtest/gtest.h>

#include <cstddef>

#include "pomai/pomai.h"

namespace {

TEST(CAbiLayout, OptionsMatchesPomaiDB) {
  EXPECT_EQ(sizeof(pomai_options_t), 72u);
  EXPECT_EQ(offsetof(pomai_options_t, struct_size), 0u);
  EXPECT_EQ(offsetof(pomai_options_t, path), 8u);
  EXPECT_EQ(offsetof(pomai_options_t, shards), 16u);
  EXPECT_EQ(offsetof(pomai_options_t, dim), 20u);
  EXPECT_EQ(offsetof(pomai_options_t, search_threads), 24u);
  EXPECT_EQ(offsetof(pomai_options_t, fsync_policy), 28u);
  EXPECT_EQ(sizeof(pomai_fsync_policy_t), 4u);
  EXPECT_EQ(offsetof(pomai_options_t, memory_budget_bytes), 32u);
  EXPECT_EQ(offsetof(pomai_options_t, deadline_ms), 40u);
  EXPECT_EQ(offsetof(pomai_options_t, index_type), 44u);
  EXPECT_EQ(offsetof(pomai_options_t, hnsw_m), 48u);
  EXPECT_EQ(offsetof(pomai_options_t, hnsw_ef_construction), 52u);
  EXPECT_EQ(offsetof(pomai_options_t, hnsw_ef_search), 56u);
  EXPECT_EQ(offsetof(pomai_options_t, adaptive_threshold), 60u);
  EXPECT_EQ(offsetof(pomai_options_t, metric), 64u);
  EXPECT_EQ(offsetof(pomai_options_t, hnsw_vectors), 65u);  // in PomaiDB's padding: the size stays 72
}

TEST(CAbiLayout, UpsertMatchesPomaiDB) {
  EXPECT_EQ(sizeof(pomai_upsert_t), 48u);
  EXPECT_EQ(offsetof(pomai_upsert_t, id), 8u);
  EXPECT_EQ(offsetof(pomai_upsert_t, vector), 16u);
  EXPECT_EQ(offsetof(pomai_upsert_t, dim), 24u);
  EXPECT_EQ(offsetof(pomai_upsert_t, metadata), 32u);
  EXPECT_EQ(offsetof(pomai_upsert_t, metadata_len), 40u);
}

TEST(CAbiLayout, QueryMatchesPomaiDB) {
  EXPECT_EQ(sizeof(pomai_query_t), 64u);
  EXPECT_EQ(offsetof(pomai_query_t, vector), 8u);
  EXPECT_EQ(offsetof(pomai_query_t, dim), 16u);
  EXPECT_EQ(offsetof(pomai_query_t, topk), 20u);
  EXPECT_EQ(offsetof(pomai_query_t, filter_expression), 24u);
  EXPECT_EQ(offsetof(pomai_query_t, alpha), 32u);
  EXPECT_EQ(offsetof(pomai_query_t, deadline_ms), 36u);
  EXPECT_EQ(offsetof(pomai_query_t, flags), 40u);
  EXPECT_EQ(offsetof(pomai_query_t, ef_search), 44u);  // beyond PomaiDB, inside its 48 bytes
  EXPECT_EQ(offsetof(pomai_query_t, filter_ids), 48u);  // beyond PomaiDB: struct_size 64
  EXPECT_EQ(offsetof(pomai_query_t, filter_id_count), 56u);
}

TEST(CAbiLayout, AttributeFilterAndScanStructsHaveTheDocumentedOffsets) {
  EXPECT_EQ(sizeof(pomai_column_t), 48u);
  EXPECT_EQ(offsetof(pomai_column_t, type), 4u);
  EXPECT_EQ(offsetof(pomai_column_t, name), 8u);
  EXPECT_EQ(offsetof(pomai_column_t, validity), 16u);
  EXPECT_EQ(offsetof(pomai_column_t, values), 24u);
  EXPECT_EQ(offsetof(pomai_column_t, offsets), 32u);
  EXPECT_EQ(offsetof(pomai_column_t, tag_offsets), 40u);
  EXPECT_EQ(sizeof(pomai_rows_t), 64u);
  EXPECT_EQ(offsetof(pomai_rows_t, dim), 4u);
  EXPECT_EQ(offsetof(pomai_rows_t, n), 8u);
  EXPECT_EQ(offsetof(pomai_rows_t, ids), 16u);
  EXPECT_EQ(offsetof(pomai_rows_t, vectors), 24u);
  EXPECT_EQ(offsetof(pomai_rows_t, metadata_offsets), 32u);
  EXPECT_EQ(offsetof(pomai_rows_t, metadata), 40u);
  EXPECT_EQ(offsetof(pomai_rows_t, columns), 48u);
  EXPECT_EQ(offsetof(pomai_rows_t, column_count), 56u);
  EXPECT_EQ(sizeof(pomai_filter_t), 32u);
  EXPECT_EQ(offsetof(pomai_filter_t, expression), 8u);
  EXPECT_EQ(offsetof(pomai_filter_t, ids), 16u);
  EXPECT_EQ(offsetof(pomai_filter_t, id_count), 24u);
  EXPECT_EQ(sizeof(pomai_scan_options_t), 40u);
  EXPECT_EQ(offsetof(pomai_scan_options_t, flags), 4u);
  EXPECT_EQ(offsetof(pomai_scan_options_t, filter), 8u);
  EXPECT_EQ(offsetof(pomai_scan_options_t, columns), 16u);
  EXPECT_EQ(offsetof(pomai_scan_options_t, column_count), 24u);
  EXPECT_EQ(offsetof(pomai_scan_options_t, batch_rows), 32u);
  // The Arrow C Data Interface's own layout (its specification's, x86-64).
  EXPECT_EQ(sizeof(ArrowSchema), 72u);
  EXPECT_EQ(sizeof(ArrowArray), 80u);
  EXPECT_EQ(sizeof(ArrowArrayStream), 40u);
}

TEST(CAbiLayout, RecordSemanticPointerAndResultsMatchPomaiDB) {
  EXPECT_EQ(offsetof(pomai_record_t, id), 8u);
  EXPECT_EQ(offsetof(pomai_record_t, dim), 16u);
  EXPECT_EQ(offsetof(pomai_record_t, vector), 24u);
  EXPECT_EQ(offsetof(pomai_record_t, metadata), 32u);
  EXPECT_EQ(offsetof(pomai_record_t, metadata_len), 40u);
  EXPECT_EQ(offsetof(pomai_record_t, is_deleted), 44u);
  EXPECT_EQ(sizeof(pomai_record_t), 48u);
  EXPECT_EQ(sizeof(pomai_semantic_pointer_t), 40u);
  EXPECT_EQ(offsetof(pomai_semantic_pointer_t, raw_data_ptr), 8u);
  EXPECT_EQ(offsetof(pomai_semantic_pointer_t, dim), 16u);
  EXPECT_EQ(offsetof(pomai_semantic_pointer_t, quant_min), 20u);
  EXPECT_EQ(offsetof(pomai_semantic_pointer_t, quant_inv_scale), 24u);
  EXPECT_EQ(offsetof(pomai_semantic_pointer_t, session_id), 32u);
  EXPECT_EQ(sizeof(pomai_search_results_t), 48u);
  EXPECT_EQ(offsetof(pomai_search_results_t, count), 8u);
  EXPECT_EQ(offsetof(pomai_search_results_t, ids), 16u);
  EXPECT_EQ(offsetof(pomai_search_results_t, scores), 24u);
  EXPECT_EQ(offsetof(pomai_search_results_t, shard_ids), 32u);
  EXPECT_EQ(offsetof(pomai_search_results_t, zero_copy_pointers), 40u);
}

TEST(CAbiLayout, StatusCodesMatchTheSpec) {
  EXPECT_EQ(POMAI_STATUS_OK, 0);
  EXPECT_EQ(POMAI_STATUS_INVALID_ARGUMENT, 1);
  EXPECT_EQ(POMAI_STATUS_NOT_FOUND, 2);
  EXPECT_EQ(POMAI_STATUS_ALREADY_EXISTS, 3);
  EXPECT_EQ(POMAI_STATUS_IO_ERROR, 4);
  EXPECT_EQ(POMAI_STATUS_CORRUPTION, 5);
  EXPECT_EQ(POMAI_STATUS_RESOURCE_EXHAUSTED, 6);
  EXPECT_EQ(POMAI_STATUS_DEADLINE_EXCEEDED, 7);
  EXPECT_EQ(POMAI_STATUS_INTERNAL, 8);
  EXPECT_EQ(POMAI_STATUS_UNIMPLEMENTED, 9);
  EXPECT_EQ(POMAI_STATUS_PARTIAL_FAILURE, 10);
}

// kv.h's documented x86-64 layout.
TEST(CAbiLayout, KeyspaceStructsHaveTheDocumentedOffsets) {
  EXPECT_EQ(sizeof(pomai_db_options_ex_t), 40u);
  EXPECT_EQ(offsetof(pomai_db_options_ex_t, path), 8u);
  EXPECT_EQ(offsetof(pomai_db_options_ex_t, storage_mode), 16u);
  EXPECT_EQ(offsetof(pomai_db_options_ex_t, fsync_policy), 20u);
  EXPECT_EQ(offsetof(pomai_db_options_ex_t, memory_limit_bytes), 24u);
  EXPECT_EQ(offsetof(pomai_db_options_ex_t, search_threads), 32u);
  EXPECT_EQ(sizeof(pomai_hnsw_config_t), 20u);
  EXPECT_EQ(offsetof(pomai_hnsw_config_t, dim), 4u);
  EXPECT_EQ(offsetof(pomai_hnsw_config_t, metric), 16u);
}

}  // namespace
