#include "util/thread_pool.h"

#include <atomic>
#include <memory>

namespace pomai {

ThreadPool::ThreadPool(size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Submit(std::function<void()> task) {
  {
    MutexLock l(&mu_);
    queue_.push_back(std::move(task));
  }
  cv_.Signal();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock l(&mu_);
      while (!stop_ && queue_.empty()) cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stop_ and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (n == 1) {
    fn(0);
    return;
  }
  struct State {
    std::atomic<size_t> next{0};
    std::atomic<size_t> done{0};
    Mutex mu;
    CondVar cv;
  };
  auto st = std::make_shared<State>();
  // Each runner claims indices until none are left; the caller is one runner.
  auto run = [st, n, &fn] {
    size_t finished = 0;
    for (size_t i; (i = st->next.fetch_add(1)) < n;) {
      fn(i);
      ++finished;
    }
    if (finished > 0 && st->done.fetch_add(finished) + finished == n) {
      MutexLock l(&st->mu);
      st->cv.SignalAll();
    }
  };
  size_t helpers = std::min(workers_.size(), n - 1);
  for (size_t h = 0; h < helpers; ++h) Submit(run);
  run();
  MutexLock l(&st->mu);
  while (st->done.load() != n) st->cv.Wait(&st->mu);
}

}  // namespace pomai
