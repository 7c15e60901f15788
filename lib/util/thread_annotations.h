// Clang thread-safety annotations (-Wthread-safety). Every engine lock is a
// util/mutex.h type; a member it guards says GUARDED_BY(lock), a function
// that needs it REQUIRES(lock) or REQUIRES_SHARED(lock). Other compilers see
// nothing: the checks run in the clang build of scripts/test.sh, where
// meson.build turns the warnings into errors.
#pragma once

#if defined(__clang__)
#define POMAI_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define POMAI_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) POMAI_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY POMAI_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) POMAI_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) POMAI_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) POMAI_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) POMAI_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) POMAI_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) POMAI_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) POMAI_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) POMAI_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) POMAI_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) POMAI_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) POMAI_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) POMAI_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) POMAI_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) POMAI_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) POMAI_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS POMAI_THREAD_ANNOTATION(no_thread_safety_analysis)
