"""Debugging aids, under eventlet's names so their users carry over.

* ``hub_blocking_detection(True, resolution)`` -- warn (logger ``nettools.debug``)
  with the stack of any code that keeps the hub from running for longer than
  ``resolution`` seconds: a real ``time.sleep``, a CPU-bound loop, a blocking
  call that was not made green.
* ``format_hub_listeners()`` / ``format_hub_timers()`` -- what the hub of the
  calling thread is waiting for, and who is waiting; ``hub_listener_stacks`` and
  ``hub_timer_stacks`` add where each wait or timer came from.
* ``hub_exceptions(True)`` -- also print errors raised in hub callbacks and
  ``spawn_n`` greenthreads to stderr (they are always logged).
* ``tpool_exceptions(True)`` -- also log errors raised by ``tpool.execute`` jobs
  (they still propagate to the caller).
* ``spew()`` / ``unspew()`` -- print every line this thread executes.
* ``dump_greenthreads_on_signal(signal.SIGUSR2)`` -- on that signal, print the
  stack of every greenthread and what each waits on (fd and direction, timer,
  queue, event, lock); ``dump_greenthreads()`` / ``format_greenthreads()`` do
  it on the spot (``nettools.greenstacks``).

Everything here acts on the calling thread's hub.  Nothing costs anything while
switched off: no hub hook, no extra thread, no wrapper is installed.
"""

from __future__ import annotations

import _thread
import atexit
import gc
import keyword
import linecache
import logging
import os
import re
import reprlib
import sys
import traceback
import weakref
from collections.abc import Callable, Iterable
from time import monotonic
from types import FrameType, ModuleType
from typing import Any

import greenlet as _greenlet_module
from greenlet import greenlet

from .greenstacks import dump_greenthreads, dump_greenthreads_on_signal, format_greenthreads
from .kernel import tpool
from .kernel.greenthread import log_every_error
from .kernel.hub import Hub, get_hub, root_greenlet

__all__ = [
    "hub_blocking_detection",
    "format_hub_listeners",
    "format_hub_timers",
    "hub_listener_stacks",
    "hub_timer_stacks",
    "hub_exceptions",
    "hub_prevent_multiple_readers",
    "tpool_exceptions",
    "spew",
    "unspew",
    "Spew",
    "dump_greenthreads",
    "dump_greenthreads_on_signal",
    "format_greenthreads",
]

log = logging.getLogger("nettools.debug")

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Plumbing a waiting greenthread is parked in; a listing names the frame that called into it.
_KERNEL_DIR = os.path.join(_PKG_DIR, "kernel") + os.sep
_GREEN_DIR = os.path.join(_PKG_DIR, "green") + os.sep

#: Deepest stack recorded per timer by ``hub_timer_stacks``.
_MAX_RECORDED_FRAMES = 50

# ------------------------------------------------------------ blocking detection

_HUB_RUN_CODE = Hub.run.__code__


def _os_threads() -> ModuleType:
    """The real ``_thread``, also after ``monkey_patch()`` made that module green:
    a green watchdog could never run while the hub is blocked."""
    patcher = sys.modules.get("nettools.patcher")
    if patcher is not None and patcher.is_monkey_patched("_thread"):
        return patcher.original("_thread")
    return _thread


_watchdogs: weakref.WeakKeyDictionary[Hub, _Watchdog] = weakref.WeakKeyDictionary()


