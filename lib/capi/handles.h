// Internal to lib/capi: status objects, the exception guard and the handle
// tables shared by c_api.cc (the pomai_* functions of the default collection)
// and kv_api.cc (the keyspace, named indexes and transactions). Both open
// functions give the same kind of database (engine::DB) and every function
// works on a handle of either (docs/ENGINE.md 5.1).
//
// A handle (pomai_db_t*, pomai_txn_t*) is not an address: it encodes a slot
// of a table and the slot's generation, ((slot + 1) << 32) | generation.
// Closing bumps the generation, so a closed (or never valid) handle is
// recognised without touching freed memory, and slots are reused without
// leaking. Lock order: a database slot's mutex before any transaction slot's.
//
// fork(): a child process inherits copies of its parent's handles but none of
// the threads behind them (pools, log writers, background freezes), any lock
// a parent thread held at the fork stays held in the child for good, and the
// files are still the parent's. So every slot records the process that filled
// it, and a call on a handle made by another process (an ancestor, before the
// fork) answers CLOSED before it takes any lock of the slot; pomai_close of
// such a handle does nothing (the child's copies of the engine objects are
// left alone: destroying them would join threads that do not exist and write
// the parent's files).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/db.h"
#include "pomai/pomai.h"
#include "util/mutex.h"
#include "util/status.h"

struct pomai_status_t {
  int code;
  std::string message;
};

