"""What the server knows about a file it serves, and a cache of it.

``FileInfo`` holds a regular file's identity (device, inode, size, modification
time), its validators (``ETag``, ``Last-Modified``), its media type (from the
standard library's ``mimetypes``) and, for a small file, its bytes.

``FileCache`` maps a request's path to the ``FileInfo`` found for it.  An entry
is used only while the path still leads to the same file, unchanged (same
device, inode, size and modification time), so an edited, replaced or
re-linked file is looked up afresh -- including the checks on where its real
path lies.  That costs a ``stat``, which is made when the entry was last
checked more than ``revalidate`` seconds ago (as nginx's
``open_file_cache_valid``; 0 checks on every use): a file changed on disk may
be served as it was for that long, never anything else.  Small files' bytes
are kept (within a byte budget) so that their responses go out in one send;
larger ones go out with ``sendfile`` from the disk.
"""

from __future__ import annotations

import errno
import mimetypes
import os
import stat
import time
from dataclasses import dataclass
from email.utils import formatdate

__all__ = ["FileInfo", "FileCache", "content_type", "identity", "open_regular"]

#: Files up to this size are kept in memory by the cache.
SMALL_FILE = 64 * 1024
#: Media types of compressed files (``mimetypes`` reports them as an encoding):
#: served as what they are, never as ``Content-Encoding``.
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}
_DEFAULT_TYPE = "application/octet-stream"

Identity = tuple[int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    """What tells one version of a file from another: device, inode, size, mtime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def content_type(path: str) -> str:
    """The media type of a file by its name (``application/octet-stream`` when
    unknown); a compressed file is its compressed type."""
    kind, encoding = mimetypes.guess_type(path, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, _DEFAULT_TYPE)
    return kind or _DEFAULT_TYPE


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading if it is a regular file: ``(fd, stat)``.

    O_NONBLOCK keeps a FIFO swapped in at the last moment from blocking the
    open; the check is made on the open file.  Raises ``OSError`` (``EISDIR``
    for a directory, ``ENOENT`` for anything else that is not a regular file).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


@dataclass
class FileInfo:
    """A regular file as the server answers for it (see the module doc)."""

    path: str
    ident: Identity
    size: int
    mtime: int  # seconds, as Last-Modified has them
    etag: bytes  # with its quotes
    last_modified: bytes
    content_type: bytes
    body: bytes | None = None  # the bytes of a small file
    #: The head of a whole-file answer, up to its last header line.
    head: bytes = b""
    checked: float = 0.0  # when the cache last saw it on disk (time.monotonic)

    def __post_init__(self) -> None:
        self.head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n"
            % (self.content_type, self.size, self.etag, self.last_modified)
        )
        self.checked = time.monotonic()

    @classmethod
    def of(cls, path: str, st: os.stat_result, body: bytes | None = None) -> FileInfo:
        """The info of the file at ``path`` whose stat is ``st``."""
        mtime = int(st.st_mtime)
        return cls(
            path=path,
            ident=identity(st),
            size=st.st_size,
            mtime=mtime,
            etag=b'"%x-%x"' % (st.st_mtime_ns, st.st_size),
            last_modified=formatdate(mtime, usegmt=True).encode(),
            content_type=content_type(path).encode("latin-1"),
            body=body,
        )


class FileCache:
    """Request paths -> ``FileInfo``, checked against the disk when last checked
    more than ``revalidate`` seconds ago (see the module doc).

    At most ``entries`` paths and ``budget`` bytes of small files' content; the
    oldest entries go first.
    """

    def __init__(
        self, entries: int = 4096, budget: int = 32 * 1024 * 1024, revalidate: float = 1.0
    ) -> None:
        self.entries = entries
        self.budget = budget
        self.revalidate = revalidate
        self.held = 0
        self._infos: dict[bytes, FileInfo] = {}

    def get(self, key: bytes) -> FileInfo | None:
        """The entry for ``key`` if its path still leads to the same, unchanged
        file; a stale entry is dropped."""
        info = self._infos.get(key)
        if info is None:
            return None
        now = time.monotonic()
        if now - info.checked < self.revalidate:
            return info
        try:
            st = os.stat(info.path)
        except OSError:
            st = None
        if st is not None and identity(st) == info.ident and stat.S_ISREG(st.st_mode):
            info.checked = now
            return info
        self.drop(key)
        return None

    def put(self, key: bytes, info: FileInfo) -> None:
        if self.entries <= 0:
            return
        self.drop(key)
        infos = self._infos
        size = len(info.body) if info.body is not None else 0
        if size > self.budget:
            info.body = None
            size = 0
        while infos and (len(infos) >= self.entries or self.held + size > self.budget):
            self.drop(next(iter(infos)))
        infos[key] = info
        self.held += size

    def drop(self, key: bytes) -> None:
        """Forget ``key``."""
        info = self._infos.pop(key, None)
        if info is not None and info.body is not None:
            self.held -= len(info.body)

    def clear(self) -> None:
        self._infos.clear()
        self.held = 0
