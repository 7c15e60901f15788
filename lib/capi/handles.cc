// The fork() handlers of the handle tables (see handles.h).
#include "capi/handles.h"

#include <pthread.h>
#include <unistd.h>

namespace pomai::capi {
namespace {

void BeforeFork() {
  DbTable::Get().BeforeFork();
  TxnTable::Get().BeforeFork();
}

void AfterForkInParent() {
  TxnTable::Get().AfterForkInParent();
  DbTable::Get().AfterForkInParent();
}

void AfterForkInChild() {
  const ProcessId parent = g_this_process.load();
  g_this_process.store(ProcessId{parent.fork_epoch + 1, static_cast<int32_t>(::getpid())});
  TxnTable::Get().AfterForkInChild();
  DbTable::Get().AfterForkInChild();
}

// Registers the handlers when the library is loaded, before any handle exists.
struct ForkHandlers {
  ForkHandlers() {
    g_this_process.store(ProcessId{0, static_cast<int32_t>(::getpid())});
    ::pthread_atfork(BeforeFork, AfterForkInParent, AfterForkInChild);
  }
} fork_handlers;

}  // namespace
}  // namespace pomai::capi
