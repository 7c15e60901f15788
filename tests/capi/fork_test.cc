// The fork() rule of the C ABI (pomai.h): in a child process every handle
// inherited from the parent is dead, and nothing the child does with one
// touches the parent's files; databases the child opens itself work.
//
// Each test forks. The child runs its checks and leaves with _exit (no test
// teardown, no static destructors: the parent's temporary directories must
// outlive it) after writing what failed to a pipe; the parent meanwhile keeps
// writing to the database the child inherited, then checks every row it was
// acknowledged is there after a close and a reopen.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "capi_test_util.h"
#include "pomai/pomai.h"
#include "support/temp_dir.h"

// Under TSan a child of a multi-threaded fork() must not start threads: the
// runtime stops checking in such a child, and kills it (die_after_fork) or
// fails an internal check ("dup thread") when it starts one. So there the
// children do not open databases of their own.
#if defined(__SANITIZE_THREAD__)
#define POMAI_FORK_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define POMAI_FORK_TEST_TSAN 1
#endif
#endif
#ifdef POMAI_FORK_TEST_TSAN
constexpr bool kChildMayStartThreads = false;
#else
constexpr bool kChildMayStartThreads = true;
#endif

namespace {

using pomai::testing::B;
using pomai::testing::Code;
using pomai::testing::Message;
using pomai::testing::StorageModeName;
using pomai::testing::TempDir;

constexpr uint32_t kDim = 4;

// The failed checks of a child process, one per line.
class Failures {
 public:
  void Expect(bool ok, const std::string& what) {
    if (!ok) text_ += what + "\n";
  }
  // Takes `s`: it must be CLOSED, saying the handle is from before fork().
  void ExpectForkClosed(pomai_status_t* s, const std::string& call) {
    const int code = pomai_status_code(s);
    const std::string message = Message(s);
    Expect(code == POMAI_STATUS_CLOSED && message.find("before fork()") != std::string::npos,
           call + ": code " + std::to_string(code) + " '" + message + "', expected CLOSED naming fork()");
  }
  // Takes `s`: it must be success.
  void ExpectOk(pomai_status_t* s, const std::string& call) {
    const int code = pomai_status_code(s);
    const std::string message = Message(s);
    Expect(code == POMAI_STATUS_OK, call + ": code " + std::to_string(code) + " '" + message + "'");
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Waits (at most 10 s) until every other thread of this process sleeps, so a
// child forked next does not inherit a thread caught inside malloc, or
// starting (which allocates): glibc's allocator survives that, but ASan's
// (clang 14) does not, and the child deadlocks in its first malloc of the
// size the lost thread held. Engine threads sleep when idle; a test's own
// writer is paused (Writer::Pause).
void WaitForOtherThreadsToSleep() {
  const std::string self = std::to_string(::gettid());
  for (int round = 0; round < 10000; ++round) {
    bool busy = false;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      if (task.path().filename() == self) continue;
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const size_t name_end = line.rfind(')');  // the state follows the command name
      busy = busy || (name_end != std::string::npos && line.compare(name_end, 3, ") S") != 0);
    }
    if (!busy) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Runs `child` in a forked child and `parent` (if any) in this process
// meanwhile, then waits for the child. Returns what `child` returned (the
// failed checks, "" when none), or how the child died. The child gets 60 s
// (SIGALRM), so a hang fails the test instead of stalling it.
std::string RunInChild(const std::function<std::string()>& child, const std::function<void()>& parent = {}) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe: " + std::string(std::strerror(errno));
  WaitForOtherThreadsToSleep();
  const pid_t pid = ::fork();
  if (pid < 0) return "fork: " + std::string(std::strerror(errno));
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(60);
    std::string failures = child();
    WriteAll(fds[1], failures);
    ::_exit(failures.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  if (parent) parent();
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) out += "the child died of signal " + std::string(strsignal(WTERMSIG(status))) + "\n";
  else if (WEXITSTATUS(status) != 0 && out.empty()) out = "the child exited with " + std::to_string(WEXITSTATUS(status));
  return out;
}

std::vector<float> Vec(uint64_t id) { return {1.0f, static_cast<float>(id % 97), 0.5f, static_cast<float>(id % 13)}; }

pomai_status_t* PutRow(pomai_db_t* db, uint64_t id) {
  const std::vector<float> v = Vec(id);
  const pomai_upsert_t u = pomai::testing::MakeUpsert(id, v.data(), kDim);
  return pomai_put(db, &u);
}

// Keeps putting rows (ids from `first` up) into a database until stopped, on
// a thread of its own; `acked` is the ids each put acknowledged.
class Writer {
 public:
  Writer(std::function<pomai_status_t*(uint64_t)> put, uint64_t first)
      : thread_([this, put = std::move(put), first] {
          for (uint64_t id = first; !stop_.load(); ++id) {
            std::lock_guard<std::mutex> l(between_writes_);
            pomai_status_t* s = put(id);
            if (s != nullptr) {
              error_ = Message(s);
              return;
            }
            acked_.push_back(id);
          }
        }) {}

  // Holds the thread between two writes while the lock returned is held:
  // the tests fork under it (see WaitForOtherThreadsToSleep; ForkRace covers
  // calls that run across the fork).
  std::unique_lock<std::mutex> Pause() { return std::unique_lock<std::mutex>(between_writes_); }

  // Stops the thread; the ids it was acknowledged.
  std::vector<uint64_t> Stop() {
    stop_.store(true);
    thread_.join();
    EXPECT_EQ(error_, "");
    return acked_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex between_writes_;
  std::string error_;
  std::vector<uint64_t> acked_;
  std::thread thread_;
};

pomai_options_t U64Options(const std::string& path) {
  pomai_options_t o;
  pomai_options_init(&o);
  o.path = path.c_str();
  o.dim = kDim;
  o.shards = 2;
  o.search_threads = 4;
  o.fsync_policy = POMAI_FSYNC_POLICY_ALWAYS;
  o.metric = POMAI_METRIC_IP;
  o.adaptive_threshold = 100;
  return o;
}

// A database the child opens itself works, its search pool included.
void UseOwnU64Database(const std::string& path, Failures* f) {
  if (!kChildMayStartThreads) return;
  const pomai_options_t o = U64Options(path);
  pomai_db_t* db = nullptr;
  f->ExpectOk(pomai_open(&o, &db), "pomai_open in the child");
  if (db == nullptr) return;
  std::vector<uint64_t> ids(300);
  std::vector<float> rows;
  for (uint64_t i = 0; i < ids.size(); ++i) {
    ids[i] = i;
    const std::vector<float> v = Vec(i);
    rows.insert(rows.end(), v.begin(), v.end());
  }
  f->ExpectOk(pomai_put_array(db, ids.data(), rows.data(), ids.size(), kDim), "child pomai_put_array");
  f->ExpectOk(pomai_freeze(db), "child pomai_freeze");
  uint64_t count = 0;
  f->ExpectOk(pomai_count(db, &count), "child pomai_count");
  f->Expect(count == ids.size(), "child count " + std::to_string(count));
  std::vector<uint64_t> out_ids(2 * 5);
  std::vector<float> out_scores(2 * 5);
  uint32_t counts[2] = {};
  f->ExpectOk(pomai_search_array(db, rows.data(), 2, kDim, 5, 0, out_ids.data(), out_scores.data(), counts),
              "child pomai_search_array");
  f->Expect(counts[0] == 5 && counts[1] == 5, "child search found " + std::to_string(counts[0]));
  f->ExpectOk(pomai_close(db), "child pomai_close of its own database");
}

TEST(U64Fork, ChildCallsOnAnInheritedHandleAnswerClosedWhileTheParentWritesOn) {
  TempDir dir;
  const std::string path = dir.file("db");
  const std::string child_path = dir.file("child");
  const pomai_options_t o = U64Options(path);
  pomai_db_t* db = nullptr;
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);
  for (uint64_t id = 0; id < 100; ++id) ASSERT_EQ(Code(PutRow(db, id)), 0);

  Writer writer([db](uint64_t id) { return PutRow(db, id); }, 1000);
  std::unique_lock<std::mutex> paused = writer.Pause();
  const std::string failures = RunInChild([&] {
    Failures f;
    for (const auto& [name, call] : pomai::testing::U64DbCalls()) f.ExpectForkClosed(call(db), name);
    f.ExpectOk(pomai_close(db), "pomai_close");
    f.ExpectForkClosed(PutRow(db, 7), "pomai_put after pomai_close");
    f.ExpectOk(pomai_close(db), "a second pomai_close");
    UseOwnU64Database(child_path, &f);
    return f.text();
  }, [&] { paused.unlock(); });
  EXPECT_EQ(failures, "");
  const std::vector<uint64_t> acked = writer.Stop();

  // The parent is unaffected: it freezes, writes on, and after a reopen
  // every row it was acknowledged is there.
  ASSERT_EQ(Code(pomai_freeze(db)), 0);
  for (uint64_t id = 100; id < 200; ++id) ASSERT_EQ(Code(PutRow(db, id)), 0);
  ASSERT_EQ(Code(pomai_close(db)), 0);
  std::string m = Message(pomai_open(&o, &db));
  ASSERT_EQ(m, "");
  uint64_t count = 0;
  ASSERT_EQ(Code(pomai_count(db, &count)), 0);
  EXPECT_EQ(count, 200 + acked.size());
  std::vector<uint64_t> expected = acked;
  for (uint64_t id = 0; id < 200; ++id) expected.push_back(id);
  size_t missing = 0;
  for (uint64_t id : expected) {
    bool exists = false;
    ASSERT_EQ(Code(pomai_exists(db, id, &exists)), 0);
    missing += exists ? 0 : 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(Code(pomai_close(db)), 0);
}

// ---- keyspace databases ---------------------------------------------------

pomai_db_options_ex_t Options(const std::string* path) {
  pomai_db_options_ex_t o;
  pomai_db_options_ex_init(&o);
  o.storage_mode = path ? POMAI_STORAGE_DISK : POMAI_STORAGE_IN_MEMORY;
  o.path = path ? path->c_str() : nullptr;
  o.fsync_policy = POMAI_FSYNC_POLICY_ALWAYS;
  o.search_threads = 4;
  return o;
}

pomai_hnsw_config_t IndexConfig() {
  pomai_hnsw_config_t c{};
  c.struct_size = sizeof(c);
  c.dim = kDim;
  c.m = 8;
  c.ef_construction = 32;
  c.metric = POMAI_METRIC_L2;
  return c;
}

// Puts key = key in a transaction of its own and commits it.
pomai_status_t* CommitKey(pomai_db_t* db, const std::string& key) {
  pomai_txn_t* t = nullptr;
  if (pomai_status_t* s = pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &t)) return s;
  if (pomai_status_t* s = pomai_txn_put(t, B(key.c_str()), key.size(), B(key.c_str()), key.size())) {
    pomai_status_free(pomai_txn_rollback(t));
    return s;
  }
  return pomai_txn_commit(t);
}

// Whether `key` holds itself, read in a transaction of its own.
bool HasKey(pomai_db_t* db, const std::string& key) {
  pomai_txn_t* t = nullptr;
  if (Code(pomai_txn_begin(db, POMAI_TXN_READ_ONLY, &t)) != 0) return false;
  char buf[64];
  size_t len = 0;
  bool found = false;
  const bool ok = Code(pomai_txn_get(t, B(key.c_str()), key.size(), reinterpret_cast<uint8_t*>(buf), sizeof buf,
                                     &len, &found)) == 0;
  pomai_status_free(pomai_txn_rollback(t));
  return ok && found && std::string(buf, len) == key;
}

// A keyspace database the child opens itself works: transactions, an index
// built and searched on its pool, a flush.
void UseOwnKvDatabase(const std::string& path, Failures* f) {
  if (!kChildMayStartThreads) return;
  const pomai_db_options_ex_t o = Options(&path);
  pomai_db_t* db = nullptr;
  f->ExpectOk(pomai_db_open_ex(&o, &db), "pomai_db_open_ex in the child");
  if (db == nullptr) return;
  const pomai_hnsw_config_t c = IndexConfig();
  f->ExpectOk(pomai_index_create(db, "idx", &c), "child pomai_index_create");
  pomai_txn_t* t = nullptr;
  f->ExpectOk(pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &t), "child pomai_txn_begin");
  for (uint64_t i = 0; i < 200 && t != nullptr; ++i) {
    const std::string key = "row" + std::to_string(i);
    const std::vector<float> v = Vec(i);
    pomai_status_t* s = pomai_txn_index_upsert(t, "idx", B(key.c_str()), key.size(), v.data(), kDim, false, nullptr, 0);
    if (s != nullptr) {
      f->ExpectOk(s, "child pomai_txn_index_upsert");
      break;
    }
  }
  f->ExpectOk(pomai_txn_commit(t), "child pomai_txn_commit");
  f->ExpectOk(CommitKey(db, "child-key"), "child commit of a key");
  f->ExpectOk(pomai_db_flush(db), "child pomai_db_flush");
  const std::vector<float> q = Vec(3);
  pomai_kv_hits_t* hits = nullptr;
  f->ExpectOk(pomai_index_search(db, "idx", q.data(), kDim, 5, 0, &hits, nullptr), "child pomai_index_search");
  f->Expect(hits != nullptr && hits->count == 5, "child index search found fewer than 5");
  pomai_kv_hits_free(hits);
  f->Expect(HasKey(db, "child-key"), "child-key is not in the child's database");
  f->ExpectOk(pomai_close(db), "child pomai_close of its own database");
}

class KeyspaceFork : public ::testing::TestWithParam<bool> {};

TEST_P(KeyspaceFork, ChildCallsOnAnInheritedHandleAndTransactionAnswerClosedWhileTheParentCommitsOn) {
  const bool disk = GetParam();
  TempDir dir;
  const std::string path = dir.file("db");
  const std::string child_path = dir.file("child");
  const pomai_db_options_ex_t o = Options(disk ? &path : nullptr);
  pomai_db_t* db = nullptr;
  ASSERT_EQ(Code(pomai_db_open_ex(&o, &db)), 0);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(Code(CommitKey(db, "k" + std::to_string(i))), 0);
  const pomai_hnsw_config_t c = IndexConfig();
  ASSERT_EQ(Code(pomai_index_create(db, "idx", &c)), 0);
  // A transaction open at the fork, with a write of its own.
  pomai_txn_t* txn = nullptr;
  ASSERT_EQ(Code(pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &txn)), 0);
  ASSERT_EQ(Code(pomai_txn_put(txn, B("pending"), 7, B("pending"), 7)), 0);

