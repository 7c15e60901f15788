#include "wal/log_writer.h"

#include <cassert>
#include <cstring>
#include <new>
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
// The leader's piece list is released after a group with more pieces than this.
constexpr size_t kMaxRetainedPieces = 4096;
// A group of at least this many payload bytes is staged on the helper thread
// while it is written; a smaller one on the leader before the write (waking
// the helper would cost more than the overlap saves).
constexpr size_t kParallelStageBytes = 128u << 10;

// The Writer whose log the current thread holds inside RunExclusive, so that
// SwitchFile and Sync can tell that they already own the file.
thread_local const Writer* tls_exclusive_owner = nullptr;

// CRC32C of the payload given as pieces.
uint32_t Crc(const std::string_view* pieces, size_t count) {
  uint32_t crc = 0;
  for (size_t i = 0; i < count; ++i) crc = crc32c::Extend(crc, pieces[i].data(), pieces[i].size());
  return crc;
}

}  // namespace

// A request waiting in queue_: a record to commit, a RunExclusive, or a Sync.
// Entries are served strictly in FIFO order; only commits are grouped.
struct Writer::Pending {
  enum class Kind { kCommit, kExclusive, kSync };
  Kind kind = Kind::kCommit;
  uint8_t type = 0;
  const std::string_view* pieces = nullptr;
  size_t count = 0;
  size_t size = 0;  // payload bytes
  uint32_t crc = 0;  // of the payload: by the caller's thread before queueing, or by the leader
  bool crc_done = false;
  const std::function<void(uint64_t)>* stage = nullptr;  // may be null
  const std::function<void(uint64_t)>* apply = nullptr;
  Status status;
  bool done = false;
};

Writer::Writer(std::unique_ptr<WritableFile> file, SyncPolicy policy, uint64_t next_seq)
    : file_(std::move(file)), policy_(policy), next_seq_(next_seq), file_size_(file_ ? file_->Size() : 0) {}

Writer::~Writer() {
  assert(queue_.empty() && !exclusive_);
  if (helper_.joinable()) {
    {
      MutexLock l(&helper_mu_);
      helper_stop_ = true;
    }
    helper_cv_.SignalAll();
    helper_.join();
  }
  if (file_) (void)file_->Close();
}

