#include "capi/arrow_export.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace pomai::capi {
namespace {

// What every node of one exported batch shares: the batch and the buffers
// made for it (validity and bool bitmaps).
struct BatchHolder {
  engine::ScanBatch batch;
  std::vector<std::vector<uint8_t>> bitmaps;
};

// A buffer pointer for a possibly empty vector: never null (the
// specification allows null only for validity bitmaps).
alignas(64) const uint64_t kEmptyBuffer[8] = {};
template <class T>
const void* Buf(const std::vector<T>& v) {
  return v.empty() ? static_cast<const void*>(kEmptyBuffer) : static_cast<const void*>(v.data());
}
const void* Buf(const std::string& s) { return s.empty() ? static_cast<const void*>(kEmptyBuffer) : s.data(); }

// ---- arrays

struct ArrayNode {
  std::shared_ptr<BatchHolder> holder;
  std::vector<const void*> buffers;
  std::vector<ArrowArray> children;
  std::vector<ArrowArray*> child_ptrs;
};

void ReleaseArray(ArrowArray* a) {
  if (a == nullptr || a->release == nullptr) return;
  auto* node = static_cast<ArrayNode*>(a->private_data);
  for (ArrowArray* c : node->child_ptrs) {
    if (c->release != nullptr) c->release(c);
  }
  delete node;
  a->release = nullptr;
}

// Makes *out a node of `length` rows with `buffers`, and `n_children`
// children to be filled by the caller (node->children[i]).
ArrayNode* MakeArray(const std::shared_ptr<BatchHolder>& holder, int64_t length, int64_t null_count,
                     std::vector<const void*> buffers, size_t n_children, ArrowArray* out) {
  auto node = std::make_unique<ArrayNode>();
  node->holder = holder;
  node->buffers = std::move(buffers);
  node->children.resize(n_children);
  for (ArrowArray& c : node->children) {
    std::memset(&c, 0, sizeof(c));
    node->child_ptrs.push_back(&c);
  }
  out->length = length;
  out->null_count = null_count;
  out->offset = 0;
  out->n_buffers = static_cast<int64_t>(node->buffers.size());
  out->n_children = static_cast<int64_t>(n_children);
  out->buffers = node->buffers.data();
  out->children = n_children ? node->child_ptrs.data() : nullptr;
  out->dictionary = nullptr;
  out->release = ReleaseArray;
  out->private_data = node.get();
  return node.release();
}

// Packs one byte per row (nonzero = set) into an Arrow bitmap kept by the holder.
const void* PackBits(BatchHolder& h, const uint8_t* bytes, size_t n) {
  std::vector<uint8_t>& bits = h.bitmaps.emplace_back((n + 7) / 8 + 1, 0);
  for (size_t i = 0; i < n; ++i) bits[i >> 3] |= static_cast<uint8_t>((bytes[i] != 0) << (i & 7));
  return bits.data();
}

void ExportColumn(const std::shared_ptr<BatchHolder>& h, const AttrColumn& c, size_t n, ArrowArray* out) {
  const void* validity = nullptr;
  int64_t nulls = 0;
  if (!c.valid.empty()) {
    for (size_t r = 0; r < n; ++r) nulls += c.valid[r] == 0;
    if (nulls > 0) validity = PackBits(*h, c.valid.data(), n);
  }
  const auto len = static_cast<int64_t>(n);
  switch (c.type) {
    case AttrType::kInt64:
      MakeArray(h, len, nulls, {validity, Buf(c.ints)}, 0, out);
      return;
    case AttrType::kFloat64:
      MakeArray(h, len, nulls, {validity, Buf(c.floats)}, 0, out);
      return;
    case AttrType::kBool:
      MakeArray(h, len, nulls, {validity, PackBits(*h, c.bools.data(), n)}, 0, out);
      return;
    case AttrType::kString:  // u64 offsets are Arrow's int64 offsets (values below 2^63)
      MakeArray(h, len, nulls, {validity, Buf(c.offsets), Buf(c.bytes)}, 0, out);
      return;
    case AttrType::kTags: {
      ArrayNode* node = MakeArray(h, len, nulls, {validity, Buf(c.offsets)}, 1, out);
      const auto tags = static_cast<int64_t>(c.offsets.back());
      MakeArray(h, tags, 0, {nullptr, Buf(c.tag_offsets), Buf(c.bytes)}, 0, &node->children[0]);
      return;
    }
  }
}

// ---- schemas

struct SchemaNode {
  std::string format;
  std::string name;
  std::vector<ArrowSchema> children;
  std::vector<ArrowSchema*> child_ptrs;
};

void ReleaseSchema(ArrowSchema* s) {
  if (s == nullptr || s->release == nullptr) return;
  auto* node = static_cast<SchemaNode*>(s->private_data);
  for (ArrowSchema* c : node->child_ptrs) {
    if (c->release != nullptr) c->release(c);
  }
  delete node;
  s->release = nullptr;
}

SchemaNode* MakeSchema(std::string format, std::string name, bool nullable, size_t n_children, ArrowSchema* out) {
  auto node = std::make_unique<SchemaNode>();
  node->format = std::move(format);
  node->name = std::move(name);
  node->children.resize(n_children);
  for (ArrowSchema& c : node->children) {
    std::memset(&c, 0, sizeof(c));
    node->child_ptrs.push_back(&c);
  }
  out->format = node->format.c_str();
  out->name = node->name.c_str();
  out->metadata = nullptr;
  out->flags = nullable ? ARROW_FLAG_NULLABLE : 0;
  out->n_children = static_cast<int64_t>(n_children);
  out->children = n_children ? node->child_ptrs.data() : nullptr;
  out->dictionary = nullptr;
  out->release = ReleaseSchema;
  out->private_data = node.get();
  return node.release();
}

const char* FormatOf(AttrType t) {
  switch (t) {
    case AttrType::kInt64: return "l";
    case AttrType::kFloat64: return "g";
    case AttrType::kBool: return "b";
    case AttrType::kString: return "U";
    case AttrType::kTags: return "+L";
  }
  return "n";
}

size_t TopColumns(const ScanShape& s) { return 1 + s.vectors + s.metadata + s.columns.size(); }

// ---- the stream

struct StreamState {
  ScanShape shape;
  NextBatch next;
  std::string error;
  bool done = false;
};

int StreamSchema(ArrowArrayStream* s, ArrowSchema* out) {
  auto* st = static_cast<StreamState*>(s->private_data);
  try {
    ExportSchema(st->shape, out);
    return 0;
  } catch (...) {
    st->error = "out of memory";
    return ENOMEM;
  }
}

int StreamNext(ArrowArrayStream* s, ArrowArray* out) {
  auto* st = static_cast<StreamState*>(s->private_data);
  std::memset(out, 0, sizeof(*out));  // release null: the end of the stream
  if (st->done) return 0;
  try {
    engine::ScanBatch batch;
    bool done = false;
    Status status = st->next(&batch, &done);
    if (!status.ok()) {
      // "pomai status <code>: <message>": the code stays readable to a consumer.
      st->error = "pomai status " + std::to_string(static_cast<int>(status.code())) + ": " + status.message();
      return EIO;
    }
    if (done) {
      st->done = true;
      return 0;
    }
    ExportBatch(st->shape, std::move(batch), out);
    return 0;
  } catch (const std::bad_alloc&) {
    st->error = "out of memory";
    return ENOMEM;
  } catch (const std::exception& e) {
    st->error = std::string("internal error: ") + e.what();
    return EIO;
  } catch (...) {
    st->error = "internal error: unknown exception";
    return EIO;
  }
}

const char* StreamError(ArrowArrayStream* s) {
  auto* st = static_cast<StreamState*>(s->private_data);
  return st->error.empty() ? nullptr : st->error.c_str();
}

void StreamRelease(ArrowArrayStream* s) {
  if (s == nullptr || s->release == nullptr) return;
  delete static_cast<StreamState*>(s->private_data);
  s->release = nullptr;
}

}  // namespace