  Writer writer([db](uint64_t id) { return CommitKey(db, "w" + std::to_string(id)); }, 0);
  std::unique_lock<std::mutex> paused = writer.Pause();
  const std::string failures = RunInChild([&] {
    Failures f;
    for (const auto& [name, call] : pomai::testing::TxnCalls()) f.ExpectForkClosed(call(txn), name);
    for (const auto& [name, call] : pomai::testing::KeyspaceDbCalls()) f.ExpectForkClosed(call(db), name);
    pomai_txn_t* t = nullptr;
    f.ExpectForkClosed(pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &t), "pomai_txn_begin");
    f.Expect(t == nullptr, "pomai_txn_begin set *out_txn");
    for (const auto& [name, call] : pomai::testing::U64DbCalls()) f.ExpectForkClosed(call(db), name);
    f.ExpectOk(pomai_close(db), "pomai_close");
    f.ExpectForkClosed(pomai_txn_put(txn, B("c"), 1, B("c"), 1), "pomai_txn_put after pomai_close");
    f.ExpectOk(pomai_close(db), "a second pomai_close");
    UseOwnKvDatabase(child_path, &f);
    return f.text();
  }, [&] { paused.unlock(); });
  EXPECT_EQ(failures, "");
  const std::vector<uint64_t> acked = writer.Stop();