class _Watchdog:
    """Watches one hub from an OS thread of its own.

    The hub's thread bumps ``progress`` at the top of every loop turn (a turn
    hook) and on every greenlet switch (``greenlet.settrace``); ``hub.switches``
    counts waits.  If none of them moves for ``resolution`` seconds while the
    thread is not idle in the hub's own loop (its ``epoll.poll``), whatever runs
    there now is the culprit: log its stack, once per stretch.
    """

    def __init__(self, hub: Hub, resolution: float) -> None:
        threads = _os_threads()
        self.hub_ref = weakref.ref(hub)
        self.ident = threads.get_ident()
        self.resolution = resolution
        self.progress = 0
        #: The greenlet the hub's thread last switched to (named in reports).
        self.running: greenlet | None = None
        self._stop = threads.allocate_lock()
        self._stop.acquire()
        self._start_thread = threads.start_new_thread
        self._prev_trace: Callable | None = None

    def start(self, hub: Hub) -> None:
        hub.turn_hooks.append(self._bump)
        self._prev_trace = _greenlet_module.settrace(self._on_switch)
        # Stop before logging shuts down at exit (atexit runs last-registered
        # first), so the watchdog can never hold a handler lock logging waits for.
        atexit.register(self._halt)
        self._start_thread(self._watch, ())

    def _halt(self) -> None:
        if self._stop.locked():
            self._stop.release()

    def stop(self, hub: Hub) -> None:
        atexit.unregister(self._halt)
        self._halt()
        try:
            hub.turn_hooks.remove(self._bump)
        except ValueError:
            pass
        if _greenlet_module.gettrace() == self._on_switch:
            _greenlet_module.settrace(self._prev_trace)
        # Otherwise someone chained a trace on top of ours; it keeps forwarding.

    def _bump(self) -> None:
        self.progress += 1

    def _on_switch(self, event: str, args: Any) -> None:
        self.progress += 1
        self.running = args[1]
        prev = self._prev_trace
        if prev is not None:
            prev(event, args)

    def _watch(self) -> None:
        last: tuple[int, int] | None = None
        since = monotonic()
        reported = False
        while not self._stop.acquire(True, max(self.resolution / 4, 0.005)):
            hub = self.hub_ref()
            if hub is None:
                return
            mark = (self.progress, hub.switches)
            hub = None
            frame = sys._current_frames().get(self.ident)
            if frame is None:
                return  # the hub's thread has exited
            now = monotonic()
            if mark != last or frame.f_code is _HUB_RUN_CODE:
                last, since, reported = mark, now, False
            elif not reported and now - since >= self.resolution:
                reported = True
                self._report(frame, now - since)
            frame = None  # don't keep the running code's locals alive until the next tick

    def _report(self, frame: FrameType, elapsed: float) -> None:
        stack = "".join(traceback.format_stack(frame)).rstrip()
        running = self.running
        who = "" if running is None else f" in {_who(running)}"
        log.warning(
            "blocking detected: code%s has run for at least %.3fs without returning to "
            "the hub (resolution %gs); it is running here:\n%s",
            who,
            elapsed,
            self.resolution,
            stack,
        )


def hub_blocking_detection(state: bool = False, resolution: float = 1) -> None:
    """Warn, with a stack, about code that keeps this thread's hub from running for
    more than ``resolution`` seconds.  ``state=False`` switches it off.

    Reports go to the ``nettools.debug`` logger at WARNING, once per stretch,
    from a watchdog OS thread (no signals are used).  Call it from the hub's thread.
    """
    hub = get_hub()
    wd = _watchdogs.get(hub)
    if state:
        if resolution <= 0:
            raise ValueError("resolution must be a positive number of seconds")
        if wd is None:
            wd = _watchdogs[hub] = _Watchdog(hub, float(resolution))
            wd.start(hub)
        else:
            wd.resolution = float(resolution)
    elif wd is not None:
        del _watchdogs[hub]
        wd.stop(hub)


# ---------------------------------------------------------------- hub listings

_listener_stacks = False


def hub_listener_stacks(state: bool = False) -> None:
    """Make ``format_hub_listeners`` show the full stack of every waiting greenthread.

    A greenthread waiting on an fd is suspended inside the call that registered
    it, so its own frames are that stack: nothing has to be recorded per wait.
    """
    global _listener_stacks
    _listener_stacks = bool(state)


