#include "engine/collection.h"

#include <cstring>

#include "index/params.h"
#include "util/coding.h"
#include "util/limits.h"
#include "wal/record_codec.h"

namespace pomai::engine {

std::string UserKey(std::string_view key) {
  std::string k;
  k.reserve(key.size() + 1);
  k.push_back(static_cast<char>(kUserNs));
  k.append(key);
  return k;
}


std::string EncodeCommit(const std::vector<Write>& writes) {
  std::vector<wal::RecordOp> ops(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    const Value& v = *writes[i].value;
    wal::RecordOp& op = ops[i];
    op.key = writes[i].key;
    if (v.kind == ValueKind::kBytes) {
      op.kind = wal::OpKind::kPutBytes;
      op.bytes = v.bytes;
    } else if (v.kind == ValueKind::kVector) {
      op.kind = wal::OpKind::kPutVector;
      op.metric = static_cast<uint8_t>(v.metric);
      op.has_metadata = v.has_metadata;
      op.bytes = v.bytes;
      op.has_attrs = !v.attrs.empty();
      op.attrs = v.attrs;
      op.dim = static_cast<uint32_t>(v.vec.size());
      op.vector = v.vec.data();
    } else {
      op.kind = wal::OpKind::kDeleteKey;
    }
  }
  return wal::EncodeWriteBatch(ops.data(), ops.size());
}

Status WritesOf(const std::vector<wal::RecordOp>& ops, const std::string& origin, std::vector<Write>* out) {
  out->clear();
  out->reserve(ops.size());
  for (const wal::RecordOp& op : ops) {
    auto v = std::make_shared<Value>();
    switch (op.kind) {
      case wal::OpKind::kPutBytes:
        v->kind = ValueKind::kBytes;
        v->bytes.assign(op.bytes);
        break;
      case wal::OpKind::kPutVector:
        v->kind = ValueKind::kVector;
        v->metric = static_cast<simd::Metric>(op.metric);
        v->has_metadata = op.has_metadata;
        v->bytes.assign(op.bytes);
        v->attrs.assign(op.attrs);
        v->vec.resize(op.dim);
        std::memcpy(v->vec.data(), op.vector, size_t{op.dim} * 4);
        break;
      case wal::OpKind::kDeleteKey:
        v->kind = ValueKind::kTombstone;
        break;
      default:
        return Status::Corruption(origin + ": " + wal::OpKindName(op.kind) + " op in a keyspace commit");
    }
    out->push_back(Write{std::string(op.key), std::move(v)});
  }
  return Status::OK();
}

Status CollectionConfig::Validate() const {
  auto bad = [](const char* field, uint64_t v, const char* rule) {
    return Status::InvalidArgument(std::string("collection ") + field + " " + std::to_string(v) + ": " + rule);
  };
  if (key_type != KeyType::kU64 && key_type != KeyType::kBytes)
    return bad("key type", static_cast<uint8_t>(key_type), "must be 1 (u64 ids) or 2 (byte keys)");
  if (static_cast<uint8_t>(metric) > 2) return bad("metric", static_cast<uint8_t>(metric), "must be 0, 1 or 2");
  if (static_cast<uint8_t>(graph_vectors) > 1)
    return bad("graph vectors", static_cast<uint8_t>(graph_vectors), "must be 0 (SQ8) or 1 (float32)");
  POMAI_RETURN_IF_ERROR(CheckDim(dim, "collection"));
  POMAI_RETURN_IF_ERROR(index::CheckHnswParams(m, ef_construction));
  if (key_type == KeyType::kBytes ? shards != 1 : !CheckShards(shards, "collection").ok())
    return bad("shards", shards, key_type == KeyType::kBytes ? "must be 1 for byte keys" : "must be 1..1024");
  return Status::OK();
}

std::string CollectionConfig::Encode() const {
  std::string out;
  out.reserve(kEncodedSize);
  PutFixed32(&out, kVersion);
  out.push_back(static_cast<char>(key_type));
  out.push_back(static_cast<char>(metric));
  out.push_back(static_cast<char>(graph_vectors));
  out.push_back('\0');
  PutFixed32(&out, dim);
  PutFixed32(&out, m);
  PutFixed32(&out, ef_construction);
  PutFixed32(&out, shards);
  PutFixed64(&out, 0);
  return out;
}

Status CollectionConfig::Decode(std::string_view value, const std::string& origin, CollectionConfig* out) {
  if (value.size() != kEncodedSize)
    return Status::Corruption(origin + ": a collection configuration of " + std::to_string(value.size()) +
                              " bytes (expected " + std::to_string(kEncodedSize) + ")");
  const auto* p = reinterpret_cast<const uint8_t*>(value.data());
  if (DecodeFixed32(p) != kVersion)
    return Status::Corruption(origin + ": collection configuration version " + std::to_string(DecodeFixed32(p)));
  if (p[7] != 0 || DecodeFixed64(p + 24) != 0)
    return Status::Corruption(origin + ": nonzero reserved bytes in a collection configuration");
  CollectionConfig c;
  c.key_type = static_cast<KeyType>(p[4]);
  c.metric = static_cast<simd::Metric>(p[5]);
  c.graph_vectors = static_cast<GraphVectors>(p[6]);
  c.dim = DecodeFixed32(p + 8);
  c.m = DecodeFixed32(p + 12);
  c.ef_construction = DecodeFixed32(p + 16);
  c.shards = DecodeFixed32(p + 20);
  if (Status s = c.Validate(); !s.ok()) return Status::Corruption(origin + ": " + s.message());
  *out = c;
  return Status::OK();
}

std::string ConfigKey(std::string_view name) {
  std::string k(1, static_cast<char>(wal::kIndexConfigNs));
  k.append(name);
  return k;
}

std::string RowPrefix(uint64_t cid) {
  std::string k(1 + 8, static_cast<char>(wal::kIndexEntryNs));
  for (int i = 0; i < 8; ++i) k[1 + i] = static_cast<char>(cid >> (56 - 8 * i));
  return k;
}

std::string RowKey(uint64_t cid, std::string_view key) {
  std::string k = RowPrefix(cid);
  k.append(key);
  return k;
}

bool ParseRowKey(std::string_view ikey, uint64_t* cid, std::string_view* key) {
  if (ikey.size() < 10 || static_cast<uint8_t>(ikey[0]) != wal::kIndexEntryNs) return false;
  uint64_t c = 0;
  for (int i = 0; i < 8; ++i) c = (c << 8) | static_cast<uint8_t>(ikey[1 + i]);
  *cid = c;
  *key = ikey.substr(9);
  return true;
}

}  // namespace pomai::engine
