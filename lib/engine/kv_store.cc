#include "engine/kv_store.h"

#include <cstring>

namespace pomai::engine::kv {

// ---------------------------------------------------------------------------
// WAL commit records

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

}  // namespace pomai::engine::kv