class _Traced:
    """A timer callback together with the stack that scheduled it."""

    __slots__ = ("callback", "stack")

    def __init__(self, callback: Callable, stack: list[tuple[str, int, str, None]]) -> None:
        self.callback = callback
        self.stack = stack

    def __call__(self, *args: Any) -> Any:
        return self.callback(*args)

    def __repr__(self) -> str:
        return repr(self.callback)


def _recording(schedule: Callable[..., Any]) -> Callable[..., Any]:
    def recording_schedule(seconds: float, callback: Callable, *args: Any) -> Any:
        stack = []
        f = sys._getframe(1)
        while f is not None and len(stack) < _MAX_RECORDED_FRAMES:
            # Source lines are looked up only when a listing is formatted.
            stack.append((f.f_code.co_filename, f.f_lineno, f.f_code.co_name, None))
            f = f.f_back
        stack.reverse()
        return schedule(seconds, _Traced(callback, stack), *args)

    return recording_schedule


_SCHEDULE_METHODS = {
    "schedule": "schedule",
    "schedule_call_global": "schedule",
    "schedule_local": "schedule_local",
    "schedule_call_local": "schedule_local",
}


def hub_timer_stacks(state: bool = False) -> None:
    """Record where each timer of this thread's hub is scheduled from, for
    ``format_hub_timers``.  Costs a short frame walk per timer while on."""
    hub = get_hub()
    if state:
        if "schedule" in vars(hub):
            return
        for name, method in _SCHEDULE_METHODS.items():
            # An instance attribute shadows the method; deleting it restores the fast one.
            setattr(hub, name, _recording(getattr(Hub, method).__get__(hub)))
    else:
        for name in _SCHEDULE_METHODS:
            vars(hub).pop(name, None)


def _waiting_greenlet(waiter: Any) -> greenlet | None:
    if isinstance(waiter, greenlet):
        return waiter
    owner = getattr(waiter, "__self__", None)  # a bound ``switch``
    if isinstance(owner, greenlet):
        return owner
    owner = getattr(waiter, "greenlet", None)
    return owner if isinstance(owner, greenlet) else None


def _is_kernel(filename: str) -> bool:
    return filename.startswith((_KERNEL_DIR, _GREEN_DIR))


def _caller_frame(g: greenlet) -> FrameType | None:
    """The frame a suspended greenlet is waiting in: its innermost frame outside
    nettools, else outside the kernel's plumbing."""
    top = g.gr_frame
    fallback = None
    f = top
    while f is not None:
        filename = f.f_code.co_filename
        if not filename.startswith(_PKG_DIR):
            return f
        if fallback is None and not _is_kernel(filename):
            fallback = f
        f = f.f_back
    return fallback or top


def _who(g: greenlet) -> str:
    gt = getattr(g, "greenthread", None)
    if gt is not None:
        return repr(gt)
    if g.parent is None:
        return "<main greenlet>"
    return repr(g)


def _describe_greenlet(g: greenlet) -> str:
    text = _who(g)
    if g.dead:
        return text + " (dead)"
    f = _caller_frame(g)
    if f is not None:
        text += f" at {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"
    return text


def _describe_waiter(waiter: Any) -> str:
    g = _waiting_greenlet(waiter)
    return repr(waiter) if g is None else _describe_greenlet(g)


def _stack_lines(lines: Iterable[str], indent: str = "    ") -> list[str]:
    out = []
    for chunk in lines:
        out.extend(indent + line for line in chunk.rstrip("\n").split("\n"))
    return out


def format_hub_listeners(hub: Hub | None = None) -> str:
    """The fds this thread's hub watches for someone, and who waits on each."""
    hub = hub or get_hub()
    lines = []
    count = 0
    for fd, st in sorted(hub.fds.items()):
        for direction, waiter in (("read", st.reader), ("write", st.writer)):
            if waiter is None:
                continue
            count += 1
            lines.append(f"fd {fd} {direction}: {_describe_waiter(waiter)}")
            if _listener_stacks or hub.debug_listeners:
                g = _waiting_greenlet(waiter)
                if g is not None and g.gr_frame is not None:
                    lines.extend(_stack_lines(traceback.format_stack(g.gr_frame)))
    if not lines:
        return "no listeners: nothing waits on a file descriptor"
    return f"{count} listener(s):\n" + "\n".join(lines)


