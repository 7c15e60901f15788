// The key table (memtable/key_table.h): point lookups through the slot
// table and each key's arena head, which copies the key and the newest plain
// value, must answer exactly what the versions say, for every key length,
// every value size around the inline limit and every change of value kind,
// and a view a lookup returned must stay valid while newer versions arrive.
#include "memtable/key_table.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace pomai::memtable {
namespace {

ValuePtr Bytes(std::string b) {
  auto v = std::make_shared<Value>();
  v->kind = ValueKind::kBytes;
  v->bytes = std::move(b);
  return v;
}
ValuePtr Vector(std::vector<float> x, std::string meta, bool has_meta, simd::Metric metric) {
  auto v = std::make_shared<Value>();
  v->kind = ValueKind::kVector;
  v->vec = std::move(x);
  v->bytes = std::move(meta);
  v->has_metadata = has_meta;
  v->metric = metric;
  return v;
}
ValuePtr Tombstone() { return std::make_shared<Value>(); }

void Put(KeyTable* m, uint64_t seq, const std::string& key, ValuePtr v, uint64_t min_snapshot = 0) {
  m->Apply(seq, {Write{key, std::move(v)}}, min_snapshot);
}

// Keys that share prefixes, of lengths 1 to 56.
std::vector<std::string> HeadSharingKeys() {
  const std::string head = std::string(1, '\0') + "abcdefghijklmno";  // 16 bytes
  std::vector<std::string> keys = {std::string(1, '\0'), head.substr(0, 15), head, head + "p", head + "q",
                                   head + "pp", head + std::string(40, 'x'), head + std::string(40, 'y')};
  return keys;
}

TEST(KeyTable, KeysSharingPrefixesAreToldApart) {
  KeyTable m;
  const std::vector<std::string> keys = HeadSharingKeys();
  for (size_t i = 0; i < keys.size(); ++i) Put(&m, i + 1, keys[i], Bytes("v" + std::to_string(i)));
  for (size_t i = 0; i < keys.size(); ++i) {
    VersionView v;
    ASSERT_TRUE(m.Get(keys[i], 100, &v)) << i;
    EXPECT_EQ(v.bytes, "v" + std::to_string(i)) << i;
    EXPECT_EQ(v.seq, i + 1);
    EXPECT_EQ(m.LatestSeq(keys[i]), i + 1);
  }
  // Same head, other lengths or tails: absent.
  const std::string head = keys[2];
  for (const std::string& k : {head + "r", head + std::string(40, 'z'), head.substr(0, 14),
                               head + std::string(39, 'x'), std::string(1, '\0') + "abcdefghijklmnO"}) {
    VersionView v;
    EXPECT_FALSE(m.Get(k, 100, &v)) << k.size();
    EXPECT_EQ(m.LatestSeq(k), 0u);
  }
}

TEST(KeyTable, EveryChangeOfKindIsSeenAtItsSnapshot) {
  for (const std::string& key : HeadSharingKeys()) {
    KeyTable m;
    Put(&m, 1, key, Bytes("plain"));
    Put(&m, 2, key, Vector({1, 2, 3}, "meta", true, simd::Metric::kCosine));
    Put(&m, 3, key, Tombstone());
    Put(&m, 4, key, Vector({4, 5}, "", false, simd::Metric::kL2));
    Put(&m, 5, key, Bytes(""));
    Put(&m, 6, key, Bytes(std::string(5000, 'b')));
    for (uint64_t snap = 0; snap <= 7; ++snap) {
      VersionView v;
      const bool found = m.Get(key, snap, &v);
      ASSERT_EQ(found, snap >= 1) << snap;
      if (!found) continue;
      EXPECT_EQ(v.seq, std::min<uint64_t>(snap, 6));
      switch (v.seq) {
        case 1:
          EXPECT_EQ(v.kind, ValueKind::kBytes);
          EXPECT_EQ(v.bytes, "plain");
          EXPECT_EQ(v.vec, nullptr);
          break;
        case 2:
          ASSERT_EQ(v.kind, ValueKind::kVector);
          EXPECT_TRUE(v.has_metadata);
          EXPECT_EQ(v.bytes, "meta");
          EXPECT_EQ(v.metric, simd::Metric::kCosine);
          ASSERT_EQ(v.dim, 3u);
          EXPECT_EQ(v.vec[2], 3.0f);
          break;
        case 3:
          EXPECT_EQ(v.kind, ValueKind::kTombstone);
          EXPECT_TRUE(v.bytes.empty());
          break;
        case 4:
          ASSERT_EQ(v.kind, ValueKind::kVector);
          EXPECT_FALSE(v.has_metadata);
          ASSERT_EQ(v.dim, 2u);
          EXPECT_EQ(v.vec[0], 4.0f);
          break;
        case 5:
          EXPECT_EQ(v.kind, ValueKind::kBytes);
          EXPECT_TRUE(v.bytes.empty());
          break;
        case 6:
          EXPECT_EQ(v.kind, ValueKind::kBytes);
          EXPECT_EQ(v.bytes, std::string(5000, 'b'));
          break;
      }
    }
    EXPECT_EQ(m.LatestSeq(key), 6u);
    // Back to a bytes value after the newest was a vector, then a vector
    // after a bytes value: the head follows both ways.
    Put(&m, 7, key, Vector({9}, "", false, simd::Metric::kIP));
    VersionView v;
    ASSERT_TRUE(m.Get(key, 7, &v));
    EXPECT_EQ(v.kind, ValueKind::kVector);
    EXPECT_EQ(v.metric, simd::Metric::kIP);
    Put(&m, 8, key, Bytes("again"));
    ASSERT_TRUE(m.Get(key, 8, &v));
    EXPECT_EQ(v.kind, ValueKind::kBytes);
    EXPECT_EQ(v.bytes, "again");
    ASSERT_TRUE(m.Get(key, 7, &v));  // min_snapshot 0 keeps every version
    EXPECT_EQ(v.kind, ValueKind::kVector);
  }
}

TEST(KeyTable, LookupsMatchAMapModelThroughGrowthAndOverwrites) {
  KeyTable m;
  std::map<std::string, std::pair<uint64_t, std::string>> model;
  std::mt19937_64 rng(7);
  uint64_t seq = 0;
  for (int round = 0; round < 30000; ++round) {
    const uint64_t n = rng() % 12000;
    std::string key = std::string(1, '\0') + "key" + std::to_string(n);
    if (n % 3 == 0) key += std::string(20, 'L');  // longer than the slot's head
    std::vector<Write> writes;
    const std::string value = "v" + std::to_string(round) + std::string(rng() % 200, 'x');
    writes.push_back(Write{key, Bytes(value)});
    ++seq;
    m.Apply(seq, writes, seq);  // no snapshot older than this commit
    model[key] = {seq, value};
  }
  for (const auto& [key, sv] : model) {
    VersionView v;
    ASSERT_TRUE(m.Get(key, seq, &v));
    ASSERT_EQ(v.seq, sv.first);
    ASSERT_EQ(v.bytes, sv.second);
    ASSERT_EQ(m.LatestSeq(key), sv.first);
    ASSERT_FALSE(m.Get(key, sv.first - 1, &v)) << "older versions were dropped";
  }
  for (int i = 12000; i < 13000; ++i) {
    VersionView v;
    EXPECT_FALSE(m.Get(std::string(1, '\0') + "key" + std::to_string(i), seq, &v));
  }
}

TEST(KeyTable, ValuesAroundTheInlineLimitAndLongKeysReadBack) {
  KeyTable m;
  const std::string key_max(65536, 'K');  // the longest internal key (1 + 65535): a block of its own
  std::vector<std::pair<std::string, ValuePtr>> cases;
  uint64_t n = 0;
  for (size_t len : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{70000}}) {
    std::string value(len, static_cast<char>('a' + n % 26));
    if (len > 0) value[len - 1] = 'Z';
    cases.push_back({std::string(1, '\0') + "k" + std::to_string(n++), Bytes(value)});
    cases.push_back({key_max.substr(0, 65536 - n) + std::to_string(n), Bytes(value)});
    ++n;
  }
  // Bytes with metadata (never inline), and a vector.
  auto meta = Bytes("with metadata");
  std::const_pointer_cast<Value>(meta)->has_metadata = true;
  cases.push_back({std::string(1, '\0') + "meta", meta});
  cases.push_back({key_max, Vector({1, 2}, "m", true, simd::Metric::kL2)});
  uint64_t seq = 0;
  for (const auto& [key, value] : cases) Put(&m, ++seq, key, value);
  seq = 0;
  for (const auto& [key, value] : cases) {
    ++seq;
    VersionView v;
    ASSERT_TRUE(m.Get(key, 100, &v)) << key.size();
    EXPECT_EQ(v.seq, seq);
    EXPECT_EQ(v.kind, value->kind);
    EXPECT_EQ(v.bytes, value->bytes) << key.size() << " " << value->bytes.size();
    EXPECT_EQ(v.has_metadata, value->has_metadata);
    EXPECT_EQ(m.LatestSeq(key), seq);
  }
}

