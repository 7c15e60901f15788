// Kept for the crash tests (collection_rows_crash_test.cc) until they include db_test_util.h.
#pragma once
#include "db_test_util.h"
