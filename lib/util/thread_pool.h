// A fixed-size pool of worker threads. Thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "util/mutex.h"

namespace pomai {

class ThreadPool {
 public:
  // `threads` 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(size_t threads);
  // Runs the queued tasks, then joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size(); }

  // Queues `task`; it runs on some worker. Tasks must not throw.
  void Submit(std::function<void()> task);

  // Runs fn(0) .. fn(n-1) on the pool and the calling thread and returns when
  // all are done. Safe to call from a worker of this pool (no deadlock: the
  // caller runs tasks itself instead of only waiting).
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

 private:
  void WorkerLoop();

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace pomai