namespace pomai::capi {

// Returned when not even a status can be allocated; pomai_status_free skips it.
inline pomai_status_t g_out_of_memory{POMAI_STATUS_RESOURCE_EXHAUSTED, "out of memory"};

inline pomai_status_t* MakeStatus(int code, std::string msg) noexcept {
  try {
    return new pomai_status_t{code, std::move(msg)};
  } catch (...) {
    return &g_out_of_memory;
  }
}

inline pomai_status_t* FromStatus(const Status& s) {
  if (s.ok()) return nullptr;
  return MakeStatus(static_cast<int>(s.code()), s.message());
}

inline pomai_status_t* Invalid(std::string msg) { return MakeStatus(POMAI_STATUS_INVALID_ARGUMENT, std::move(msg)); }

// A C progress callback (pomai_progress_fn) as the engine's; NULL is none.
inline engine::ProgressFn ProgressOf(pomai_progress_fn fn, void* user_data) {
  if (fn == nullptr) return nullptr;
  return [fn, user_data](uint64_t done, uint64_t total) { fn(done, total, user_data); };
}

// Runs `fn` and turns any escaping C++ exception into a status.
template <typename Fn>
pomai_status_t* Guard(Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return MakeStatus(POMAI_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  } catch (const std::exception& e) {
    return MakeStatus(POMAI_STATUS_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return MakeStatus(POMAI_STATUS_INTERNAL, "internal error: unknown exception");
  }
}

// Which process made a handle. 8-aligned, so std::atomic<ProcessId> is one
// lock-free word with every compiler (clang calls libatomic otherwise).
struct alignas(8) ProcessId {
  uint32_t fork_epoch;  // bumped in every child of fork(), so no process shares an ancestor's
  int32_t pid;          // for messages
};

// This process; set when the library is loaded and in every child of fork()
// (the pthread_atfork handlers in handles.cc).
inline std::atomic<ProcessId> g_this_process{ProcessId{0, 0}};

// Whether this process made the handle of a slot whose `owner` this is:
// false for a handle an ancestor made before a fork(). Takes no lock.
inline bool MadeHere(const std::atomic<ProcessId>& owner) {
  return owner.load(std::memory_order_relaxed).fork_epoch == g_this_process.load(std::memory_order_relaxed).fork_epoch;
}

// The CLOSED status of a call on a handle an ancestor made before a fork(),
// or nullptr when this process made it (see MadeHere). `what` names the
// handle ("database handle opened"), `remedy` says what to do instead.
inline pomai_status_t* MadeBeforeFork(const std::atomic<ProcessId>& owner, const char* what, const char* remedy) {
  if (MadeHere(owner)) return nullptr;
  return MakeStatus(POMAI_STATUS_CLOSED, std::string(what) + " before fork() in process " +
                                             std::to_string(owner.load().pid) + " cannot be used in this process (" +
                                             std::to_string(g_this_process.load().pid) + "): " + remedy);
}

// A database slot holds one database (or none when free).
struct DbSlot {
  std::atomic<ProcessId> owner{g_this_process.load()};  // the process that filled it last; read without mu
  SharedMutex mu;  // calls hold it shared; close holds it exclusively
  uint32_t generation GUARDED_BY(mu) = 1;
  // Set and reset with mu held exclusively, used with it held shared. Not
  // annotated: WithDbSlot's callbacks use it under the lock it took, which
  // the analysis cannot see inside a lambda. pomai_open's databases have
  // their default collection open (kv->dim() > 0), pomai_db_open_ex's not.
  std::unique_ptr<engine::DB> kv;
  Mutex txns_mu;
  std::vector<uint64_t> txns GUARDED_BY(txns_mu);  // tokens of the transactions begun on kv (some may be closed)
  // The newest generation a pomai_close is waiting to close (0: none). Calls
  // on a handle of that generation answer CLOSED at once instead of taking mu
  // shared: a steady stream of calls would otherwise keep the close, which
  // needs mu exclusively, waiting for as long as the stream lasts.
  std::atomic<uint32_t> closing{0};
  bool open() const { return kv != nullptr; }
};

// The status of a call on a database handle of `slot` made before a fork(),
// or nullptr (see MadeBeforeFork).
inline pomai_status_t* DbMadeBeforeFork(const DbSlot& slot) {
  return MadeBeforeFork(slot.owner, "database handle opened", "open the database again here");
}

// Records that a close of `generation` waits for the slot (see DbSlot::closing).
inline void MarkClosing(DbSlot& slot, uint32_t generation) {
  uint32_t cur = slot.closing.load();
  while (cur < generation && !slot.closing.compare_exchange_weak(cur, generation)) {
  }
}

// The slot's lock, held shared for a call on a handle of `generation`; not
// taken (held() false) when a close of that generation is waiting: the call
// then answers CLOSED without touching the database. The analysis treats the
// lock as taken either way, so callers test held() before anything else.
class SCOPED_CAPABILITY CallLock {
 public:
  CallLock(DbSlot& slot, uint32_t generation) ACQUIRE_SHARED(slot.mu) : mu_(&slot.mu) {
    held_ = slot.closing.load() != generation;
    if (held_) mu_->LockShared();
  }
  ~CallLock() RELEASE() {
    if (held_) mu_->UnlockShared();
  }
  CallLock(const CallLock&) = delete;
  CallLock& operator=(const CallLock&) = delete;
  bool held() const { return held_; }

 private:
  SharedMutex* const mu_;
  bool held_;
};

// A transaction slot. Calls on one transaction are serialised by mu.
struct TxnSlot {
  std::atomic<ProcessId> owner{g_this_process.load()};  // the process that filled it last; read without mu
  Mutex mu;
  uint32_t generation GUARDED_BY(mu) = 1;
  std::unique_ptr<engine::Txn> txn GUARDED_BY(mu);  // null when free or closed
  std::atomic<uint64_t> db_token{0};     // the database it belongs to
};

// The status of a call on a transaction handle of `slot` begun before a
// fork(), or nullptr (see MadeBeforeFork).
inline pomai_status_t* TxnMadeBeforeFork(const TxnSlot& slot) {
  return MadeBeforeFork(slot.owner, "transaction handle begun",
                        "begin a new transaction on a database opened here");
}

// A grow-only table of slots addressed by generation-tagged tokens.
template <typename SlotT>
class HandleTable {
 public:
  static HandleTable& Get() {
    static HandleTable* table = new HandleTable();  // never destroyed: handles may outlive static destructors
    return *table;
  }

  // Reserves a free slot and returns its index; fill it under its mutex.
  uint32_t Allocate() {
    MutexLock l(&mu_);
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = size_.load();
      if (index >= kChunks * kChunkSize) throw std::length_error("too many open handles");
      if (index % kChunkSize == 0) chunks_[index / kChunkSize].store(new SlotT[kChunkSize]);
      size_.store(index + 1);
    }
    return index;
  }

  SlotT& At(uint32_t index) { return chunks_[index / kChunkSize].load()[index % kChunkSize]; }

  static uint64_t Token(uint32_t index, uint32_t generation) {
    return (static_cast<uint64_t>(index + 1) << 32) | generation;
  }

  // The slot a token names and the generation it carries, or nullptr when
  // the token was never issued.
  SlotT* Find(uint64_t token, uint32_t* generation) {
    const uint64_t index = (token >> 32) - 1;
    *generation = static_cast<uint32_t>(token);
    if ((token >> 32) == 0 || index >= size_.load() || *generation == 0) return nullptr;
    return &At(static_cast<uint32_t>(index));
  }

  void Release(uint64_t token) {
    MutexLock l(&mu_);
    free_.push_back(static_cast<uint32_t>((token >> 32) - 1));
  }

  // The fork() handlers (handles.cc). The table's lock is held across the
  // fork, so the child never finds it held by a thread it does not have. The
  // child forgets the free slots: it never reuses a slot made before the
  // fork, whose locks a thread of the parent may have held at the fork, and
  // every handle made before the fork keeps naming a slot the parent filled.
  // (The analysis does not follow a lock from one handler to the next.)
  void BeforeFork() NO_THREAD_SAFETY_ANALYSIS { mu_.Lock(); }
  void AfterForkInParent() NO_THREAD_SAFETY_ANALYSIS { mu_.Unlock(); }
  void AfterForkInChild() NO_THREAD_SAFETY_ANALYSIS {
    free_.clear();
    mu_.Unlock();
  }

 private:
  static constexpr uint32_t kChunkSize = 256;
  static constexpr uint32_t kChunks = 4096;

  Mutex mu_;
  std::atomic<SlotT*> chunks_[kChunks] = {};
  std::atomic<uint32_t> size_{0};
  std::vector<uint32_t> free_ GUARDED_BY(mu_);
};

using DbTable = HandleTable<DbSlot>;
using TxnTable = HandleTable<TxnSlot>;

inline uint64_t TokenOf(const void* handle) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(handle)); }
template <typename H>
H* HandleOf(uint64_t token) {
  return reinterpret_cast<H*>(static_cast<uintptr_t>(token));
}

