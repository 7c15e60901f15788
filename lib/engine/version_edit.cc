#include "engine/version_edit.h"

#include "util/coding.h"

namespace pomai::engine {

namespace {

constexpr size_t kFieldHeader = 8;  // u16 tag, u16 zero, u32 length
constexpr uint32_t kAddSegmentBytes = 32;

void PutField(std::string* out, EditTag tag, uint32_t length) {
  uint8_t h[kFieldHeader] = {};
  h[0] = static_cast<uint8_t>(static_cast<uint16_t>(tag));
  h[1] = static_cast<uint8_t>(static_cast<uint16_t>(tag) >> 8);
  EncodeFixed32(h + 4, length);
  PutBytes(out, h, kFieldHeader);
}

void PutU64Field(std::string* out, EditTag tag, uint64_t v) {
  PutField(out, tag, 8);
  PutFixed64(out, v);
}

}  // namespace

std::string VersionEdit::Encode() const {
  std::string out;
  if (format_version) {
    PutField(&out, EditTag::kFormatVersion, 4);
    PutFixed32(&out, *format_version);
  }
  if (log_number) PutU64Field(&out, EditTag::kLogNumber, *log_number);
  if (last_seq) PutU64Field(&out, EditTag::kLastSeq, *last_seq);
  if (next_file_number) PutU64Field(&out, EditTag::kNextFileNumber, *next_file_number);
  for (const SegmentMeta& s : added) {
    PutField(&out, EditTag::kAddSegment, kAddSegmentBytes);
    PutFixed64(&out, s.number);
    PutFixed64(&out, s.file_size);
    PutFixed64(&out, s.first_seq);
    PutFixed64(&out, s.last_seq);
  }
  for (uint64_t n : removed) PutU64Field(&out, EditTag::kRemoveSegment, n);
  return out;
}

Status VersionEdit::Decode(std::string_view payload, const std::string& origin, VersionEdit* edit,
                           uint64_t base_offset) {
  *edit = VersionEdit();
  const auto* base = reinterpret_cast<const uint8_t*>(payload.data());
  size_t pos = 0;
  uint16_t last_tag = 0;
  while (pos < payload.size()) {
    auto corrupt = [&](const std::string& what) {
      return Status::Corruption(origin, base_offset + pos, "version edit: " + what);
    };
    if (payload.size() - pos < kFieldHeader) return corrupt("truncated field header");
    const uint8_t* h = base + pos;
    const uint16_t tag = static_cast<uint16_t>(h[0] | (h[1] << 8));
    const uint16_t zero = static_cast<uint16_t>(h[2] | (h[3] << 8));
    const uint32_t length = DecodeFixed32(h + 4);
    if (zero != 0) return corrupt("reserved field bytes are not zero");
    uint32_t want = 0;
    switch (static_cast<EditTag>(tag)) {
      case EditTag::kFormatVersion:
        want = 4;
        break;
      case EditTag::kLogNumber:
      case EditTag::kLastSeq:
      case EditTag::kNextFileNumber:
      case EditTag::kRemoveSegment:
        want = 8;
        break;
      case EditTag::kAddSegment:
        want = kAddSegmentBytes;
        break;
      default:
        return corrupt("unknown field tag " + std::to_string(tag));
    }
    if (length != want) {
      return corrupt("field " + std::to_string(tag) + " has length " + std::to_string(length) + ", expected " +
                     std::to_string(want));
    }
    if (payload.size() - pos - kFieldHeader < length) return corrupt("field " + std::to_string(tag) + " is truncated");
    if (tag < last_tag || (tag == last_tag && tag < static_cast<uint16_t>(EditTag::kAddSegment))) {
      return corrupt("field " + std::to_string(tag) + " is out of order or repeated");
    }
    last_tag = tag;
    const uint8_t* v = h + kFieldHeader;
    switch (static_cast<EditTag>(tag)) {
      case EditTag::kFormatVersion:
        edit->format_version = DecodeFixed32(v);
        break;
      case EditTag::kLogNumber:
        edit->log_number = DecodeFixed64(v);
        break;
      case EditTag::kLastSeq:
        edit->last_seq = DecodeFixed64(v);
        break;
      case EditTag::kNextFileNumber:
        edit->next_file_number = DecodeFixed64(v);
        break;
      case EditTag::kAddSegment:
        edit->added.push_back(
            SegmentMeta{DecodeFixed64(v), DecodeFixed64(v + 8), DecodeFixed64(v + 16), DecodeFixed64(v + 24)});
        break;
      case EditTag::kRemoveSegment:
        edit->removed.push_back(DecodeFixed64(v));
        break;
    }
    pos += kFieldHeader + length;
  }
  return Status::OK();
}

}  // namespace pomai::engine