  // The parent's transaction from before the fork still works.
  ASSERT_EQ(Code(pomai_txn_put(txn, B("after"), 5, B("after"), 5)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(txn)), 0);
  if (disk) {
    ASSERT_EQ(Code(pomai_db_flush(db)), 0);
    ASSERT_EQ(Code(CommitKey(db, "last")), 0);
    ASSERT_EQ(Code(pomai_close(db)), 0);
    ASSERT_EQ(Message(pomai_db_open_ex(&o, &db)), "");
  } else {
    ASSERT_EQ(Code(CommitKey(db, "last")), 0);
  }
  std::vector<std::string> expected = {"pending", "after", "last"};
  for (int i = 0; i < 100; ++i) expected.push_back("k" + std::to_string(i));
  for (uint64_t id : acked) expected.push_back("w" + std::to_string(id));
  size_t missing = 0;
  for (const std::string& key : expected) missing += HasKey(db, key) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "of " << expected.size();
  pomai_hnsw_stats_t stats;
  EXPECT_EQ(Code(pomai_index_stats(db, "idx", &stats)), 0);
  EXPECT_EQ(Code(pomai_close(db)), 0);
}

INSTANTIATE_TEST_SUITE_P(StorageModes, KeyspaceFork, ::testing::Bool(), StorageModeName);