// Bumps a slot's generation (never to 0).
template <typename SlotT>
void BumpGeneration(SlotT* slot) REQUIRES(slot->mu) {
  ++slot->generation;
  if (slot->generation == 0) slot->generation = 1;
}

// Puts a database in a free slot and returns its handle.
inline pomai_db_t* AddDatabase(std::unique_ptr<engine::DB> kv) {
  DbTable& table = DbTable::Get();
  const uint32_t index = table.Allocate();
  DbSlot& slot = table.At(index);
  WriterLock l(&slot.mu);
  slot.owner.store(g_this_process.load());
  slot.kv = std::move(kv);
  return HandleOf<pomai_db_t>(DbTable::Token(index, slot.generation));
}

// Runs fn(slot) with the database handle `db` held open (shared). NULL, a
// token naming no slot (answered with `not_a_handle`), a handle made before
// fork() and a closed handle never reach fn.
template <typename Fn>
pomai_status_t* WithDbSlot(pomai_db_t* db, const char* not_a_handle, Fn&& fn) noexcept {
  if (db == nullptr) return Invalid("db is NULL");
  return Guard([&]() -> pomai_status_t* {
    uint32_t generation;
    DbSlot* slot = DbTable::Get().Find(TokenOf(db), &generation);
    if (slot == nullptr) return Invalid(not_a_handle);
    if (pomai_status_t* dead = DbMadeBeforeFork(*slot)) return dead;
    CallLock l(*slot, generation);
    if (!l.held() || slot->generation != generation || !slot->open())
      return MakeStatus(POMAI_STATUS_CLOSED, "database is closed");
    return fn(*slot);
  });
}

// The engine's columns for `count` C columns of n rows each: validity
// bitmaps unpacked, null slots emptied, offsets rebased to 0 (c_api.cc). The
// engine checks the rest (names, UTF-8, NaN, duplicates, types).
pomai_status_t* ConvertColumns(const pomai_column_t* columns, size_t count, size_t n,
                               std::vector<pomai::AttrColumn>* out);

}  // namespace pomai::capi
