// The version set: which files make up a database of format version 2, kept
// in the manifest log (docs/ENGINE.md 3.5), and the one function that changes
// it, LogAndApply (LevelDB's scheme in our formats).
//
// On disk: CURRENT holds "MANIFEST-NNNNNN\n", the live manifest log; that log
// is in the WAL framing (lib/wal), every record of type 32 whose payload is a
// VersionEdit, the header's seq numbering the edits of the file from 1. The
// first record of every manifest file is a snapshot: format version 2 first,
// then log number, last seq, next file number and every live segment.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/version_edit.h"
#include "util/env.h"
#include "util/mutex.h"
#include "util/status.h"

namespace pomai::engine {

// The state a manifest describes after some edits. Immutable once installed:
// readers share it through a shared_ptr<const Version>.
struct Version {
  // The live segments, newest first (highest last_seq first); their seq
  // intervals are disjoint and at or below last_seq, so this order is the
  // interval order and is never stored.
  std::vector<SegmentMeta> segments;
  uint64_t log_number = 0;        // WAL files numbered >= it are live
  uint64_t last_seq = 0;          // every seq <= it is in a live segment
  uint64_t next_file_number = 0;  // greater than every number in use
  bool operator==(const Version&) const = default;
};

struct VersionSetOptions {
  // LogAndApply starts a new manifest file (a snapshot) instead of appending
  // once the open one holds at least this many bytes. Settable for tests.
  uint64_t max_manifest_bytes = 4u << 20;
};

// The refusal of a version-1 directory (ENGINE.md 3.1): when `dir` holds
// MANIFEST or KVMANIFEST and no CURRENT, InvalidArgument "<dir>/KVMANIFEST
// holds a pomai database of format version 1 (manifest version V); this
// build reads format version 2 and does not convert (no migration before
// 1.0)", V being the u32 at offset 8 of that file ("unknown" when it is
// shorter; MANIFEST is named first when both exist). OK otherwise. Reads only.
Status CheckNotOldFormat(Env* env, const std::string& dir);
// That refusal for the version-1 manifest at `path` (which must exist: else
// the version is "unknown"), for a reader given the file alone.
Status RefuseVersion1Manifest(Env* env, const std::string& path);

// Thread-safety: LogAndApply and manifest_number() require install_mu()
// (the database's install_mu_ of ENGINE.md 4.10, owned here so that the
// analysis ties the two); current() and NewFileNumber() may be called from
// any thread without it.
class VersionSet {
 public:
  // A new database in `dir`: CheckNotOldFormat (its refusal, before
  // anything is created), CreateDirDurably, then the first manifest
  // (MANIFEST-000001 holding the snapshot of the empty version, synced), then
  // CURRENT (WriteFileAtomically). AlreadyExists when `dir` has a CURRENT.
  static Result<std::unique_ptr<VersionSet>> Create(Env* env, const std::string& dir,
                                                    const VersionSetOptions& options = {});

  // Opens the version set of an existing database; writes nothing (the
  // first LogAndApply starts a new manifest file). CheckNotOldFormat first;
  // NotFound when there is no CURRENT. Corruption naming the file and byte
  // offset for: a CURRENT other than "MANIFEST-NNNNNN\n", a missing
  // manifest, a record of another type or out of seq order, an edit that
  // does not decode, a first record that is not a snapshot of format
  // version 2 (or a format version anywhere else), and an edit breaking the
  // rules of Apply (below) or making next file number, log number or last
  // seq decrease. A torn tail of the log (its LogAndApply never returned
  // OK) is dropped.
  static Result<std::unique_ptr<VersionSet>> Recover(Env* env, const std::string& dir,
                                                     const VersionSetOptions& options = {});

  ~VersionSet();
  VersionSet(const VersionSet&) = delete;
  VersionSet& operator=(const VersionSet&) = delete;

  Mutex* install_mu() RETURN_CAPABILITY(install_mu_) { return &install_mu_; }