// ---- the lock, and forks of forks ------------------------------------------

// A byte over a pipe, to order the two processes.
void Signal(int fd) { WriteAll(fd, "x"); }
bool Await(int fd) {
  char c;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    return n == 1;
  }
}

TEST(Fork, TheChildOpensTheDatabaseItselfOnceTheParentHasClosedIt) {
  if (!kChildMayStartThreads) GTEST_SKIP() << "the child opens a database (see kChildMayStartThreads)";
  TempDir dir;
  const std::string path = dir.file("db");
  const pomai_options_t o = U64Options(path);
  pomai_db_t* db = nullptr;
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);
  for (uint64_t id = 0; id < 10; ++id) ASSERT_EQ(Code(PutRow(db, id)), 0);
  int to_parent[2], to_child[2];
  ASSERT_EQ(::pipe(to_parent), 0);
  ASSERT_EQ(::pipe(to_child), 0);
  const std::string failures = RunInChild(
      [&] {
        Failures f;
        pomai_db_t* own = nullptr;
        pomai_status_t* s = pomai_open(&o, &own);
        const int code = pomai_status_code(s);
        const std::string m = Message(s);
        f.Expect(code == POMAI_STATUS_IO_ERROR && m.find("another process") != std::string::npos,
                 "open while the parent holds it: code " + std::to_string(code) + " '" + m + "'");
        Signal(to_parent[1]);
        f.Expect(Await(to_child[0]), "the parent did not close");
        f.ExpectOk(pomai_open(&o, &own), "pomai_open after the parent closed");
        if (own != nullptr) {
          uint64_t count = 0;
          f.ExpectOk(pomai_count(own, &count), "pomai_count");
          f.Expect(count == 10, "the child counts " + std::to_string(count));
          f.ExpectOk(PutRow(own, 10), "the child's put");
          f.ExpectOk(pomai_close(own), "the child's close");
        }
        return f.text();
      },
      [&] {
        EXPECT_TRUE(Await(to_parent[0]));
        EXPECT_EQ(Code(pomai_close(db)), 0);
        Signal(to_child[1]);
      });
  EXPECT_EQ(failures, "");
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
  ASSERT_EQ(Message(pomai_open(&o, &db)), "");
  uint64_t count = 0;
  EXPECT_EQ(Code(pomai_count(db, &count)), 0);
  EXPECT_EQ(count, 11u);
  EXPECT_EQ(Code(pomai_close(db)), 0);
}

