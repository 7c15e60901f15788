// WAL writer with group commit.
//
// Thread-safe. Concurrent Commit() calls are grouped: the first waiting
// caller becomes the leader, frames every queued record, writes them with one
// AppendV (one writev(2) of the headers and the callers' own payload bytes), makes them durable with one Sync when the policy is
// kAlways, then runs each record's apply callback in log order and wakes the
// other callers with the shared status. So throughput under fsync is bounded
// by batch size and concurrency, not by one fdatasync per record.
//
// A failed write or sync is sticky: that call and every later Commit return
// the same error (an fdatasync failure may have lost data in the page cache;
// retrying and reporting success would lie). Nothing is applied for a failed
// group.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "util/env.h"
#include "util/status.h"

namespace pomai::wal {

enum class SyncPolicy { kNever = 0, kAlways = 1 };

class Writer {
 public:
  // Takes ownership of `file`, which is appended to at its current end.
  // Sequence numbers handed out start at `next_seq`.
  Writer(std::unique_ptr<WritableFile> file, SyncPolicy policy, uint64_t next_seq);
  ~Writer();

  // Appends one record of `type` (1..255) with `payload` (at most kMaxPayload
  // bytes) under the next sequence number, and, once it is written (and
  // synced under kAlways), calls apply(seq) on the leader thread, in log
  // order, before any later record's apply. `apply` must not fail and must
  // not call back into this Writer. Returns the group's status; on error
  // `apply` is not called.
  Status Commit(uint8_t type, std::string_view payload, const std::function<void(uint64_t seq)>& apply) {
    return Commit(type, &payload, 1, apply);
  }
  // The same with the payload given as `count` pieces written back to back
  // (gathered by the write itself: nothing is copied). The pieces must stay
  // valid until Commit returns.
  Status Commit(uint8_t type, const std::string_view* pieces, size_t count,
                const std::function<void(uint64_t seq)>& apply);

  // Runs fn() while no group is being written or applied, then returns its
  // status. Used to switch files and memtables atomically with respect to
  // commits.
  Status RunExclusive(const std::function<Status()>& fn);

  // Replaces the file: fdatasyncs the old one (a failure is sticky and
  // nothing is switched), then closes it. Call only inside RunExclusive.
  Status SwitchFile(std::unique_ptr<WritableFile> file);

  // fdatasync of the current file (for close under kNever); OK when there is
  // no file yet. Sticky on failure.
  Status Sync();

  // The first error that made the writer refuse writes, or OK.
  Status sticky_error() const;

  // The sequence number the next record will get.
  uint64_t next_seq() const;

  // Bytes in the current file.
  uint64_t file_size() const;

 private:
  struct Pending;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  bool exclusive_ = false;  // a RunExclusive or a leader holds the log
  std::unique_ptr<WritableFile> file_;
  SyncPolicy policy_;
  uint64_t next_seq_;
  Status sticky_;
  // The leader's buffers (headers of the group, and the pieces to write).
  std::string headers_;
  std::vector<std::string_view> iov_;
  uint64_t file_size_;  // file_->Size() as of the last completed group, under mu_
};

}  // namespace pomai::wal
