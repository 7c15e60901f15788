#include "wal/log_writer.h"

#include <cassert>
#include <utility>
#include <vector>

#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/log_format.h"

namespace pomai::wal {

namespace {

// A group stops growing at this many framed bytes (unless its first record
// alone is bigger), so one leader does not hold the log for too long.
constexpr size_t kMaxGroupBytes = 4u << 20;
// The leader's framing buffer is released after a group bigger than this.
constexpr size_t kMaxRetainedScratch = 2 * kMaxGroupBytes;

// The Writer whose log the current thread holds inside RunExclusive, so that
// SwitchFile and Sync can tell that they already own the file.
thread_local const Writer* tls_exclusive_owner = nullptr;

void AppendRecord(std::string* dst, uint8_t type, uint64_t seq, std::string_view payload) {
  uint8_t h[kHeaderSize] = {};
  EncodeFixed32(h, static_cast<uint32_t>(payload.size()));
  h[4] = type;
  EncodeFixed64(h + 8, seq);
  EncodeFixed32(h + 16, crc32c::Value(payload.data(), payload.size()));
  EncodeFixed32(h + 20, crc32c::Value(h, 20));
  PutBytes(dst, h, kHeaderSize);
  PutBytes(dst, payload.data(), payload.size());
}

}  // namespace

// A request waiting in queue_: a record to commit, a RunExclusive, or a Sync.
// Entries are served strictly in FIFO order; only commits are grouped.
struct Writer::Pending {
  enum class Kind { kCommit, kExclusive, kSync };
  Kind kind = Kind::kCommit;
  uint8_t type = 0;
  std::string_view payload;
  const std::function<void(uint64_t)>* apply = nullptr;
  Status status;
  bool done = false;
};

Writer::Writer(std::unique_ptr<WritableFile> file, SyncPolicy policy, uint64_t next_seq)
    : file_(std::move(file)), policy_(policy), next_seq_(next_seq), file_size_(file_ ? file_->Size() : 0) {}

Writer::~Writer() {
  assert(queue_.empty() && !exclusive_);
  if (file_) (void)file_->Close();
}

Status Writer::Commit(uint8_t type, std::string_view payload, const std::function<void(uint64_t seq)>& apply) {
  if (type == 0) return Status::InvalidArgument("WAL record type 0 is reserved");
  if (payload.size() > kMaxPayload) {
    return Status::InvalidArgument("WAL record payload of " + std::to_string(payload.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxPayload));
  }

  // It would wait behind its own exclusive section forever.
  if (tls_exclusive_owner == this) return Status::Internal("WAL Commit called from inside RunExclusive");

  Pending w;
  w.type = type;
  w.payload = payload;
  w.apply = &apply;

  std::unique_lock<std::mutex> l(mu_);
  if (!sticky_.ok()) return sticky_;
  queue_.push_back(&w);
  while (!w.done && (exclusive_ || queue_.front() != &w)) cv_.wait(l);
  if (w.done) return w.status;

  // This thread leads. A group that failed after w was queued leaves its error behind.
  if (!sticky_.ok()) {
    queue_.pop_front();
    cv_.notify_all();
    return sticky_;
  }

  // Take every queued commit up to the first non-commit entry or the size cap.
  size_t group_size = 0;
  size_t group_bytes = 0;
  for (Pending* p : queue_) {
    if (p->kind != Pending::Kind::kCommit) break;
    size_t bytes = kHeaderSize + p->payload.size();
    if (group_size > 0 && group_bytes + bytes > kMaxGroupBytes) break;
    group_bytes += bytes;
    ++group_size;
  }
  std::vector<Pending*> group(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(group_size));
  const uint64_t first_seq = next_seq_;
  exclusive_ = true;
  l.unlock();

  // Only the leader touches file_ and scratch_ while exclusive_ is set.
  scratch_.clear();
  scratch_.reserve(group_bytes);
  for (size_t i = 0; i < group.size(); ++i) AppendRecord(&scratch_, group[i]->type, first_seq + i, group[i]->payload);
  Status s = file_->Append(scratch_.data(), scratch_.size());
  if (s.ok() && policy_ == SyncPolicy::kAlways) s = file_->Sync();
  if (s.ok()) {
    for (size_t i = 0; i < group.size(); ++i) (*group[i]->apply)(first_seq + i);
  }
  const uint64_t size_now = file_->Size();
  if (scratch_.capacity() > kMaxRetainedScratch) std::string().swap(scratch_);

  l.lock();
  file_size_ = size_now;
  if (s.ok()) {
    next_seq_ = first_seq + group.size();
  } else if (sticky_.ok()) {
    sticky_ = s;
  }
  for (Pending* p : group) {
    assert(queue_.front() == p);
    queue_.pop_front();
    p->status = s;
    p->done = true;
  }
  exclusive_ = false;
  cv_.notify_all();
  return s;
}

Status Writer::RunExclusive(const std::function<Status()>& fn) {
  if (tls_exclusive_owner == this) return Status::Internal("WAL RunExclusive called from inside RunExclusive");
  Pending w;
  w.kind = Pending::Kind::kExclusive;
  std::unique_lock<std::mutex> l(mu_);
  queue_.push_back(&w);
  while (exclusive_ || queue_.front() != &w) cv_.wait(l);
  exclusive_ = true;
  l.unlock();

  const Writer* outer = tls_exclusive_owner;
  tls_exclusive_owner = this;
  Status s = fn();
  tls_exclusive_owner = outer;

  l.lock();
  assert(queue_.front() == &w);
  queue_.pop_front();
  exclusive_ = false;
  cv_.notify_all();
  return s;
}

Status Writer::SwitchFile(std::unique_ptr<WritableFile> file) {
  if (tls_exclusive_owner != this) return Status::Internal("WAL SwitchFile called outside RunExclusive");
  if (!file) return Status::InvalidArgument("WAL SwitchFile given no file");
  std::unique_ptr<WritableFile> old = std::move(file_);
  file_ = std::move(file);
  Status s = old ? old->Close() : Status::OK();
  std::lock_guard<std::mutex> l(mu_);
  file_size_ = file_->Size();
  // A close error can mean that written data never reached the disk: treat it
  // like a failed sync.
  if (!s.ok() && sticky_.ok()) sticky_ = s;
  return s;
}

Status Writer::Sync() {
  if (tls_exclusive_owner == this) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!sticky_.ok()) return sticky_;
    }
    Status s = file_->Sync();
    std::lock_guard<std::mutex> l(mu_);
    if (!s.ok() && sticky_.ok()) sticky_ = s;
    return s;
  }

  Pending w;
  w.kind = Pending::Kind::kSync;
  std::unique_lock<std::mutex> l(mu_);
  if (!sticky_.ok()) return sticky_;
  queue_.push_back(&w);
  while (exclusive_ || queue_.front() != &w) cv_.wait(l);
  Status s = sticky_;
  if (s.ok()) {
    exclusive_ = true;
    l.unlock();
    s = file_->Sync();
    l.lock();
    if (!s.ok() && sticky_.ok()) sticky_ = s;
    exclusive_ = false;
  }
  assert(queue_.front() == &w);
  queue_.pop_front();
  cv_.notify_all();
  return s;
}

Status Writer::sticky_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return sticky_;
}

uint64_t Writer::next_seq() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_seq_;
}

uint64_t Writer::file_size() const {
  std::lock_guard<std::mutex> l(mu_);
  return file_size_;
}

}  // namespace pomai::wal