TEST(Fork, AGrandchildSeesTheHandlesOfEveryAncestorDead) {
  if (!kChildMayStartThreads) GTEST_SKIP() << "the children open databases (see kChildMayStartThreads)";
  const pomai_db_options_ex_t o = Options(nullptr);
  pomai_db_t* grandparents = nullptr;
  ASSERT_EQ(Code(pomai_db_open_ex(&o, &grandparents)), 0);
  const std::string failures = RunInChild([&] {
    Failures f;
    pomai_db_t* parents = nullptr;
    f.ExpectOk(pomai_db_open_ex(&o, &parents), "pomai_db_open_ex in the child");
    f.ExpectOk(CommitKey(parents, "a"), "the child's commit");
    std::string grandchild = RunInChild([&] {
      Failures g;
      g.ExpectForkClosed(CommitKey(grandparents, "b"), "commit on the grandparent's database");
      g.ExpectForkClosed(CommitKey(parents, "b"), "commit on the parent's database");
      g.ExpectOk(pomai_close(parents), "pomai_close of the parent's database");
      pomai_db_t* own = nullptr;
      g.ExpectOk(pomai_db_open_ex(&o, &own), "pomai_db_open_ex in the grandchild");
      g.ExpectOk(CommitKey(own, "c"), "the grandchild's commit");
      g.Expect(HasKey(own, "c"), "the grandchild's key is missing");
      g.ExpectOk(pomai_close(own), "the grandchild's close");
      return g.text();
    });
    f.Expect(grandchild.empty(), "in the grandchild:\n" + grandchild);
    f.ExpectOk(CommitKey(parents, "b"), "the child's commit after the grandchild");
    f.Expect(HasKey(parents, "a") && HasKey(parents, "b"), "the child's keys are missing");
    f.ExpectOk(pomai_close(parents), "the child's close");
    f.ExpectOk(pomai_close(grandparents), "pomai_close of the parent's database");
    return f.text();
  });
  EXPECT_EQ(failures, "");
  EXPECT_EQ(Code(CommitKey(grandparents, "z")), 0);
  EXPECT_TRUE(HasKey(grandparents, "z"));
  EXPECT_EQ(Code(pomai_close(grandparents)), 0);
}