TEST(KeyTable, ViewsStayValidWhileNewerVersionsArrive) {
  // A reader's view (the bytes of what Get returned) is read after the
  // table's lock is released; newer versions of the same keys, and the
  // arena blocks and slot-table growth they cause, must not move or free it
  // while the reader's snapshot keeps its versions (ASan checks the reads).
  KeyTable m;
  std::vector<std::string> keys;
  std::vector<std::string> values;
  uint64_t seq = 0;
  for (int i = 0; i < 300; ++i) {
    keys.push_back(std::string(1, '\0') + "view" + std::to_string(i));
    values.push_back(std::string(i % 3 == 0 ? 5000 : 10 + i, static_cast<char>('a' + i % 26)));
    Put(&m, ++seq, keys.back(), Bytes(values.back()));
  }
  const uint64_t snap = seq;
  std::vector<VersionView> views(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_TRUE(m.Get(keys[i], snap, &views[i]));
  for (int round = 0; round < 20; ++round) {
    for (size_t i = 0; i < keys.size(); ++i) Put(&m, ++seq, keys[i], Bytes(std::string(100 + round, 'n')), snap);
    for (int j = 0; j < 500; ++j)
      Put(&m, ++seq, std::string(1, '\0') + "grow" + std::to_string(round * 500 + j), Bytes("g"), snap);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(views[i].bytes, values[i]) << i;
    VersionView v;
    ASSERT_TRUE(m.Get(keys[i], snap, &v));  // the snapshot still sees its version
    EXPECT_EQ(v.bytes, values[i]) << i;
    ASSERT_TRUE(m.Get(keys[i], seq, &v));
    EXPECT_EQ(v.bytes, std::string(119, 'n')) << i;
  }
}

TEST(KeyTable, BytesCountEveryVersionsCopy) {
  // The memtable budget and the in-memory cap read bytes(): it must grow
  // with what the heads copy, overwrites included.
  KeyTable m;
  uint64_t before = m.bytes();
  for (int i = 0; i < 1000; ++i) {
    Put(&m, i + 1, std::string(1, '\0') + "same", Bytes(std::string(1000, 'x')), i + 1);
    ASSERT_GE(m.bytes(), before + 1000) << i;  // each version's 1000-byte copy at least
    before = m.bytes();
  }
}

}  // namespace
}  // namespace pomai::memtable
