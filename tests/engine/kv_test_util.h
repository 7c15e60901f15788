// Kept for the crash tests (kv_crash_test.cc, kv_crash_points_test.cc and kv_search_test.cc) until they include db_test_util.h.
#pragma once
#include "db_test_util.h"

namespace pomai::testing {
using KvBothModes = BothModes;  // kv_search_test.cc's name for it
}  // namespace pomai::testing
