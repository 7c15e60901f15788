#include "engine/manifest.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"

namespace pomai::engine {
namespace {
constexpr char kMagic[8] = {'P', 'O', 'M', 'A', 'I', 'M', 'A', 'N'};
}  // namespace

std::string Manifest::Encode() const {
  std::string out;
  PutBytes(&out, kMagic, 8);
  PutFixed32(&out, kManifestVersion);
  PutFixed32(&out, dim);
  PutFixed32(&out, static_cast<uint32_t>(metric));
  PutFixed32(&out, shards);
  PutFixed64(&out, next_file_number);
  PutFixed64(&out, log_number);
  PutFixed64(&out, last_seq);
  for (uint32_t s = 0; s < shards; ++s) {
    const auto& segs = s < segments.size() ? segments[s] : std::vector<SegmentEntry>{};
    PutFixed32(&out, static_cast<uint32_t>(segs.size()));
    for (const auto& e : segs) {
      PutFixed64(&out, e.file_number);
      PutFixed64(&out, e.rows);
    }
  }
  PutFixed32(&out, crc32c::Value(out.data(), out.size()));
  return out;
}

Result<Manifest> Manifest::Decode(const std::string& data, const std::string& path) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() < 8 + 4 * 4 + 3 * 8 + 4) return Status::Corruption(path, 0, "manifest too short (" + std::to_string(data.size()) + " bytes)");
  if (std::memcmp(p, kMagic, 8) != 0) return Status::Corruption(path, 0, "bad manifest magic");
  const size_t body = data.size() - 4;
  if (crc32c::Value(p, body) != DecodeFixed32(p + body)) return Status::Corruption(path, body, "manifest checksum mismatch");
  Decoder d(p + 8, body - 8);
  Manifest m;
  uint32_t version = 0, metric = 0;
  d.GetFixed32(&version);
  if (version != kManifestVersion)
    return Status::Corruption(path, 8, "unsupported manifest version " + std::to_string(version));
  d.GetFixed32(&m.dim);
  d.GetFixed32(&metric);
  d.GetFixed32(&m.shards);
  d.GetFixed64(&m.next_file_number);
  d.GetFixed64(&m.log_number);
  d.GetFixed64(&m.last_seq);
  if (m.dim == 0 || m.dim > kMaxDim || metric > 2 || m.shards == 0 || m.shards > kMaxShards)
    return Status::Corruption(path, 12, "manifest has invalid dim/metric/shards");
  m.metric = static_cast<simd::Metric>(metric);
  m.segments.resize(m.shards);
  for (uint32_t s = 0; s < m.shards; ++s) {
    uint32_t n = 0;
    const uint64_t at = static_cast<uint64_t>(d.pos() - p);
    if (!d.GetFixed32(&n) || n > d.remaining() / 16) return Status::Corruption(path, at, "truncated segment list of shard " + std::to_string(s));
    m.segments[s].resize(n);
    for (auto& e : m.segments[s]) {
      d.GetFixed64(&e.file_number);
      d.GetFixed64(&e.rows);
      if (e.file_number >= m.next_file_number)
        return Status::Corruption(path, static_cast<uint64_t>(d.pos() - p), "segment number beyond next_file_number");
    }
  }
  if (d.remaining() != 0) return Status::Corruption(path, static_cast<uint64_t>(d.pos() - p), "trailing bytes in manifest");
  return m;
}

Status WriteManifest(Env* env, const std::string& dir, const Manifest& m) {
  return WriteFileAtomically(env, dir, JoinPath(dir, kManifestName), m.Encode());
}

Result<Manifest> ReadManifest(Env* env, const std::string& dir) {
  const std::string path = JoinPath(dir, kManifestName);
  std::string data;
  POMAI_RETURN_IF_ERROR(ReadFileToString(env, path, &data));
  return Manifest::Decode(data, path);
}

}  // namespace pomai::engine
