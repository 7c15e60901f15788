"""`progress=` for the C calls that take a pomai_progress_fn (pomaidb's
freeze and compact, alopex's index builds): one implementation for both
packages. It needs neither numpy nor the rest of `pomaidb`, so `alopex`
loads this file without importing `pomaidb` (see alopex/_ffi.py).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Union

__all__ = ["ProgressLike", "call_with_progress"]

ProgressLike = Union[None, bool, Callable[[int, int], None]]


def _tqdm_reporter(what: str) -> Optional[Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=0, desc=what, unit="rows")


def call_with_progress(ffi: Any, call: Callable[..., Any], args: tuple, progress: ProgressLike, what: str,
                       check: Callable[[Any], None]) -> None:
    """Runs `call(*args, fn, user_data)` and `check`s the status it returns,
    reporting progress as asked: None/False nothing; True a tqdm bar named
    `what` when tqdm is installed (`pip install 'pomai[progress]'`; nothing
    otherwise); a callable is called with (done, total). An exception the
    callable raises cannot cross into C: it is raised here after the call
    returns (after an error of the call itself, which comes first)."""
    if progress is None or progress is False:
        check(call(*args, ffi.NULL, ffi.NULL))
        return
    bar: Any = None
    if progress is True:
        bar = _tqdm_reporter(what)
        if bar is None:
            check(call(*args, ffi.NULL, ffi.NULL))
            return

        def report(done: int, total: int) -> None:
            # update() redraws at most every `mininterval` (tqdm's rate
            # limit); setting `n` and calling refresh() would redraw on
            # every callback.
            if total != bar.total:
                bar.total = total
            if done >= bar.n:
                bar.update(done - bar.n)
            else:  # a new pass over the rows
                bar.reset(total)
                bar.update(done)
    elif callable(progress):
        report = progress
    else:
        raise TypeError(f"progress must be None, a bool or a callable(done, total), got {type(progress).__name__}")

    errors: List[BaseException] = []

    def on_error(exc_type: Any, exc: Any, tb: Any) -> None:
        errors.append(exc)

    cb = ffi.callback("void(uint64_t, uint64_t, void *)",
                      lambda done, total, _user: report(int(done), int(total)), onerror=on_error)
    try:
        check(call(*args, cb, ffi.NULL))
    finally:
        if bar is not None:
            bar.close()
    if errors:
        raise errors[0]
