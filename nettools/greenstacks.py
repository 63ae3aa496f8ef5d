"""The stack of every greenthread, and what each one waits on.

``faulthandler`` dumps the stack of each OS thread, which shows only the
greenlet running at that moment; a hang among greenthreads needs the others
too.  ``format_greenthreads()`` lists, thread by thread, every live greenlet
with its stack and what it waits for, read off its hub and its frames:

* an fd and a direction (``fd 7 read (socket)``), from the hub's fd records;
* a timer (``sleep, due in 0.250s``, ``a timeout (Timeout), due in ...``),
  from the hub's timer heap;
* a queue, event, lock, pool or greenthread (``Queue.get on <Queue ...>``):
  the innermost frame of the kernel's own code that has a ``self``;
* its turn to run: it yielded (``sleep(0)``);
* or ``running``: the greenlet that asked for the dump -- in a signal
  handler, the code the signal interrupted (a greenthread that never yields
  shows up here).

``dump_greenthreads()`` writes that to a file (stderr by default) with plain
``os.write`` calls on its fd, so it also works inside a signal handler, where
the file object's lock may be held by the very code interrupted.
``dump_greenthreads_on_signal()`` installs it on a signal (SIGUSR2 by
default): ``kill -USR2 PID`` then shows where every greenthread is.
``nettools.debug`` offers all three.
"""

from __future__ import annotations

import gc
import os
import signal
import stat
import sys
import time
import traceback
from types import FrameType
from typing import Any

from greenlet import getcurrent, greenlet

from .kernel.hub import Hub, get_hub
from .patcher import original

__all__ = ["format_greenthreads", "dump_greenthreads", "dump_greenthreads_on_signal"]

_KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel") + os.sep
#: The fd each installed signal dumps to.
_signal_fds: dict[int, int | None] = {}


def format_greenthreads(_running: str = "running (asked for this dump)") -> str:
    """Every live greenlet of every thread, each with what it waits on and its
    stack (see the module docstring).  Idle pooled workers are only counted."""
    current = getcurrent()
    mine = _root(current)
    out = []
    by_root = _greenlets_by_root()
    for root in sorted(by_root, key=lambda r: r is not mine):
        greenlets = by_root[root]
        hub = _hub_of(greenlets)
        waits = _hub_waits(hub) if hub is not None else {}
        idle = {id(w) for w in hub.idle_workers} if hub is not None else set()
        shown = [g for g in greenlets if id(g) not in idle]
        where = "this thread" if root is mine else f"another thread (main greenlet {root!r})"
        extra = f", and {len(idle)} idle worker(s)" if idle else ""
        out.append(f"Greenthreads of {where}: {len(shown)} greenlet(s){extra}")
        shown.sort(key=lambda g: (g is not root, hub is None or g is not hub.greenlet))
        for g in shown:
            state, frame = _state(g, current, hub, waits, _running)
            out.append(f"  {_name(g, hub)}: {state}")
            if frame is not None:
                for chunk in traceback.format_stack(frame):
                    out.extend("    " + line for line in chunk.rstrip("\n").split("\n"))
    return "\n".join(out) + "\n"


def dump_greenthreads(file: Any = None, _running: str = "running (asked for this dump)") -> None:
    """Write ``format_greenthreads()`` to ``file`` (a file object or an fd;
    default ``sys.stderr``) with plain writes on its fd: safe in a signal handler."""
    if file is None:
        file = sys.stderr
    text = format_greenthreads(_running)
    _write_all(file if isinstance(file, int) else file.fileno(), text)


def dump_greenthreads_on_signal(signum: int = signal.SIGUSR2, file: Any = None) -> Any:
    """Dump every greenthread's stack to ``file`` (a file object or an fd;
    default: stderr at the time of the signal) whenever ``signum`` arrives.
    Main thread only; returns the handler it replaces."""
    _signal_fds[signum] = None if file is None else (file if isinstance(file, int)
                                                    else file.fileno())  # fmt: skip
    previous = signal.signal(signum, _on_signal)
    get_hub().wake_on_signals()  # a hub asleep in its poll takes the signal at once
    return previous


def _on_signal(signum: int, frame: FrameType | None) -> None:
    fd = _signal_fds.get(signum)
    dump_greenthreads(sys.stderr if fd is None else fd, "running (the signal came here)")


#: The dump's own frames, left out of the stack of the greenlet that asked for it.
_OWN_CODES = {format_greenthreads.__code__, dump_greenthreads.__code__, _on_signal.__code__}


# ------------------------------------------------------------- what a greenlet waits on


def _state(
    g: greenlet, current: greenlet, hub: Hub | None, waits: dict[int, list[str]], running: str
) -> tuple[str, FrameType | None]:
    """One line on what ``g`` is doing, and the frame its stack starts from."""
    if g is current:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code in _OWN_CODES:
            frame = frame.f_back
        return running, frame
    frame = g.gr_frame
    if frame is None:
        return ("running in its thread" if g else "not started yet"), None
    if hub is not None and g is hub.greenlet:
        return "the hub's loop", frame
    what = list(waits.get(id(g), ()))
    kernel = _kernel_wait(frame, getattr(g, "greenthread", None))
    if kernel is not None:
        what.append(kernel)
    if not what:
        return "waits on nothing the hub knows of (switched away by hand?)", frame
    return "waits on " + "; ".join(what), frame