// A freeze runs on another thread at the fork, holding the database's handle
// (a progress callback keeps it there), and a close waits for it: in the
// child, calls and close on that handle answer at once.
TEST(ForkRace, CallsRunningInTheParentAtTheForkDoNotStallTheChild) {
  TempDir dir;
  const std::string path = dir.file("db");
  const pomai_options_t o = U64Options(path);
  pomai_db_t* db = nullptr;
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);
  for (uint64_t id = 0; id < 300; ++id) ASSERT_EQ(Code(PutRow(db, id)), 0);

  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false;
    bool open = false;
  } gate;
  const pomai_progress_fn hold = [](uint64_t, uint64_t, void* user_data) {
    Gate& g = *static_cast<Gate*>(user_data);
    std::unique_lock<std::mutex> l(g.mu);
    g.entered = true;
    g.cv.notify_all();
    g.cv.wait(l, [&] { return g.open; });
  };
  std::thread freezer([&] { EXPECT_EQ(Code(pomai_freeze_with_progress(db, hold, &gate)), 0); });
  {
    std::unique_lock<std::mutex> l(gate.mu);
    gate.cv.wait(l, [&] { return gate.entered; });
  }
  std::thread closer([&] { EXPECT_EQ(Code(pomai_close(db)), 0); });  // waits for the freeze

  const std::string failures = RunInChild([&] {
    Failures f;
    f.ExpectForkClosed(PutRow(db, 1000), "pomai_put");
    f.ExpectForkClosed(pomai_freeze(db), "pomai_freeze");
    f.ExpectOk(pomai_close(db), "pomai_close");
    return f.text();
  });
  EXPECT_EQ(failures, "");
  {
    std::lock_guard<std::mutex> l(gate.mu);
    gate.open = true;
  }
  gate.cv.notify_all();
  freezer.join();
  closer.join();
  ASSERT_EQ(Message(pomai_open(&o, &db)), "");
  uint64_t count = 0;
  EXPECT_EQ(Code(pomai_count(db, &count)), 0);
  EXPECT_EQ(count, 300u);
  EXPECT_EQ(Code(pomai_close(db)), 0);
}

}  // namespace
