// WAL writer with group commit.
//
// Thread-safe. Concurrent Commit() calls are grouped: the first waiting
// caller becomes the leader, frames every queued record, writes them with one
// AppendV (one writev(2) of the headers and the callers' own payload bytes), makes them durable with one Sync when the policy is
// kAlways, then runs each record's apply callback in log order and wakes the
// other callers with the shared status. So throughput under fsync is bounded
// by batch size and concurrency, not by one fdatasync per record.
//
// A record may also come with a stage callback: work that prepares the
// record's effect without publishing it (the engine appends the rows to its
// memtable at a sequence number readers do not see yet). The leader runs the
// group's stages in log order before its apply callbacks; when the group is
// large it runs them on a helper thread while it writes the group, so the
// copy into the memtable overlaps the copy into the page cache instead of
// following it.
//
// A failed write or sync is sticky: that call and every later Commit return
// the same error (an fdatasync failure may have lost data in the page cache;
// retrying and reporting success would lie). Nothing is applied for a failed
// group (its stages may have run: what they did must stay unpublished).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "util/env.h"
#include "util/mutex.h"
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
  // The same, with stage(seq) called before apply(seq) (see above): on the
  // leader or on the writer's helper thread, before or while the group is
  // written. Stages run in log order, after the applies of every earlier
  // group (not necessarily of the earlier records of their own group).
  // `stage` may throw std::bad_alloc: the group then fails with
  // ResourceExhausted (sticky, like a failed write).
  Status Commit(uint8_t type, const std::string_view* pieces, size_t count,
                const std::function<void(uint64_t seq)>& stage, const std::function<void(uint64_t seq)>& apply);

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

  // Runs the stages of group[0, n) from first_seq on; false when one threw bad_alloc.
  static bool RunStages(Pending* const* group, size_t n, uint64_t first_seq);
  // Runs RunStages on the helper thread (started on first use); Join waits for it.
  void StartStages(Pending* const* group, size_t n, uint64_t first_seq);
  bool JoinStages();
  void HelperLoop();

  // Lock order: mu_ before helper_mu_ (never both held today).
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Pending*> queue_ GUARDED_BY(mu_);
  bool exclusive_ GUARDED_BY(mu_) = false;  // a RunExclusive or a leader holds the log
  // file_, headers_ and iov_ belong to whoever set exclusive_ (a leader, a
  // RunExclusive or a Sync): not lock-guarded, so not annotated.
  std::unique_ptr<WritableFile> file_;
  SyncPolicy policy_;
  uint64_t next_seq_ GUARDED_BY(mu_);
  Status sticky_ GUARDED_BY(mu_);
  // The leader's buffers (headers of the group, and the pieces to write).
  std::string headers_;
  std::vector<std::string_view> iov_;
  uint64_t file_size_ GUARDED_BY(mu_);  // file_->Size() as of the last completed group

  // The helper thread that stages large groups, and its one job.
  Mutex helper_mu_;
  CondVar helper_cv_;
  std::thread helper_;  // started under helper_mu_, joined by the destructor
  bool helper_stop_ GUARDED_BY(helper_mu_) = false;
  bool job_ready_ GUARDED_BY(helper_mu_) = false;
  bool job_done_ GUARDED_BY(helper_mu_) = false;
  bool job_ok_ GUARDED_BY(helper_mu_) = false;
  Pending* const* job_group_ GUARDED_BY(helper_mu_) = nullptr;
  size_t job_n_ GUARDED_BY(helper_mu_) = 0;
  uint64_t job_seq_ GUARDED_BY(helper_mu_) = 0;
};

}  // namespace pomai::wal
