// WAL reader.
//
// Reads the records of one WAL file held in memory. Damage rules:
//  - A torn tail is dropped silently: fewer than 24 bytes after the last good
//    record, a payload that runs past the end of the file, or a remainder
//    that is all zero bytes (what a file system may leave after power loss).
//  - Anything else that fails a check (header checksum, reserved bytes, type
//    0, payload checksum, oversized length) is a Corruption error naming the
//    file and the byte offset of the damaged record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace pomai::wal {

struct Record {
  uint8_t type = 0;
  uint64_t seq = 0;
  std::string_view payload;  // points into the reader's buffer
  uint64_t offset = 0;       // byte offset of the record's header in the file
};

class Reader {
 public:
  // `data` must stay valid while the reader and its records are used.
  // `path` is only used in error messages.
  Reader(const uint8_t* data, size_t size, std::string path);

  // Stores the next record in *rec and returns true; returns false at the end
  // of the good records (then check status(): OK for a clean end or a dropped
  // torn tail, Corruption otherwise).
  bool Next(Record* rec);

  const Status& status() const { return status_; }
  // Whether a torn tail was dropped.
  bool dropped_torn_tail() const { return torn_; }
  // Offset just past the last good record.
  uint64_t good_end() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string path_;
  uint64_t pos_ = 0;
  bool torn_ = false;
  bool done_ = false;
  Status status_;
};

}  // namespace pomai::wal