def _hub_waits(hub: Hub) -> dict[int, list[str]]:
    """What the hub holds each greenlet for (by ``id``): fds, timers, its turn."""
    waits: dict[int, list[str]] = {}
    for callback in list(hub.ready):
        g = _greenlet_of(callback)
        if g is not None:
            waits.setdefault(id(g), []).append("its turn to run (it yielded)")
    for fd, st in sorted(hub.fds.items()):
        for direction, waiter in (("read", st.reader), ("write", st.writer)):
            g = _greenlet_of(waiter)
            if g is not None:
                waits.setdefault(id(g), []).append(f"fd {fd} {direction} ({_fd_kind(fd)})")
    now = time.monotonic()
    for deadline, _seq, timer in sorted(hub.timers, key=lambda e: (e[0], e[1])):
        if not timer.active:
            continue
        callback = getattr(timer.callback, "callback", timer.callback)  # debug's recording
        due = f"due in {deadline - now:.3f}s"
        g = _greenlet_of(callback)
        if g is not None:
            waits.setdefault(id(g), []).append(f"sleep, {due}")
            continue
        for arg in timer.args:
            g = _greenlet_of(arg)
            if g is not None:
                exc = next((a for a in timer.args if isinstance(a, BaseException)), None)
                name = "a timeout" if exc is None else f"a timeout ({type(exc).__name__})"
                waits.setdefault(id(g), []).append(f"{name}, {due}")
                break
    return waits


def _greenlet_of(waiter: Any) -> greenlet | None:
    """The greenlet behind what sits in a waiter slot or a timer: the greenlet,
    its bound ``switch``, or a token holding it (select's)."""
    if isinstance(waiter, greenlet):
        return waiter
    owner = getattr(waiter, "__self__", None)
    if isinstance(owner, greenlet):
        return owner
    owner = getattr(waiter, "g", None)
    return owner if isinstance(owner, greenlet) else None


def _kernel_wait(frame: FrameType | None, own: Any) -> str | None:
    """``Queue.get on <Queue ...>``: the innermost kernel frame with a ``self``
    other than the hub and the greenlet's own greenthread (a wait on a queue,
    an event, a lock, a pool, another greenthread...)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_KERNEL_DIR):
            me = frame.f_locals.get("self")
            if me is not None and me is not own and not isinstance(me, Hub):
                try:
                    shown = repr(me)
                except Exception:  # a broken repr must not stop the dump
                    shown = f"<{type(me).__name__}>"
                return f"{type(me).__name__}.{frame.f_code.co_name} on {shown}"
        frame = frame.f_back
    return None


def _fd_kind(fd: int) -> str:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "closed"
    kinds = ((stat.S_ISSOCK, "socket"), (stat.S_ISFIFO, "pipe"), (stat.S_ISREG, "file"))
    return next((name for test, name in kinds if test(mode)), "other")


# ------------------------------------------------------------- finding the greenlets


def _root(g: greenlet) -> greenlet:
    while g.parent is not None:
        g = g.parent
    return g


def _greenlets_by_root() -> dict[greenlet, list[greenlet]]:
    """Every live greenlet, by the main greenlet of its OS thread."""
    by_root: dict[greenlet, list[greenlet]] = {}
    for obj in gc.get_objects():
        # issubclass of the type: isinstance on a dead weakref.proxy raises ReferenceError.
        if issubclass(type(obj), greenlet) and not obj.dead:
            by_root.setdefault(_root(obj), []).append(obj)
    return by_root


def _hub_of(greenlets: list[greenlet]) -> Hub | None:
    """The hub whose loop runs in one of ``greenlets`` (a thread's), if any."""
    for g in greenlets:
        frame = g.gr_frame if g is not getcurrent() else sys._getframe()
        while frame is not None:
            if frame.f_code is _HUB_RUN:
                hub = frame.f_locals.get("self")
                if isinstance(hub, Hub) and hub.greenlet is g:
                    return hub
            frame = frame.f_back
    return None


_HUB_RUN = Hub.run.__code__


def _name(g: greenlet, hub: Hub | None) -> str:
    gt = getattr(g, "greenthread", None)
    if gt is not None:
        return repr(gt)
    if hub is not None and g is hub.greenlet:
        return "the hub"
    if g.parent is None:
        return "the main greenlet"
    return repr(g)


def _write_all(fd: int, text: str) -> None:
    view = memoryview(text.encode("utf-8", "replace"))
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            # A non-blocking stderr (a pipe) is full: block this thread for
            # room, as a dump asked for in a hang may.
            original("select").select([], [fd], [], 1.0)
        except InterruptedError:
            pass
