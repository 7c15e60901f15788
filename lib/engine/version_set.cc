#include "engine/version_set.h"

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include "engine/filename.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"
#include "wal/record_codec.h"

namespace pomai::engine {

namespace {

constexpr uint8_t kEditRecordType = static_cast<uint8_t>(wal::RecordType::kVersionEdit);

// Appends one manifest record (WAL framing) holding `payload` under `seq`.
Status AppendRecord(WritableFile* file, uint64_t seq, const std::string& payload) {
  uint8_t header[wal::kHeaderSize];
  wal::EncodeHeader(header, kEditRecordType, seq, payload.size(), crc32c::Value(payload.data(), payload.size()));
  const std::string_view pieces[2] = {
      std::string_view(reinterpret_cast<const char*>(header), sizeof(header)), payload};
  return file->AppendV(pieces, 2);
}

// The first record of a manifest file: format version and the whole of `v`.
VersionEdit Snapshot(const Version& v) {
  VersionEdit e;
  e.format_version = kFormatVersion;
  e.log_number = v.log_number;
  e.last_seq = v.last_seq;
  e.next_file_number = v.next_file_number;
  e.added = v.segments;
  return e;
}

std::string CurrentContents(uint64_t manifest_number) {
  return files::FileName(files::FileType::kManifest, manifest_number) + "\n";
}

}  // namespace

Status CheckNotOldFormat(Env* env, const std::string& dir) {
  if (env->FileExists(JoinPath(dir, files::FileName(files::FileType::kCurrent, 0)))) return Status::OK();
  for (const char* name : {files::kVersion1ManifestName, files::kVersion1KeyspaceManifestName}) {
    const std::string path = JoinPath(dir, name);
    if (env->FileExists(path)) return RefuseVersion1Manifest(env, path);
  }
  return Status::OK();
}

Status RefuseVersion1Manifest(Env* env, const std::string& path) {
  std::string bytes;
  std::string version = "unknown";
  if (ReadFileToString(env, path, &bytes).ok() && bytes.size() >= 12) {
    version = std::to_string(DecodeFixed32(reinterpret_cast<const uint8_t*>(bytes.data()) + 8));
  }
  return Status::InvalidArgument(path + " holds a pomai database of format version 1 (manifest version " + version +
                                 "); this build reads format version " + std::to_string(kFormatVersion) +
                                 " and does not convert (no migration before 1.0)");
}

bool VersionSet::Apply(const Version& base, const VersionEdit& edit, Version* out, std::string* why) {
  auto fail = [&](std::string what) {
    *why = std::move(what);
    return false;
  };
  Version v;
  v.log_number = edit.log_number.value_or(base.log_number);
  v.last_seq = edit.last_seq.value_or(base.last_seq);
  v.next_file_number = edit.next_file_number.value_or(base.next_file_number);
  if (v.log_number < base.log_number) {
    return fail("log number " + std::to_string(v.log_number) + " is below " + std::to_string(base.log_number));
  }
  if (v.last_seq < base.last_seq) {
    return fail("last seq " + std::to_string(v.last_seq) + " is below " + std::to_string(base.last_seq));
  }
  if (v.next_file_number < base.next_file_number) {
    return fail("next file number " + std::to_string(v.next_file_number) + " is below " +
                std::to_string(base.next_file_number));
  }

  std::set<uint64_t> live;
  for (const SegmentMeta& s : base.segments) live.insert(s.number);
  std::set<uint64_t> removed;
  for (uint64_t n : edit.removed) {
    if (!live.count(n)) return fail("removes segment " + std::to_string(n) + ", which is not live");
    if (!removed.insert(n).second) return fail("removes segment " + std::to_string(n) + " twice");
  }
  for (const SegmentMeta& s : base.segments) {
    if (!removed.count(s.number)) v.segments.push_back(s);
  }
  std::set<uint64_t> added;
  for (const SegmentMeta& s : edit.added) {
    if (live.count(s.number) || !added.insert(s.number).second) {
      return fail("adds segment " + std::to_string(s.number) + ", which is already live");
    }
    if (s.first_seq > s.last_seq) {
      return fail("adds segment " + std::to_string(s.number) + " with first seq " + std::to_string(s.first_seq) +
                  " above its last seq " + std::to_string(s.last_seq));
    }
    v.segments.push_back(s);
  }

  std::sort(v.segments.begin(), v.segments.end(),
            [](const SegmentMeta& a, const SegmentMeta& b) { return a.last_seq > b.last_seq; });
  for (size_t i = 0; i < v.segments.size(); ++i) {
    const SegmentMeta& s = v.segments[i];
    if (s.number >= v.next_file_number) {
      return fail("segment " + std::to_string(s.number) + " is not below the next file number " +
                  std::to_string(v.next_file_number));
    }
    if (s.last_seq > v.last_seq) {
      return fail("segment " + std::to_string(s.number) + " ends at seq " + std::to_string(s.last_seq) +
                  ", past the last seq " + std::to_string(v.last_seq));
    }
    // Newest first: the next one must end before this one starts.
    if (i + 1 < v.segments.size() && v.segments[i + 1].last_seq >= s.first_seq) {
      return fail("segments " + std::to_string(v.segments[i + 1].number) + " and " + std::to_string(s.number) +
                  " have overlapping seq intervals");
    }
  }
  *out = std::move(v);
  return true;
}

VersionSet::VersionSet(Env* env, std::string dir, const VersionSetOptions& options, std::shared_ptr<const Version> v,
                       uint64_t manifest_number)
    : env_(env),
      dir_(std::move(dir)),
      options_(options),
      next_file_number_(v->next_file_number),
      manifest_number_(manifest_number),
      current_(std::move(v)) {}

VersionSet::~VersionSet() {
  MutexLock l(&install_mu_);
  if (log_) (void)log_->Close();
}

std::shared_ptr<const Version> VersionSet::current() const {
  MutexLock l(&current_mu_);
  return current_;
}

Result<std::unique_ptr<VersionSet>> VersionSet::Create(Env* env, const std::string& dir,
                                                       const VersionSetOptions& options) {
  POMAI_RETURN_IF_ERROR(CheckNotOldFormat(env, dir));  // before anything is created (ENGINE.md 3.1)
  POMAI_RETURN_IF_ERROR(CreateDirDurably(env, dir));
  const std::string current = JoinPath(dir, files::FileName(files::FileType::kCurrent, 0));
  if (env->FileExists(current)) return Status::AlreadyExists(current + " exists: the database is not new");
  auto empty = std::make_shared<Version>();
  empty->next_file_number = 1;
  std::unique_ptr<VersionSet> vs(new VersionSet(env, dir, options, std::move(empty), 0));
  MutexLock l(vs->install_mu());
  VersionEdit edit;
  POMAI_RETURN_IF_ERROR(vs->LogAndApply(&edit));  // no open log: a new manifest file
  l.Unlock();
  return vs;
}

Result<uint64_t> VersionSet::ReadCurrent(Env* env, const std::string& dir) {
  const std::string current_path = JoinPath(dir, files::FileName(files::FileType::kCurrent, 0));
  if (!env->FileExists(current_path)) return Status::NotFound(current_path + " does not exist");
  std::string current;
  POMAI_RETURN_IF_ERROR(ReadFileToString(env, current_path, &current));
  files::FileType type;
  uint64_t manifest_number = 0;
  if (current.empty() || current.back() != '\n' ||
      !files::ParseFileName(std::string_view(current).substr(0, current.size() - 1), &type, &manifest_number) ||
      type != files::FileType::kManifest) {
    return Status::Corruption(current_path, 0, "CURRENT does not hold MANIFEST-NNNNNN and a newline");
  }
  return manifest_number;
}

Status VersionSet::Replay(std::string_view bytes, const std::string& path, Version* out, std::vector<Record>* records,
                          uint64_t manifest_number) {
  wal::Reader reader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
  wal::Record rec;
  Version v;
  uint64_t count = 0;
  while (reader.Next(&rec)) {
    ++count;
    if (rec.type != kEditRecordType) {
      return Status::Corruption(path, rec.offset,
                                "manifest record of type " + std::to_string(rec.type) + ", expected " +
                                    std::to_string(kEditRecordType));
    }
    if (rec.seq != count) {
      return Status::Corruption(path, rec.offset,
                                "manifest record seq " + std::to_string(rec.seq) + ", expected " + std::to_string(count));
    }
    VersionEdit edit;
    POMAI_RETURN_IF_ERROR(VersionEdit::Decode(rec.payload, path, &edit, rec.offset + wal::kHeaderSize));
    if (count == 1) {
      if (!edit.format_version) {
        return Status::Corruption(path, rec.offset, "the first manifest record does not start with the format version");
      }
      if (*edit.format_version != kFormatVersion) {
        return Status::Corruption(path, rec.offset,
                                  "unsupported database format version " + std::to_string(*edit.format_version) +
                                      " (this build reads " + std::to_string(kFormatVersion) + ")");
      }
      if (!edit.log_number || !edit.last_seq || !edit.next_file_number || !edit.removed.empty()) {
        return Status::Corruption(path, rec.offset, "the first manifest record is not a snapshot");
      }
    } else if (edit.format_version) {
      return Status::Corruption(path, rec.offset, "format version outside the first manifest record");
    }
    std::string why;
    if (!Apply(v, edit, &v, &why)) return Status::Corruption(path, rec.offset, "version edit " + why);
    if (records) records->push_back(Record{rec.offset, rec.seq, std::move(edit)});
  }
  if (!reader.status().ok()) return reader.status();
  if (count == 0) return Status::Corruption(path, 0, "the manifest holds no complete record");
  if (manifest_number != 0 && manifest_number >= v.next_file_number) {
    return Status::Corruption(path, 0, "the manifest's own number is not below the next file number " +
                                           std::to_string(v.next_file_number));
  }
  *out = std::move(v);
  return Status::OK();
}

Result<std::unique_ptr<VersionSet>> VersionSet::Recover(Env* env, const std::string& dir,
                                                        const VersionSetOptions& options) {
  POMAI_RETURN_IF_ERROR(CheckNotOldFormat(env, dir));
  POMAI_ASSIGN_OR_RETURN(const uint64_t manifest_number, ReadCurrent(env, dir));
  const std::string path = JoinPath(dir, files::FileName(files::FileType::kManifest, manifest_number));
  if (!env->FileExists(path)) {
    return Status::Corruption(JoinPath(dir, files::FileName(files::FileType::kCurrent, 0)), 0,
                              "CURRENT names " + path + ", which does not exist");
  }
  std::string bytes;
  POMAI_RETURN_IF_ERROR(ReadFileToString(env, path, &bytes));
  Version v;
  POMAI_RETURN_IF_ERROR(Replay(bytes, path, &v, nullptr, manifest_number));
  return std::unique_ptr<VersionSet>(
      new VersionSet(env, dir, options, std::make_shared<const Version>(std::move(v)), manifest_number));
}

void VersionSet::MarkFileNumberUsed(uint64_t number) {
  uint64_t next = next_file_number_.load();
  while (next <= number && !next_file_number_.compare_exchange_weak(next, number + 1)) {
  }
}

Status VersionSet::LogAndApply(VersionEdit* edit) {
  if (edit->format_version) return Status::InvalidArgument("a version edit may not set the format version");
  const bool new_file = !log_ || rollover_ || log_->Size() >= options_.max_manifest_bytes;
  const uint64_t new_manifest = new_file ? NewFileNumber() : 0;
  // Step 1: complete the edit.
  edit->next_file_number = next_file_number_.load();
  std::string why;
  Version v;
  if (!Apply(*current(), *edit, &v, &why)) return Status::InvalidArgument("version edit refused: " + why);

  // Steps 2 and 3: make it durable; on failure install nothing and never append to log_ again.
  Status s;
  if (new_file) {
    const uint64_t old = manifest_number_;
    manifest_number_ = new_manifest;  // WriteNewManifest names the file from it
    s = WriteNewManifest(v);
    if (!s.ok()) {
      manifest_number_ = old;
      abandoned_.push_back(new_manifest);
    } else {
      if (old != 0) abandoned_.push_back(old);
      for (uint64_t n : abandoned_) (void)env_->RemoveFile(JoinPath(dir_, files::FileName(files::FileType::kManifest, n)));
      abandoned_.clear();
    }
  } else {
    s = AppendRecord(log_.get(), log_records_ + 1, edit->Encode());
    if (s.ok()) s = log_->Sync();
    if (s.ok()) ++log_records_;
  }
  if (!s.ok()) {
    rollover_ = true;
    return s;
  }

  // Step 4: install.
  auto installed = std::make_shared<const Version>(std::move(v));
  MutexLock l(&current_mu_);
  current_ = std::move(installed);
  return Status::OK();
}

Status VersionSet::WriteNewManifest(const Version& v) {
  const std::string path = JoinPath(dir_, files::FileName(files::FileType::kManifest, manifest_number_));
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env_->NewWritableFile(path));
  POMAI_RETURN_IF_ERROR(AppendRecord(file.get(), 1, Snapshot(v).Encode()));
  POMAI_RETURN_IF_ERROR(file->Sync());
  POMAI_RETURN_IF_ERROR(env_->SyncDir(dir_));
  POMAI_RETURN_IF_ERROR(WriteFileAtomically(env_, dir_, JoinPath(dir_, files::FileName(files::FileType::kCurrent, 0)),
                                            CurrentContents(manifest_number_)));
  if (log_) (void)log_->Close();
  log_ = std::move(file);
  log_records_ = 1;
  rollover_ = false;
  return Status::OK();
}

}  // namespace pomai::engine
