#include "wal/log_reader.h"

#include <utility>

#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/log_format.h"

namespace pomai::wal {

namespace {

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

Reader::Reader(const uint8_t* data, size_t size, std::string path)
    : data_(data), size_(data ? size : 0), path_(std::move(path)) {}

bool Reader::Next(Record* rec) {
  if (done_) return false;
  const size_t left = size_ - static_cast<size_t>(pos_);
  if (left == 0) {
    done_ = true;
    return false;
  }
  if (left < kHeaderSize) {
    torn_ = true;
    done_ = true;
    return false;
  }

  const uint8_t* h = data_ + pos_;
  auto corrupt = [&](const std::string& what) {
    status_ = Status::Corruption(path_, pos_, what);
    done_ = true;
    return false;
  };
  if (crc32c::Value(h, 20) != DecodeFixed32(h + 20)) {
    // Zeros are what a file system may leave past the last durable write.
    if (AllZero(h, left)) {
      torn_ = true;
      done_ = true;
      return false;
    }
    return corrupt("WAL record header checksum mismatch");
  }
  const uint32_t len = DecodeFixed32(h);
  const uint8_t type = h[4];
  if (h[5] != 0 || h[6] != 0 || h[7] != 0) return corrupt("WAL record reserved bytes are not zero");
  if (type == 0) return corrupt("WAL record type 0");
  if (len > kMaxPayload) return corrupt("WAL record length " + std::to_string(len) + " exceeds the limit");
  if (len > left - kHeaderSize) {
    // The header made it to disk but the payload did not: a write torn by a crash.
    torn_ = true;
    done_ = true;
    return false;
  }
  const uint8_t* payload = h + kHeaderSize;
  if (crc32c::Value(payload, len) != DecodeFixed32(h + 16)) return corrupt("WAL record payload checksum mismatch");

  rec->type = type;
  rec->seq = DecodeFixed64(h + 8);
  rec->payload = std::string_view(reinterpret_cast<const char*>(payload), len);
  rec->offset = pos_;
  pos_ += kHeaderSize + len;
  return true;
}

}  // namespace pomai::wal
