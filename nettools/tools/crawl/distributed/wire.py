"""The distributed crawl's wire format (version 1), and its encoding and decoding.

A ROUTER socket at the coordinator (binds), a DEALER per worker (connects).
A message is two frames, a kind (ASCII) and a JSON object (UTF-8), plus a
third frame with the raw body for results that carry one.  No message may
exceed ``max_message`` bytes (a larger one is dropped and counted by its
receiver, ``nettools.tools.plumbing.sizecap``; a worker whose result would be
larger reports an error for that job instead).

Worker to coordinator:

``hello``   ``v`` (1), ``name``, ``session`` (random, new for each joining),
            ``credit`` (free slots): join; repeated until welcomed
``result``  ``run``, ``id``, ``ask`` (slots handed back, 1; 0 while
            draining), then either ``error``: ``{"kind", "message"}`` (no
            response: a ``FetchError``), or ``status``, ``final_url``,
            ``content_type``, ``size``, ``truncated``, ``elapsed``,
            ``headers`` (Location, Retry-After), ``links`` (``[[key,
            fragment], ...]`` or null), ``anchors`` (list or null), ``body``
            (true: the third frame is the body)
``beat``    ``jobs``: the ids of the jobs it is working on (renews their leases)
``drain``   take no more jobs from this worker (it is stopping)
``bye``     the worker leaves; jobs still leased to it are re-issued at once

Coordinator to worker:

``welcome`` ``v``, ``run`` (random, new for each crawl), ``heartbeat``,
            ``lease``, ``fetch`` (``user_agent``, ``timeout``, ``max_body``,
            ``per_host``: the worker's HttpClient settings)
``job``     ``run``, ``id``, ``method``, ``url`` (the normalised key),
            ``follow`` (follow redirects), ``max_body`` (or null), ``links``,
            ``anchors``, ``body`` (what to send back; see ``Fetcher.fetch``)
``beat``    ``{}``: the coordinator is alive (every heartbeat)
``drained`` no job will follow (the answer to ``drain``)
``reset``   "who are you?": sent to a sender the coordinator does not know
            (it restarted, or dropped the worker); the worker says hello again
``done``    the crawl is over, or the answer to ``bye``: the worker exits
            (``nettools crawl-worker`` exits 0); it answers ``bye``, which the
            coordinator waits for (``CLOSE_WAIT`` at most) before closing

Messages of an unknown kind, or malformed ones, are counted and ignored.
Results of another ``run`` (a coordinator that restarted) are ignored.  Anyone
who can reach the coordinator's endpoint can join or answer jobs: run it on a
trusted network.
"""

from __future__ import annotations

import json

from yarl import URL

from ....web.client import FetchError
from ..fetcher import Fetched

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE",
    "MalformedMessage",
    "encode",
    "decode",
    "error_fields",
    "result_fields",
    "result_outcome",
]

PROTOCOL_VERSION = 1
#: Default cap on one message (a result carries a page's links, or a sitemap's body).
MAX_MESSAGE = 64 * 2**20


class MalformedMessage(ValueError):
    """A message that does not follow the wire format."""


def encode(kind: bytes, obj: dict, body: bytes | None = None) -> list[bytes]:
    """The frames of a message: its kind, ``obj`` as JSON and, if given, the body."""
    frames = [kind, json.dumps(obj, separators=(",", ":")).encode()]
    if body is not None:
        frames.append(body)
    return frames


def decode(frames: list[bytes], first: int = 0) -> tuple[bytes, dict, bytes | None]:
    """``(kind, obj, body or None)`` of the message in ``frames[first:]`` (a ROUTER
    puts the sender's identity first); ``MalformedMessage`` if it is not one."""
    rest = frames[first:]
    if len(rest) not in (2, 3):
        raise MalformedMessage(f"{len(rest)} frames")
    try:
        obj = json.loads(rest[1])
    except ValueError as exc:
        raise MalformedMessage(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage("not a JSON object")
    return bytes(rest[0]), obj, (bytes(rest[2]) if len(rest) == 3 else None)


def error_fields(kind: str, message: str) -> dict:
    """The fields of a result that carries no response (a ``FetchError``'s)."""
    return {"error": {"kind": kind, "message": message}}


def result_fields(got: Fetched) -> tuple[dict, bytes | None]:
    """The fields of a result that carries the response ``got``, and its body frame."""
    answer = {
        "status": got.status, "final_url": got.final_url, "content_type": got.content_type,
        "size": got.size, "truncated": got.truncated, "elapsed": round(got.elapsed, 6),
        "headers": dict(got.headers), "body": got.body is not None,
        "links": None if got.links is None else [[k, f] for k, _, f in got.links],
        "anchors": None if got.anchors is None else sorted(got.anchors),
    }  # fmt: skip
    return answer, got.body


def result_outcome(url: str, obj: dict, body: bytes | None) -> Fetched | FetchError:
    """A worker's result for ``url`` as the engine takes it."""
    error = obj.get("error")
    if error is not None:
        return FetchError(url, str(error["kind"]), str(error["message"]))
    links = obj.get("links")
    anchors = obj.get("anchors")
    return Fetched(
        status=int(obj["status"]),
        final_url=str(obj["final_url"]),
        content_type=str(obj["content_type"]),
        size=int(obj["size"]),
        truncated=bool(obj["truncated"]),
        elapsed=float(obj["elapsed"]),
        headers={str(k): str(v) for k, v in obj["headers"].items()},
        body=body if obj.get("body") else None,
        links=None if links is None else [(k, URL(k, encoded=True), f) for k, f in links],
        anchors=None if anchors is None else set(anchors),
    )
