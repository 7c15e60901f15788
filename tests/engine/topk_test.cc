// TopKOf: one top-k for both faces (docs/ENGINE.md 4.5), by score descending
// then key ascending, for u64 ids and byte-string keys alike.
#include "engine/topk.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace pomai::engine {
namespace {

struct KeyHit {
  float score;
  std::string_view key;
};
std::string_view HitKey(const KeyHit& h) { return h.key; }

TEST(TopK, KeepsTheBestKByScoreThenKeyForBothKeyKinds) {
  std::mt19937 rng(3);
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) keys.push_back("k" + std::to_string(rng() % 1000));
  std::vector<Hit> ids;
  std::vector<KeyHit> named;
  TopK top_ids(7);
  TopKOf<KeyHit> top_named(7);
  for (size_t i = 0; i < keys.size(); ++i) {
    const float score = static_cast<float>(rng() % 20);  // many ties
    ids.push_back(Hit{rng() % 100000, score, 0});
    named.push_back(KeyHit{score, keys[i]});
    top_ids.Offer(ids.back());
    top_named.Offer(named.back());
  }
  std::sort(ids.begin(), ids.end(), Better<Hit>);
  std::sort(named.begin(), named.end(), Better<KeyHit>);
  const std::vector<Hit> got_ids = top_ids.TakeSorted();
  const std::vector<KeyHit> got_named = top_named.TakeSorted();
  ASSERT_EQ(got_ids.size(), 7u);
  ASSERT_EQ(got_named.size(), 7u);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(got_ids[i].id, ids[i].id);
    EXPECT_EQ(got_ids[i].score, ids[i].score);
    EXPECT_EQ(got_named[i].key, named[i].key);
    EXPECT_EQ(got_named[i].score, named[i].score);
  }
}

TEST(TopK, ZeroKeepsNothingAndNaNRanksLast) {
  TopKOf<KeyHit> none(0);
  float score = 1.0f;
  EXPECT_FALSE(none.MayAccept(score));
  EXPECT_FALSE(none.Accepts(1.0f, "a"));
  none.Offer(KeyHit{5.0f, "a"});
  EXPECT_EQ(none.size(), 0u);
  EXPECT_TRUE(none.TakeSorted().empty());

  TopKOf<KeyHit> two(2);
  two.Offer(KeyHit{std::numeric_limits<float>::quiet_NaN(), "nan"});
  two.Offer(KeyHit{-1.0f, "b"});
  two.Offer(KeyHit{-1.0f, "a"});
  const std::vector<KeyHit> got = two.TakeSorted();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "a");  // the tie goes to the smaller key
  EXPECT_EQ(got[1].key, "b");  // NaN became -infinity and fell out
}

}  // namespace
}  // namespace pomai::engine