def _describe_callback(callback: Callable, args: tuple) -> str:
    g = _waiting_greenlet(callback) if getattr(callback, "__name__", "") == "switch" else None
    if g is not None:
        return f"wake {_describe_greenlet(g)}"
    name = getattr(callback, "__qualname__", None) or repr(callback)
    shown = ", ".join(
        _describe_greenlet(a) if isinstance(a, greenlet) else reprlib.repr(a) for a in args
    )
    return f"{name}({shown})"


def format_hub_timers(hub: Hub | None = None) -> str:
    """The pending timers of this thread's hub, soonest first: when each is due
    and what it will call."""
    hub = hub or get_hub()
    now = monotonic()
    entries = sorted(
        ((deadline, seq, t) for deadline, seq, t in list(hub.timers) if t.active),
        key=lambda e: (e[0], e[1]),
    )
    if not entries:
        return "no pending timers"
    lines = [f"{len(entries)} pending timer(s):"]
    for deadline, _seq, t in entries:
        callback, stack = t.callback, None
        if isinstance(callback, _Traced):
            callback, stack = callback.callback, callback.stack
        lines.append(f"due in {deadline - now:.3f}s: {_describe_callback(callback, t.args)}")
        if stack:
            lines.append("    scheduled at:")
            lines.extend(_stack_lines(traceback.StackSummary.from_list(stack).format(), "      "))
    return "\n".join(lines)


# ------------------------------------------------------------ error reporting


class _StderrHandler(logging.Handler):
    """Prints records that carry a traceback to whatever ``sys.stderr`` is now."""

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info:
            return
        try:
            stream = sys.stderr
            if stream is not None:
                stream.write(self.format(record) + "\n")
                stream.flush()
        except Exception:
            self.handleError(record)


_hub_exception_handler = _StderrHandler(logging.ERROR)
_hub_exception_handler.setFormatter(logging.Formatter("nettools: %(message)s"))
# The hub logs callback errors here; spawn_n greenthreads and links log there.
_HUB_LOGGERS = ("nettools.hub", "nettools.greenthread")


def hub_prevent_multiple_readers(state: bool = True) -> None:
    """eventlet's switch for two greenthreads waiting to read (or write) one fd.

    nettools always prevents it: the second one gets ``ConcurrentWaitError``
    at once (a ``RuntimeError``), since two readers of one socket would each
    get an unpredictable part of the stream.  ``state=False`` is refused.
    """
    if not state:
        raise ValueError(
            "nettools never lets two greenthreads wait on one fd in the same direction; "
            "give the socket one reader (and pass data on with a Queue)"
        )


def hub_exceptions(state: bool = True) -> None:
    """Also print errors raised in hub callbacks and greenthreads to stderr,
    with their traceback, as eventlet does.  Errors of hub callbacks and
    ``spawn_n`` greenthreads are always logged either way; those of ``spawn``
    greenthreads (which ``wait()`` raises) only while this is on."""
    log_every_error(state)
    for name in _HUB_LOGGERS:
        logger = logging.getLogger(name)
        if state:
            if _hub_exception_handler not in logger.handlers:
                logger.addHandler(_hub_exception_handler)
        else:
            logger.removeHandler(_hub_exception_handler)


_tpool_log = logging.getLogger("nettools.tpool")


class _LoggingList(list):
    """Stands in for ``tpool``'s exception log: logs each entry instead of keeping it."""

    def append(self, exc_info: Any) -> None:
        _tpool_log.error("error in a tpool job (also raised to its caller)", exc_info=exc_info)


