# SPDX-License-Identifier: GPL-3.0-or-later
"""One recording file: the muxer's bytes (bridge.core.matroska) written to disk so that the file
is playable at every moment.

Frames go out with one unbuffered ``writev`` each (the block header and the JPEG, no copy), so a
SIGKILL loses nothing already handed to the kernel; the data is flushed to the disk
(``fdatasync``) once per cluster, so a power cut loses at most the last second or two. A write
that fails (a full disk) is cut off again with ``ftruncate``, and the file is finished without
it: it ends on a whole frame and stays playable.
"""

from __future__ import annotations

import contextlib
import errno
import os

from bridge.capture.names import with_number
from bridge.core.jpeg import jpeg_dimensions
from bridge.core.matroska import MatroskaMuxer, Patch

# Clashing names get -1 .. -MAX_SUFFIX (two recordings started within one second).
MAX_SUFFIX = 99


def _write_all(fd: int, parts: list[bytes]) -> None:
    total = sum(len(p) for p in parts)
    done = os.writev(fd, parts)
    if done == total:
        return
    rest = memoryview(b"".join(parts))[done:]
    while rest:
        n = os.write(fd, rest)
        rest = rest[n:]


class MkvFile:
    """An open recording: `add` frames, then `finish` (or `abandon` after a crash-like end)."""

    def __init__(self, fd: int, path: str, app: str, wall_time: float) -> None:
        self.fd: int | None = fd
        self.path = path
        self.mux = MatroskaMuxer(app, wall_time)
        self.first_ms: int | None = None
        self.size: tuple[int, int] | None = None
        self.skipped = 0  # frames without a readable JPEG header before the first good one
        _write_all(fd, [self.mux.head()])

    @classmethod
    def create(cls, directory: str, name: str, app: str, wall_time: float) -> MkvFile:
        """A new file `name` in `directory` (never overwriting: a clash gets -N); OSError."""
        os.makedirs(directory, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        for n in range(MAX_SUFFIX + 1):
            candidate = name if n == 0 else with_number(name, n)
            path = os.path.join(directory, candidate)
            try:
                fd = os.open(path, flags, 0o666)
            except FileExistsError:
                continue
            try:
                return cls(fd, path, app, wall_time)
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
        raise OSError(errno.EEXIST, f"{MAX_SUFFIX} recordings named {name} exist already")

    @property
    def frames(self) -> int:
        return self.mux.frames

    @property
    def length(self) -> int:
        return self.mux.offset

    @property
    def finish_bytes(self) -> int:
        """At most what `finish` appends (the Cues): a size limit keeps room for it."""
        return self.mux.finish_bytes

    def add(self, data: bytes, ms: int) -> bool:
        """Append one frame at `ms` (from the recording's start); False if it has no readable
        JPEG header and no track exists yet. OSError after cutting a partial write off."""
        assert self.fd is not None
        before = self.mux.offset
        if self.size is None:
            size = jpeg_dimensions(data)
            if size is None:
                self.skipped += 1
                return False
            self.size = size
            self._write([self.mux.tracks(*size)], before)
            before = self.mux.offset
        patches, prefix = self.mux.block(ms, len(data))
        try:
            self._patch(patches)
            if patches:  # a cluster closed: one second of frames goes to the disk
                os.fdatasync(self.fd)
            _write_all(self.fd, [prefix, data])
        except OSError:
            self._cut(before)
            self.mux.undo()
            raise
        return True

    def _write(self, parts: list[bytes], before: int) -> None:
        assert self.fd is not None
        try:
            _write_all(self.fd, parts)
        except OSError:
            self._cut(before)
            raise

    def _cut(self, length: int) -> None:
        assert self.fd is not None
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, length)

    def _patch(self, patches: list[Patch]) -> None:
        assert self.fd is not None
        for p in patches:
            if os.pwrite(self.fd, p.data, p.offset) != len(p.data):
                raise OSError(errno.EIO, "short write while finishing the recording")

    def finish(self, duration_ms: float) -> None:
        """Cues, Duration, SeekHead and sizes, then to the disk and closed. The Cues are left
        out when the disk has no room for them (the file still plays; seeking scans)."""
        fd = self.fd
        assert fd is not None
        try:
            cues_at: int | None = self.mux.offset
            cues = self.mux.cues()
            try:
                _write_all(fd, [cues])
                self.mux.note_written(len(cues))
            except OSError:
                self._cut(self.mux.offset)
                cues_at = None
            self._patch(self.mux.finish(duration_ms, cues_at))
            os.fsync(fd)
        finally:
            self.close()

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def remove(self) -> None:
        """Close and delete (a recording that never got a frame is no video)."""
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