bool Writer::RunStages(Pending* const* group, size_t n, uint64_t first_seq) {
  try {
    for (size_t i = 0; i < n; ++i)
      if (group[i]->stage) (*group[i]->stage)(first_seq + i);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

void Writer::StartStages(Pending* const* group, size_t n, uint64_t first_seq) {
  MutexLock l(&helper_mu_);
  if (!helper_.joinable()) helper_ = std::thread([this] { HelperLoop(); });
  job_group_ = group;
  job_n_ = n;
  job_seq_ = first_seq;
  job_done_ = false;
  job_ready_ = true;
  helper_cv_.SignalAll();
}

bool Writer::JoinStages() {
  MutexLock l(&helper_mu_);
  while (!job_done_) helper_cv_.Wait(&helper_mu_);
  return job_ok_;
}

void Writer::HelperLoop() {
  MutexLock l(&helper_mu_);
  for (;;) {
    while (!helper_stop_ && !job_ready_) helper_cv_.Wait(&helper_mu_);
    if (job_ready_) {
      job_ready_ = false;
      Pending* const* group = job_group_;
      const size_t n = job_n_;
      const uint64_t first_seq = job_seq_;
      l.Unlock();
      const bool ok = RunStages(group, n, first_seq);
      l.Lock();
      job_ok_ = ok;
      job_done_ = true;
      helper_cv_.SignalAll();
      continue;
    }
    return;  // stopping, no job pending
  }
}

Status Writer::Commit(uint8_t type, const std::string_view* pieces, size_t count,
                      const std::function<void(uint64_t seq)>& apply) {
  return Commit(type, pieces, count, nullptr, apply);
}

Status Writer::Commit(uint8_t type, const std::string_view* pieces, size_t count,
                      const std::function<void(uint64_t seq)>& stage, const std::function<void(uint64_t seq)>& apply) {
  if (type == 0) return Status::InvalidArgument("WAL record type 0 is reserved");
  if (pieces == nullptr && count > 0) return Status::InvalidArgument("WAL record pieces is NULL");
  size_t size = 0;
  for (size_t i = 0; i < count; ++i) size += pieces[i].size();
  if (size > kMaxPayload) {
    return Status::InvalidArgument("WAL record payload of " + std::to_string(size) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxPayload));
  }

  // It would wait behind its own exclusive section forever.
  if (tls_exclusive_owner == this) return Status::Internal("WAL Commit called from inside RunExclusive");

  Pending w;
  w.type = type;
  w.pieces = pieces;
  w.count = count;
  w.size = size;
  w.stage = stage ? &stage : nullptr;
  w.apply = &apply;

  MutexLock l(&mu_);
  if (!sticky_.ok()) return sticky_;
  // A caller that will wait behind others computes its record's CRC now, in
  // parallel with them. One that will lead a large staged group at once
  // leaves it to the leader, which computes it while the helper stages.
  if (!(w.stage && size >= kParallelStageBytes && queue_.empty() && !exclusive_)) {
    l.Unlock();
    w.crc = Crc(pieces, count);
    w.crc_done = true;
    l.Lock();
    if (!sticky_.ok()) return sticky_;
  }
  queue_.push_back(&w);
  while (!w.done && (exclusive_ || queue_.front() != &w)) cv_.Wait(&mu_);
  if (w.done) return w.status;

  // This thread leads. A group that failed after w was queued leaves its error behind.
  if (!sticky_.ok()) {
    queue_.pop_front();
    cv_.SignalAll();
    return sticky_;
  }

  // Take every queued commit up to the first non-commit entry or the size cap.
  size_t group_size = 0;
  size_t group_bytes = 0;
  for (Pending* p : queue_) {
    if (p->kind != Pending::Kind::kCommit) break;
    size_t bytes = kHeaderSize + p->size;
    if (group_size > 0 && group_bytes + bytes > kMaxGroupBytes) break;
    group_bytes += bytes;
    ++group_size;
  }
  std::vector<Pending*> group(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(group_size));
  const uint64_t first_seq = next_seq_;
  exclusive_ = true;
  l.Unlock();

  bool any_stage = false;
  for (const Pending* p : group) any_stage = any_stage || p->stage != nullptr;
  const bool parallel = any_stage && group_bytes >= kParallelStageBytes;
  bool staged = true;
  if (parallel) {
    StartStages(group.data(), group.size(), first_seq);
  } else if (any_stage) {
    staged = RunStages(group.data(), group.size(), first_seq);
  }

  // Only the leader touches file_, headers_ and iov_ while exclusive_ is set.
  headers_.resize(group.size() * kHeaderSize);
  iov_.clear();
  for (size_t i = 0; i < group.size(); ++i) {
    Pending& p = *group[i];
    if (!p.crc_done) p.crc = Crc(p.pieces, p.count);
    uint8_t* h = reinterpret_cast<uint8_t*>(headers_.data()) + i * kHeaderSize;
    EncodeHeader(h, p.type, first_seq + i, p.size, p.crc);
    iov_.emplace_back(reinterpret_cast<const char*>(h), kHeaderSize);
    iov_.insert(iov_.end(), p.pieces, p.pieces + p.count);
  }
  Status s = staged ? file_->AppendV(iov_.data(), iov_.size()) : Status::OK();
  if (s.ok() && staged && policy_ == SyncPolicy::kAlways) s = file_->Sync();
  if (parallel) staged = JoinStages();
  if (s.ok() && !staged) s = Status::ResourceExhausted("out of memory applying a WAL record: the database refuses writes until reopened");
  if (s.ok()) {
    for (size_t i = 0; i < group.size(); ++i) (*group[i]->apply)(first_seq + i);
  }
  const uint64_t size_now = file_->Size();
  if (iov_.capacity() > kMaxRetainedPieces) std::vector<std::string_view>().swap(iov_);

  l.Lock();
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
  cv_.SignalAll();
  return s;
}

Status Writer::RunExclusive(const std::function<Status()>& fn) {
  if (tls_exclusive_owner == this) return Status::Internal("WAL RunExclusive called from inside RunExclusive");
  Pending w;
  w.kind = Pending::Kind::kExclusive;
  MutexLock l(&mu_);
  queue_.push_back(&w);
  while (exclusive_ || queue_.front() != &w) cv_.Wait(&mu_);
  exclusive_ = true;
  l.Unlock();

  const Writer* outer = tls_exclusive_owner;
  tls_exclusive_owner = this;
  Status s = fn();
  tls_exclusive_owner = outer;

  l.Lock();
  assert(queue_.front() == &w);
  queue_.pop_front();
  exclusive_ = false;
  cv_.SignalAll();
  return s;
}

Status Writer::SwitchFile(std::unique_ptr<WritableFile> file) {
  if (tls_exclusive_owner != this) return Status::Internal("WAL SwitchFile called outside RunExclusive");
  if (!file) return Status::InvalidArgument("WAL SwitchFile given no file");
  // The old file is made durable before any record can go to the new one, so
  // a power cut never keeps a later file's records without an earlier one's
  // (whatever the policy). A failure is a failed sync: sticky, no switch.
  if (file_) {
    Status synced = file_->Sync();
    if (!synced.ok()) {
      MutexLock l(&mu_);
      if (sticky_.ok()) sticky_ = synced;
      return synced;
    }
  }
  std::unique_ptr<WritableFile> old = std::move(file_);
  file_ = std::move(file);
  Status s = old ? old->Close() : Status::OK();
  MutexLock l(&mu_);
  file_size_ = file_->Size();
  // A close error can mean that written data never reached the disk: treat it
  // like a failed sync.
  if (!s.ok() && sticky_.ok()) sticky_ = s;
  return s;
}

Status Writer::Sync() {
  if (tls_exclusive_owner == this) {
    {
      MutexLock l(&mu_);
      if (!sticky_.ok()) return sticky_;
    }
    Status s = file_ ? file_->Sync() : Status::OK();
    MutexLock l(&mu_);
    if (!s.ok() && sticky_.ok()) sticky_ = s;
    return s;
  }

  Pending w;
  w.kind = Pending::Kind::kSync;
  MutexLock l(&mu_);
  if (!sticky_.ok()) return sticky_;
  queue_.push_back(&w);
  while (exclusive_ || queue_.front() != &w) cv_.Wait(&mu_);
  Status s = sticky_;
  if (s.ok()) {
    exclusive_ = true;
    l.Unlock();
    s = file_ ? file_->Sync() : Status::OK();  // no file yet (a failed open): nothing to sync
    l.Lock();
    if (!s.ok() && sticky_.ok()) sticky_ = s;
    exclusive_ = false;
  }
  assert(queue_.front() == &w);
  queue_.pop_front();
  cv_.SignalAll();
  return s;
}

Status Writer::sticky_error() const {
  MutexLock l(&mu_);
  return sticky_;
}

uint64_t Writer::next_seq() const {
  MutexLock l(&mu_);
  return next_seq_;
}

uint64_t Writer::file_size() const {
  MutexLock l(&mu_);
  return file_size_;
}

}  // namespace pomai::wal
