// Lengths at the boundaries where sizes change representation, for the size
// tests of every layer: 0, 2^k - 1, 2^k and 2^k + 1 for 2^k <= 16 MiB.
#pragma once

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace pomai::testing {

// The boundary lengths up to `max`, largest first: the first write of a
// test meets a fresh memtable, whose first arena blocks are the smallest.
inline std::vector<size_t> Boundaries(size_t max) {
  std::set<size_t> s = {0};
  for (size_t p = 1; p <= (size_t{16} << 20); p <<= 1) {
    for (size_t x : {p - 1, p, p + 1}) s.insert(x);
  }
  std::vector<size_t> out;
  for (size_t x : s) {
    if (x <= max) out.push_back(x);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// n bytes that differ with the length and the position, so bytes read at the
// wrong offset or cut short do not compare equal.
inline std::string Pattern(size_t n, char tag) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(tag + 31 * i + (n >> 3));
  return s;
}

}  // namespace pomai::testing