void ExportSchema(const ScanShape& shape, ArrowSchema* out) {
  SchemaNode* top = MakeSchema("+s", "", false, TopColumns(shape), out);
  try {
    size_t i = 0;
    MakeSchema("L", "id", false, 0, &top->children[i++]);
    if (shape.vectors) {
      SchemaNode* v = MakeSchema("+w:" + std::to_string(shape.dim), "vector", false, 1, &top->children[i++]);
      MakeSchema("f", "item", false, 0, &v->children[0]);
    }
    if (shape.metadata) MakeSchema("Z", "metadata", false, 0, &top->children[i++]);
    for (const auto& [name, type] : shape.columns) {
      SchemaNode* c = MakeSchema(FormatOf(type), name, true, type == AttrType::kTags ? 1 : 0, &top->children[i++]);
      if (type == AttrType::kTags) MakeSchema("U", "item", false, 0, &c->children[0]);
    }
  } catch (...) {
    ReleaseSchema(out);
    throw;
  }
}

void ExportBatch(const ScanShape& shape, engine::ScanBatch&& batch, ArrowArray* out) {
  auto h = std::make_shared<BatchHolder>();
  h->batch = std::move(batch);
  const engine::ScanBatch& b = h->batch;
  const size_t n = b.ids.size();
  const auto len = static_cast<int64_t>(n);
  ArrayNode* top = MakeArray(h, len, 0, {nullptr}, TopColumns(shape), out);
  try {
    size_t i = 0;
    MakeArray(h, len, 0, {nullptr, Buf(b.ids)}, 0, &top->children[i++]);
    if (shape.vectors) {
      ArrayNode* v = MakeArray(h, len, 0, {nullptr}, 1, &top->children[i++]);
      MakeArray(h, len * shape.dim, 0, {nullptr, Buf(b.vectors)}, 0, &v->children[0]);
    }
    if (shape.metadata) MakeArray(h, len, 0, {nullptr, Buf(b.meta_offsets), Buf(b.meta_blob)}, 0, &top->children[i++]);
    for (const AttrColumn& c : b.columns) ExportColumn(h, c, n, &top->children[i++]);
  } catch (...) {
    ReleaseArray(out);
    throw;
  }
}

void ExportStream(ScanShape shape, NextBatch next, ArrowArrayStream* out) {
  auto st = std::make_unique<StreamState>();
  st->shape = std::move(shape);
  st->next = std::move(next);
  out->get_schema = StreamSchema;
  out->get_next = StreamNext;
  out->get_last_error = StreamError;
  out->release = StreamRelease;
  out->private_data = st.release();
}

}  // namespace pomai::capi
