// libFuzzer target: sequences of C ABI calls (include/pomai/pomai.h) on a
// temporary database: open (with good and bad options), put, put_batch,
// put_array, delete, freeze, compact, exists, get, count, search,
// search_batch, search_array, stats, close, reopen, and calls on a NULL
// handle, with arguments drawn from the input (wrong dims, NaN, NULL
// pointers, short struct_size, huge topk...). Checks that every call returns
// a status (never crashes, never leaks under ASan), that a second open of a
// held database is refused, and that search results are well formed.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <memory>
#include <filesystem>
#include <string>
#include <vector>

#include "capi_fuzz_util.h"
#include "pomai/pomai.h"

namespace {

std::string TempDir() { return pomai::fuzz::ScratchDir("capi-fuzz"); }
using pomai::fuzz::Take;

struct Fuzz {
  FuzzedDataProvider& in;
  pomai_db_t* db = nullptr;
  uint32_t dim = 4;  // the dim the database was created with (best guess)

  uint32_t PickDim() {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return 0;
      case 1: return in.ConsumeIntegralInRange<uint32_t>(1, 9);
      case 2: return 70000;
      default: return dim;
    }
  }
  std::vector<float> Vector(uint32_t n) {
    std::vector<float> v(n);
    for (auto& x : v) {
      switch (in.ConsumeIntegralInRange<int>(0, 15)) {
        case 0: x = std::nanf(""); break;
        case 1: x = INFINITY; break;
        case 2: x = 1e30f; break;
        default: x = static_cast<float>(in.ConsumeIntegralInRange<int>(-100, 100)) / 10.0f;
      }
    }
    return v;
  }
  uint64_t Id() {
    return in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 40) : in.ConsumeIntegral<uint64_t>();
  }
  uint32_t StructSize(uint32_t full, std::initializer_list<uint32_t> others) {
    if (in.ConsumeIntegralInRange<int>(0, 7) != 0) return full;
    std::vector<uint32_t> v(others);
    v.push_back(0);
    v.push_back(full + 16);
    return v[in.ConsumeIntegralInRange<size_t>(0, v.size() - 1)];
  }

  void Open() {
    pomai_options_t o;
    pomai_options_init(&o);
    o.struct_size = StructSize(sizeof(o), {24, 48, 8});
    const std::string path = TempDir();
    const int p = in.ConsumeIntegralInRange<int>(0, 15);
    o.path = p == 0 ? nullptr : p == 1 ? "" : path.c_str();
    o.shards = in.ConsumeIntegralInRange<int>(0, 9) == 0 ? in.ConsumeIntegralInRange<uint32_t>(0, 2000)
                                                         : in.ConsumeIntegralInRange<uint32_t>(1, 3);
    uint32_t d = in.ConsumeIntegralInRange<int>(0, 9) == 0 ? PickDim() : in.ConsumeIntegralInRange<uint32_t>(1, 8);
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
      // A boundary dimension: 2^k - 1, 2^k or 2^k + 1 up to 65537.
      d = (uint32_t{1} << in.ConsumeIntegralInRange<int>(0, 16)) - 1 + in.ConsumeIntegralInRange<uint32_t>(0, 2);
    }
    o.dim = d;
    o.search_threads = in.ConsumeIntegralInRange<uint32_t>(0, 2);
    o.fsync_policy = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? POMAI_FSYNC_POLICY_ALWAYS : POMAI_FSYNC_POLICY_NEVER;
    o.memory_budget_bytes = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegralInRange<uint64_t>(1, 4096) : 0;
    o.index_type = in.ConsumeIntegralInRange<uint8_t>(0, 2);
    o.hnsw_m = in.ConsumeIntegralInRange<uint32_t>(0, 40);
    o.hnsw_ef_construction = in.ConsumeIntegralInRange<uint32_t>(0, 64);
    o.hnsw_ef_search = in.ConsumeIntegralInRange<uint32_t>(0, 100);
    o.adaptive_threshold = in.ConsumeIntegralInRange<uint32_t>(0, 20);
    o.metric = in.ConsumeIntegralInRange<uint8_t>(0, 3);
    o.deadline_ms = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegralInRange<uint32_t>(1, 5) : 0;
    pomai_db_t* out = nullptr;
    const int code = Take(pomai_open(&o, &out));
    if (code == 0) {
      FUZZ_CHECK(out != nullptr, "open OK gives a handle");
      if (db != nullptr) {
        Take(pomai_close(out));
        FUZZ_CHECK(false, "a second open of a held database succeeded");
      }
      db = out;
      dim = d;
    }
  }

  pomai_db_t* Handle() { return in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : db; }

  void FillUpsert(pomai_upsert_t* u, std::vector<float>* vec, std::vector<uint8_t>* meta) {
    std::memset(u, 0, sizeof(*u));
    u->struct_size = StructSize(sizeof(*u), {8, 28, 32});
    u->id = Id();
    const uint32_t d = PickDim();
    *vec = Vector(d == 70000 ? 8 : d);  // the claimed dim may exceed the buffer only when it is wrong anyway
    u->dim = d == 70000 ? 8 : d;
    u->vector = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : vec->data();
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {
      // 2^k - 1, 2^k or 2^k + 1 bytes up to 16 MiB, generated.
      const size_t n = (size_t{1} << in.ConsumeIntegralInRange<int>(0, 24)) - 1 + in.ConsumeIntegralInRange<size_t>(0, 2);
      meta->resize(n);
      for (size_t i = 0; i < n; ++i) (*meta)[i] = static_cast<uint8_t>(i * 13 + (i >> 9));
    } else {
      *meta = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 12));
    }
    u->metadata = meta->empty() && in.ConsumeBool() ? nullptr : meta->data();
    u->metadata_len = static_cast<uint32_t>(meta->size());
  }

  // Lays `items` out as a caller of an older or newer ABI would: every
  // element `stride` bytes apart (the struct_size of items[0], which the C
  // ABI takes as the stride), copying what fits. The buffer ends right after
  // the last element's stride (at least its struct_size field and 8 bytes),
  // so a read past what the caller declared is caught by ASan.
  template <class T>
  std::unique_ptr<pomai::fuzz::AlignedBytes> Lay(std::vector<T>& items) {
    const size_t n = items.size();
    const uint32_t stride = n ? items[0].struct_size : 0;
    const size_t size = n ? (n - 1) * size_t{stride} + std::max<size_t>(stride, 8) : 0;
    std::vector<uint8_t> raw(size, 0);
    for (size_t i = 0; i < n && (i == 0 || stride > 0); ++i) {  // stride 0: the elements would overlap element 0
      if (i > 0 && in.ConsumeIntegralInRange<int>(0, 31) != 0) items[i].struct_size = stride;
      const size_t room = size - i * size_t{stride};
      std::memcpy(raw.data() + i * size_t{stride}, &items[i], std::min({sizeof(T), room, size_t{stride} ? size_t{stride} : size_t{8}}));
    }
    return std::make_unique<pomai::fuzz::AlignedBytes>(raw.data(), raw.size());
  }

  void CheckResults(const pomai_search_results_t* r, uint32_t topk) {
    FUZZ_CHECK(r->count <= topk, "at most topk results");
    for (size_t i = 1; i < r->count; ++i) {
      FUZZ_CHECK(!(r->scores[i] > r->scores[i - 1]), "scores descending");
    }
  }

  uint32_t TopK() {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return 0;
      case 1: return UINT32_MAX;
      case 2: return 1u << 31;
      default: return in.ConsumeIntegralInRange<uint32_t>(1, 20);
    }
  }

  void FillQuery(pomai_query_t* q, std::vector<float>* vec) {
    std::memset(q, 0, sizeof(*q));
    q->struct_size = StructSize(sizeof(*q), {8, 24, 40});
    const uint32_t d = PickDim();
    *vec = Vector(d == 70000 ? 8 : d);
    q->dim = d == 70000 ? 8 : d;
    q->vector = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : vec->data();
    q->topk = TopK();
    q->filter_expression = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? "x > 1" : nullptr;
    q->flags = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? 1 : 0;
    q->ef_search = in.ConsumeIntegralInRange<uint32_t>(0, 80);
  }

  // A filter from a small set: valid ones over the columns PutRows writes,
  // unknown columns, type mismatches, syntax errors.
  const char* Expression() {
    static const char* const kExpr[] = {"", "a < 3", "s = 'x' OR t CONTAINS 'p'", "NOT (f >= 0.5) AND b",
                                        "a IS NULL", "id IN (1, 2, 3)", "s > 'a' AND a BETWEEN 0 AND 9",
                                        "zz = 1", "a = 'x'", "(a < ", "t CONTAINS ALL ('p', 'q')"};
    return kExpr[in.ConsumeIntegralInRange<size_t>(0, sizeof(kExpr) / sizeof(kExpr[0]) - 1)];
  }

  // pomai_put_rows of up to 12 rows with a random subset of the columns a
  // (int64), f (float64), b (bool), s (string), t (tags), each maybe given
  // another type (a conflict), with nulls, NaN, bad offsets, bad UTF-8.
  void PutRows() {
    const size_t n = in.ConsumeIntegralInRange<size_t>(0, 12);
    const uint32_t d = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? dim + 1 : dim;
    std::vector<uint64_t> ids(n);
    for (auto& id : ids) id = Id();
    std::vector<float> vecs = Vector(static_cast<uint32_t>(n * (d == 0 ? 1 : d)));
    std::vector<int64_t> ints(n), offs(n + 1), tag_lists(n + 1), tag_offs(2 * n + 1);
    std::vector<double> floats(n);
    std::vector<uint8_t> bools(n), validity((n + 7) / 8 + 1);
    std::string bytes;
    for (size_t i = 0; i < n; ++i) {
      ints[i] = in.ConsumeIntegralInRange<int64_t>(-2, 12);
      floats[i] = in.ConsumeIntegralInRange<int>(0, 31) == 0 ? std::nan("") : ints[i] / 4.0;
      bools[i] = in.ConsumeIntegralInRange<int>(0, 31) == 0 ? 2 : ints[i] & 1;
      validity[i / 8] |= static_cast<uint8_t>(in.ConsumeIntegralInRange<int>(0, 4) != 0) << (i % 8);
      bytes += in.ConsumeIntegralInRange<int>(0, 31) == 0 ? "\xff" : (ints[i] & 2 ? "x" : "p");
      offs[i + 1] = static_cast<int64_t>(bytes.size());
      tag_lists[i + 1] = static_cast<int64_t>(i + 1);
    }
    for (size_t j = 0; j <= n; ++j) tag_offs[j] = offs[j];
    if (n > 0 && in.ConsumeIntegralInRange<int>(0, 31) == 0) offs[n / 2] = -5;  // bad offsets
    static const char* const kNames[] = {"a", "f", "b", "s", "t"};
    std::vector<pomai_column_t> cols;
    for (int c = 0; c < 5; ++c) {
      if (!in.ConsumeBool()) continue;
      pomai_column_t col{sizeof(pomai_column_t), static_cast<uint32_t>(c + 1), kNames[c], nullptr, nullptr, nullptr,
                         nullptr};
      if (in.ConsumeIntegralInRange<int>(0, 15) == 0) col.type = in.ConsumeIntegralInRange<uint32_t>(0, 7);  // conflict
      if (in.ConsumeBool()) col.validity = validity.data();
      switch (col.type) {
        case POMAI_ATTR_INT64: col.values = ints.data(); break;
        case POMAI_ATTR_FLOAT64: col.values = floats.data(); break;
        case POMAI_ATTR_BOOL: col.values = bools.data(); break;
        case POMAI_ATTR_STRING:
          col.values = bytes.data();
          col.offsets = offs.data();
          break;
        case POMAI_ATTR_TAGS:
          col.values = bytes.data();
          col.offsets = tag_lists.data();
          col.tag_offsets = tag_offs.data();
          break;
        default: col.values = ints.data(); break;
      }
      cols.push_back(col);
    }
    pomai_rows_t rows{StructSize(sizeof(pomai_rows_t), {8, 32, 48}), d, n, ids.data(),
                      in.ConsumeIntegralInRange<int>(0, 31) == 0 ? nullptr : vecs.data(), nullptr, nullptr,
                      cols.data(), cols.size()};
    Take(pomai_put_rows(Handle(), in.ConsumeIntegralInRange<int>(0, 31) == 0 ? nullptr : &rows));
  }

  // Reads a scan's stream to its end, checking every batch's shape.
  void Scan() {
    pomai_filter_t f{sizeof(pomai_filter_t), Expression(), nullptr, 0};
    pomai_scan_options_t o{sizeof(o), in.ConsumeIntegralInRange<uint32_t>(0, 4), &f, nullptr, 0,
                           in.ConsumeIntegralInRange<size_t>(0, 5)};
    ArrowArrayStream stream;
    if (Take(pomai_scan(Handle(), &o, &stream)) != 0) {
      FUZZ_CHECK(stream.release == nullptr, "a refused scan leaves no stream");
      return;
    }
    ArrowSchema schema;
    FUZZ_CHECK(stream.get_schema(&stream, &schema) == 0, "scan schema");
    const int64_t columns = schema.n_children;
    schema.release(&schema);
    for (;;) {
      ArrowArray a;
      if (stream.get_next(&stream, &a) != 0 || a.release == nullptr) break;
      FUZZ_CHECK(a.n_children == columns && a.length >= 1 && a.length <= static_cast<int64_t>(o.batch_rows ? o.batch_rows : 65536),
                 "scan batch shape");
      const auto* ids = static_cast<const uint64_t*>(a.children[0]->buffers[1]);
      for (int64_t j = 1; j < a.length; ++j) FUZZ_CHECK(ids[j - 1] < ids[j], "scan ids ascending");
      a.release(&a);
    }
    stream.release(&stream);
  }

  void Step() {
    switch (in.ConsumeIntegralInRange<int>(0, 20)) {
      case 16: PutRows(); break;
      case 17: {
        pomai_filter_t f{StructSize(sizeof(pomai_filter_t), {8, 16}), Expression(), nullptr, 0};
        uint64_t n = 0;
        Take(pomai_count_where(Handle(), &f, &n));
        break;
      }
      case 18: {
        pomai_filter_t f{sizeof(pomai_filter_t), Expression(), nullptr, 0};
        uint64_t deleted = 0;
        Take(pomai_delete_where(Handle(), &f, &deleted));
        break;
      }
      case 19: {
        pomai_query_t q;
        std::vector<float> v;
        FillQuery(&q, &v);
        q.filter_expression = Expression();
        pomai_search_results_t* r = nullptr;
        if (Take(pomai_search(Handle(), &q, &r)) == 0) CheckResults(r, q.topk);
        pomai_search_results_free(r);
        break;
      }
      case 20: Scan(); break;
      case 0: Open(); break;
      case 1: {
        pomai_upsert_t u;
        std::vector<float> v;
        std::vector<uint8_t> m;
        FillUpsert(&u, &v, &m);
        Take(pomai_put(Handle(), in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : &u));
        break;
      }
      case 2: {
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, 12);
        std::vector<pomai_upsert_t> items(n);
        std::vector<std::vector<float>> vs(n);
        std::vector<std::vector<uint8_t>> ms(n);
        for (size_t i = 0; i < n; ++i) FillUpsert(&items[i], &vs[i], &ms[i]);
        auto laid = Lay(items);
        const auto* arr = reinterpret_cast<const pomai_upsert_t*>(laid->data());
        Take(pomai_put_batch(Handle(), n && in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : arr, n));
        break;
      }
      case 3: {
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, 40);
        std::vector<uint64_t> ids(n);
        for (auto& id : ids) id = Id();
        const uint32_t d = PickDim();
        const uint32_t real = d == 70000 ? 1 : d;
        std::vector<float> v = Vector(static_cast<uint32_t>(n * real));
        Take(pomai_put_array(Handle(), ids.data(), v.data(), n, real));
        break;
      }
      case 4: Take(pomai_delete(Handle(), Id())); break;
      case 5: {
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, 10);
        std::vector<uint64_t> ids(n);
        for (auto& id : ids) id = Id();
        Take(pomai_delete_batch(Handle(), n && in.ConsumeBool() ? ids.data() : (n ? nullptr : ids.data()), n));
        break;
      }
      case 6: Take(pomai_freeze(Handle())); break;
      case 7: Take(pomai_compact(Handle())); break;
      case 8: {
        bool exists = false;
        Take(pomai_exists(Handle(), Id(), in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : &exists));
        break;
      }
      case 9: {
        pomai_record_t* rec = nullptr;
        const bool null_out = in.ConsumeIntegralInRange<int>(0, 15) == 0;
        if (Take(pomai_get(Handle(), Id(), null_out ? nullptr : &rec)) == 0 && !null_out) {
          FUZZ_CHECK(rec != nullptr && rec->dim == dim, "record");
          pomai::fuzz::Touch(rec->vector, size_t{rec->dim} * 4);
        }
        pomai_record_free(rec);
        break;
      }
      case 10: {
        uint64_t count = 0;
        Take(pomai_count(Handle(), in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : &count));
        break;
      }
      case 11: {
        pomai_query_t q;
        std::vector<float> v;
        FillQuery(&q, &v);
        pomai_search_results_t* r = nullptr;
        if (Take(pomai_search(Handle(), &q, &r)) == 0) {
          FUZZ_CHECK(r != nullptr, "results");
          CheckResults(r, q.topk);
        }
        pomai_search_results_free(r);
        break;
      }
      case 12: {
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, 4);
        std::vector<pomai_query_t> qs(n);
        std::vector<std::vector<float>> vs(n);
        for (size_t i = 0; i < n; ++i) FillQuery(&qs[i], &vs[i]);
        auto laid = Lay(qs);
        pomai_search_results_t* r = nullptr;
        if (Take(pomai_search_batch(Handle(), reinterpret_cast<const pomai_query_t*>(laid->data()), n, &r)) == 0) {
          for (size_t i = 0; i < n; ++i) CheckResults(&r[i], qs[i].topk);
        }
        pomai_search_batch_free(r, n);
        break;
      }
      case 13: {
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, 4);
        const uint32_t topk = in.ConsumeIntegralInRange<uint32_t>(0, 16);
        const uint32_t d = PickDim();
        const uint32_t real = d == 70000 ? 1 : d;
        std::vector<float> q = Vector(static_cast<uint32_t>(n * real));
        std::vector<uint64_t> ids(n * topk);
        std::vector<float> scores(n * topk);
        std::vector<uint32_t> counts(n);
        if (Take(pomai_search_array(Handle(), q.data(), n, real, topk, in.ConsumeIntegralInRange<uint32_t>(0, 50),
                                    ids.data(), scores.data(), counts.data())) == 0) {
          for (uint32_t c : counts) FUZZ_CHECK(c <= topk, "count within topk");
        }
        break;
      }
      case 14: {
        char* json = nullptr;
        if (Take(pomai_stats_json(Handle(), &json)) == 0) FUZZ_CHECK(json != nullptr && json[0] == '{', "stats json");
        pomai_free(json);
        break;
      }
      case 15:
        Take(pomai_close(db));
        db = nullptr;
        break;
      default: Take(pomai_close(nullptr)); break;
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::error_code ec;
  std::filesystem::remove_all(TempDir(), ec);
  FuzzedDataProvider in(data, size);
  Fuzz f{in};
  f.Open();
  for (int step = 0; step < 48 && in.remaining_bytes() > 0; ++step) f.Step();
  Take(pomai_close(f.db));
  std::filesystem::remove_all(TempDir(), ec);
  return 0;
}