  // Makes `edit` durable in the manifest and installs current() + edit.
  // Completes the edit first: next file number from the counter (whatever
  // the caller put there); the caller sets log number, last seq, added and
  // removed, and never format version. Then, when no manifest file is open
  // (after Recover), it holds max_manifest_bytes or more, or an earlier
  // append failed: writes a new MANIFEST-M holding one snapshot of the new
  // state, fdatasync, fsync dir, replaces CURRENT, deletes the old manifest
  // files; else appends `edit` and fdatasyncs. InvalidArgument (nothing
  // written) for an edit breaking the rules: a removed segment not live, an
  // added number already live, a
  // number not below next file number, first_seq > last_seq, intervals that
  // overlap or pass last seq, log number or last seq decreasing. On an I/O
  // error: that error, nothing installed, and the next call starts a new
  // manifest file (it never appends after a possibly torn record); the edit
  // may nevertheless be durable, so the caller keeps the files it added.
  Status LogAndApply(VersionEdit* edit) REQUIRES(install_mu_);

  // The installed version.
  std::shared_ptr<const Version> current() const;

  // A new file number (segments, WALs, manifests): an atomic counter, never
  // the same number twice in this process.
  uint64_t NewFileNumber() { return next_file_number_.fetch_add(1); }

  // Makes every later NewFileNumber() return more than `number`: recovery
  // calls it for each numbered file of the directory, since files created
  // after the last edit (a WAL, an unfinished segment) are named by no
  // manifest and their numbers must not be handed out again.
  void MarkFileNumberUsed(uint64_t number);

  // The number of the live manifest file (the one CURRENT names).
  uint64_t manifest_number() const REQUIRES(install_mu_) { return manifest_number_; }

  // The number of the manifest CURRENT names in `dir`. NotFound when there
  // is no CURRENT; Corruption when it holds anything but "MANIFEST-NNNNNN\n".
  static Result<uint64_t> ReadCurrent(Env* env, const std::string& dir);

  // One record of a manifest log: its offset in the file, its seq, its edit.
  struct Record {
    uint64_t offset = 0;
    uint64_t seq = 0;
    VersionEdit edit;
  };
  // Replays the manifest log `bytes`, read from `path` (named in errors),
  // under Recover's rules into *v (the records into *records when not null);
  // a torn tail is dropped. The errors are Recover's for a manifest, whose
  // own number (the one CURRENT names) is `manifest_number` (0: not checked
  // against the next file number).
  static Status Replay(std::string_view bytes, const std::string& path, Version* v,
                       std::vector<Record>* records = nullptr, uint64_t manifest_number = 0);

  // Applies `edit` to `base` into *out under the rules of LogAndApply (the
  // edit's next file number, when set, must not decrease either); on a
  // broken rule returns false with *why set.
  static bool Apply(const Version& base, const VersionEdit& edit, Version* out, std::string* why);

 private:
  VersionSet(Env* env, std::string dir, const VersionSetOptions& options, std::shared_ptr<const Version> v,
             uint64_t manifest_number);

  // Step 2 of LogAndApply when a new manifest file is due.
  Status WriteNewManifest(const Version& v) REQUIRES(install_mu_);

  Env* const env_;
  const std::string dir_;
  const VersionSetOptions options_;
  std::atomic<uint64_t> next_file_number_;

  Mutex install_mu_;  // before current_mu_
  std::unique_ptr<WritableFile> log_ GUARDED_BY(install_mu_);  // the open manifest, or null
  uint64_t manifest_number_ GUARDED_BY(install_mu_);
  uint64_t log_records_ GUARDED_BY(install_mu_) = 0;  // records in log_
  bool rollover_ GUARDED_BY(install_mu_) = false;      // an append failed: never append to log_ again
  // Manifest files written by a failed rollover: deleted after the next successful one.
  std::vector<uint64_t> abandoned_ GUARDED_BY(install_mu_);

  mutable Mutex current_mu_;  // a leaf lock
  std::shared_ptr<const Version> current_ GUARDED_BY(current_mu_);
};

}  // namespace pomai::engine
