/* The README's C example, built and run as a test: open, write a batch,
 * freeze, search, close. Compiled as C to prove the header is valid C. */
#include <stdio.h>
#include <stdlib.h>

#include "pomai/pomai.h"

static int check(pomai_status_t* st, const char* what) {
  if (st == NULL) return 0;
  fprintf(stderr, "%s failed (%d): %s\n", what, pomai_status_code(st), pomai_status_message(st));
  pomai_status_free(st);
  return 1;
}

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/tmp/pomai_c_example";
  pomai_options_t opts;
  pomai_options_init(&opts);
  opts.path = path;
  opts.dim = 4;
  opts.shards = 1;
  opts.metric = POMAI_METRIC_IP;
  opts.fsync_policy = POMAI_FSYNC_POLICY_ALWAYS;

  pomai_db_t* db = NULL;
  if (check(pomai_open(&opts, &db), "open")) return 1;

  float vecs[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0.7f, 0.7f, 0, 0}};
  pomai_upsert_t items[3];
  for (int i = 0; i < 3; ++i) {
    items[i] = (pomai_upsert_t){.struct_size = sizeof(pomai_upsert_t), .id = (uint64_t)(i + 1),
                                .vector = vecs[i], .dim = 4};
  }
  if (check(pomai_put_batch(db, items, 3), "put_batch")) return 1;
  if (check(pomai_freeze(db), "freeze")) return 1;

  float q[4] = {1, 0.1f, 0, 0};
  pomai_query_t query = {.struct_size = sizeof(pomai_query_t), .vector = q, .dim = 4, .topk = 2};
  pomai_search_results_t* res = NULL;
  if (check(pomai_search(db, &query, &res), "search")) return 1;
  for (size_t i = 0; i < res->count; ++i) printf("id=%llu score=%.3f\n", (unsigned long long)res->ids[i], res->scores[i]);
  int ok = res->count == 2 && res->ids[0] == 1 && res->ids[1] == 3;
  pomai_search_results_free(res);
  if (check(pomai_close(db), "close")) return 1;
  return ok ? 0 : 2;
}