def tpool_exceptions(state: bool = False) -> None:
    """Also log (``nettools.tpool``, ERROR, with traceback) every exception raised by a
    ``tpool.execute`` job; it still propagates to the caller as usual."""
    tpool._Pool.exception_log = _LoggingList() if state else None


# ------------------------------------------------------------------- spew

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING = object()


class Spew:
    """A ``sys.settrace`` function that prints each executed line as
    ``file:line: source``; with ``show_values``, also the values of the names in it.

    ``trace_names``: module names (``__name__``) to trace; ``None`` traces all.
    """

    def __init__(self, trace_names: Iterable[str] | None = None, show_values: bool = True) -> None:
        self.trace_names = None if trace_names is None else frozenset(trace_names)
        self.show_values = show_values
        self._repr = reprlib.Repr()
        self._repr.maxstring = self._repr.maxother = 60

    def wanted(self, frame: FrameType) -> bool:
        names = self.trace_names
        return names is None or frame.f_globals.get("__name__") in names

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Spew | None:
        if event == "call":
            return self if self.wanted(frame) else None
        if event == "line" and self.wanted(frame):  # a frame traced by another's say-so
            self._print_line(frame)
        return self

    def _print_line(self, frame: FrameType) -> None:
        filename = frame.f_code.co_filename
        lineno = frame.f_lineno
        source = linecache.getline(filename, lineno, frame.f_globals).strip()
        out = [f"{filename}:{lineno}: {source}"]
        if self.show_values and source:
            seen = set()
            for name in _NAME.findall(source):
                if name in seen or keyword.iskeyword(name):
                    continue
                seen.add(name)
                value = frame.f_locals.get(name, _MISSING)
                if value is _MISSING:
                    value = frame.f_globals.get(name, _MISSING)
                if value is _MISSING or callable(value) or isinstance(value, ModuleType):
                    continue
                try:
                    shown = self._repr.repr(value)
                except Exception as exc:  # a broken __repr__ must not stop the trace
                    shown = f"<repr failed: {exc!r}>"
                out.append(f"    {name} = {shown}")
        stream = sys.stdout
        if stream is not None:
            stream.write("\n".join(out) + "\n")


_spew_previous: list[Any] = []


def _thread_frames() -> Iterable[FrameType]:
    """Frames of this thread that are already running or suspended: the caller's
    stack and the stacks of this thread's suspended greenlets."""
    f = sys._getframe(2)
    while f is not None:
        yield f
        f = f.f_back
    cur = _greenlet_module.getcurrent()
    root = root_greenlet()
    for obj in gc.get_objects():
        # issubclass of the type: isinstance on a dead weakref.proxy raises ReferenceError.
        if not issubclass(type(obj), greenlet) or obj is cur or obj.gr_frame is None:
            continue
        top = obj
        while top.parent is not None:
            top = top.parent
        if top is not root:
            continue  # another thread's greenlet
        f = obj.gr_frame
        while f is not None:
            yield f
            f = f.f_back


def spew(trace_names: Iterable[str] | None = None, show_values: bool = False) -> None:
    """Print every line this thread executes from now on, in every greenthread,
    until ``unspew()``.  ``trace_names`` limits it to those modules."""
    tracer = Spew(trace_names, show_values)
    _spew_previous.append(sys.gettrace())
    # New frames get the tracer from their 'call' event; frames already running or
    # parked in a greenthread never see one, so hand it to them directly.
    for f in _thread_frames():
        if tracer.wanted(f):
            f.f_trace = tracer
    sys.settrace(tracer)


def unspew() -> None:
    """Stop ``spew()``; a tracer that was active before it (a debugger, coverage) is restored."""
    previous = _spew_previous.pop() if _spew_previous else None
    sys.settrace(previous)
    # Left on a frame, our tracer would keep printing for a tracer set later on.
    for f in _thread_frames():
        if isinstance(f.f_trace, Spew):
            f.f_trace = None
