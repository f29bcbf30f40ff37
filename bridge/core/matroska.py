# SPDX-License-Identifier: GPL-3.0-or-later
"""A Matroska (EBML) muxer for one MJPEG track: pure, bytes out, the caller writes them.

Theory of operation. A recording must stay playable however it ends, so the file is laid out
as live Matroska writers do, and every byte is final once written except a few fields patched
in place (`Patch`: an offset and the bytes that go there, never a change of length):

    EBML header
    Segment (size "unknown" in an 8-byte field; patched on a clean finish)
      Void, reserved for the SeekHead (written on a clean finish)
      Info: TimestampScale 1 ms, apps, DateUTC, a Void reserved for Duration (patched)
      Tracks: one V_MJPEG track, pixel size from the first JPEG
      Cluster (size "unknown" in an 8-byte field, patched when the next cluster starts)
        Timestamp, SimpleBlock, SimpleBlock, ...   (one cluster per CLUSTER_MS)
      ...
      Cues (one CuePoint per cluster; written on a clean finish)

A crash therefore leaves a file whose Segment and last Cluster have unknown sizes: players
read such a file up to its last whole block (live streams look the same). A clean finish adds
the Cues, Duration and SeekHead, so players show the length and seek at once.

Each frame is a SimpleBlock holding the JPEG byte for byte, keyframe flag set, stamped with
its arrival time in milliseconds (variable frame rate). Timestamps are made strictly
increasing (a frame within the same millisecond as the last is moved 1 ms later), because
muxers such as ffmpeg's refuse equal timestamps on copy.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass, field

# Element IDs (they carry their own length marker, so they are written as they are).
EBML = b"\x1a\x45\xdf\xa3"
SEGMENT = b"\x18\x53\x80\x67"
SEEKHEAD = b"\x11\x4d\x9b\x74"
SEEK = b"\x4d\xbb"
SEEK_ID = b"\x53\xab"
SEEK_POSITION = b"\x53\xac"
INFO = b"\x15\x49\xa9\x66"
TIMESTAMP_SCALE = b"\x2a\xd7\xb1"
DURATION = b"\x44\x89"
DATE_UTC = b"\x44\x61"
MUXING_APP = b"\x4d\x80"
WRITING_APP = b"\x57\x41"
TRACKS = b"\x16\x54\xae\x6b"
TRACK_ENTRY = b"\xae"
TRACK_NUMBER = b"\xd7"
TRACK_UID = b"\x73\xc5"
TRACK_TYPE = b"\x83"
FLAG_LACING = b"\x9c"
CODEC_ID = b"\x86"
VIDEO = b"\xe0"
PIXEL_WIDTH = b"\xb0"
PIXEL_HEIGHT = b"\xba"
CLUSTER = b"\x1f\x43\xb6\x75"
CLUSTER_TIMESTAMP = b"\xe7"
SIMPLE_BLOCK = b"\xa3"
CUES = b"\x1c\x53\xbb\x6b"
CUE_POINT = b"\xbb"
CUE_TIME = b"\xb3"
CUE_TRACK_POSITIONS = b"\xb7"
CUE_TRACK = b"\xf7"
CUE_CLUSTER_POSITION = b"\xf1"
VOID = b"\xec"

UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # an 8-byte size field saying "unknown"
TIMESTAMP_SCALE_NS = 1_000_000  # block timestamps in milliseconds
CLUSTER_MS = 1000  # a new cluster (and cue point) every second: the seek granularity
MAX_RELATIVE_MS = 32767  # a SimpleBlock's timestamp is a signed 16-bit offset in its cluster
SEEKHEAD_RESERVED = 96  # room for a SeekHead with three entries and a Void after it
DURATION_RESERVED = 11  # a Duration element: 2-byte ID, 1-byte size, 8-byte float
# Matroska's epoch for DateUTC (2001-01-01T00:00:00Z) as a Unix time.
MATROSKA_EPOCH_UNIX = 978307200
_DOUBLE = struct.Struct(">d")
_INT16 = struct.Struct(">h")
_INT64 = struct.Struct(">q")


def vint(n: int, length: int | None = None) -> bytes:
    """EBML variable-length size: the shortest (or `length`) form; all-ones means unknown."""
    if n < 0:
        raise ValueError("EBML sizes are not negative")
    if length is None:
        length = 1
        while n >= (1 << (7 * length)) - 1:
            length += 1
    if length > 8 or n >= (1 << (7 * length)) - 1:
        raise ValueError(f"{n} does not fit an EBML size of {length} bytes")
    return ((1 << (7 * length)) | n).to_bytes(length, "big")


def uint(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def element(eid: bytes, payload: bytes) -> bytes:
    return eid + vint(len(payload)) + payload


def void(total: int) -> bytes:
    """A Void element of exactly `total` bytes (at least 2): filler a reader skips."""
    if total < 2:
        raise ValueError("a Void element takes at least 2 bytes")
    if total - 2 < 127:
        return VOID + vint(total - 2) + bytes(total - 2)
    return VOID + vint(total - 9, 8) + bytes(total - 9)


@dataclass(frozen=True)
class Patch:
    """Bytes to put at `offset` of the file in place (the file's length does not change)."""

    offset: int
    data: bytes


@dataclass
class _State:
    offset: int = 0  # bytes the caller has written: the file's length
    cluster_at: int | None = None  # file offset of the open cluster's ID
    cluster_ms: int = 0
    last_ms: int | None = None
    cues: list[tuple[int, int]] = field(default_factory=list)  # (time ms, segment offset)


class MatroskaMuxer:
    """The bytes of one MJPEG recording; see the module docstring for the layout.

    Call `head()` once, `tracks(w, h)` before the first block, `block()` per frame (write its
    patches, then its prefix and the frame), `finish()` at the end. After a failed write, the
    caller truncates the file to `offset` as it was before the call and calls `undo()`.
    """

    def __init__(self, app: str, wall_time: float) -> None:
        self.app = app
        self.wall_time = wall_time
        self._s = _State()
        self._saved = _State()
        self._segment_data = 0  # file offset where the Segment's payload starts
        self._seekhead_at = 0
        self._duration_at = 0
        self._info_at = 0
        self._tracks_at: int | None = None
        self.frames = 0

    @property
    def offset(self) -> int:
        return self._s.offset

    @property
    def last_ms(self) -> int | None:
        return self._s.last_ms

    def _emit(self, data: bytes) -> bytes:
        self._s.offset += len(data)
        return data

    def head(self) -> bytes:
        """EBML header, Segment start, the SeekHead reservation and Info."""
        header = element(
            EBML,
            element(b"\x42\x86", uint(1))  # EBMLVersion
            + element(b"\x42\xf7", uint(1))  # EBMLReadVersion
            + element(b"\x42\xf2", uint(4))  # EBMLMaxIDLength
            + element(b"\x42\xf3", uint(8))  # EBMLMaxSizeLength
            + element(b"\x42\x82", b"matroska")  # DocType
            + element(b"\x42\x87", uint(4))  # DocTypeVersion
            + element(b"\x42\x85", uint(2)),  # DocTypeReadVersion
        )
        segment = SEGMENT + UNKNOWN_SIZE
        self._segment_data = len(header) + len(segment)
        self._seekhead_at = self._segment_data
        self._info_at = self._seekhead_at + SEEKHEAD_RESERVED
        date_ns = round((self.wall_time - MATROSKA_EPOCH_UNIX) * 1e9)
        app = self.app.encode("utf-8")
        body_start = (
            element(TIMESTAMP_SCALE, uint(TIMESTAMP_SCALE_NS))
            + element(MUXING_APP, app)
            + element(WRITING_APP, app)
            + element(DATE_UTC, _INT64.pack(date_ns))
        )
        body = body_start + void(DURATION_RESERVED)
        info = INFO + vint(len(body)) + body
        self._duration_at = self._info_at + len(info) - DURATION_RESERVED
        return self._emit(header + segment + void(SEEKHEAD_RESERVED) + info)

    def tracks(self, width: int, height: int) -> bytes:
        """The one video track: V_MJPEG, `width` x `height` (the first frame's)."""
        video = element(PIXEL_WIDTH, uint(width)) + element(PIXEL_HEIGHT, uint(height))
        entry = element(
            TRACK_ENTRY,
            element(TRACK_NUMBER, uint(1))
            + element(TRACK_UID, uint(1))
            + element(TRACK_TYPE, uint(1))  # video
            + element(FLAG_LACING, uint(0))
            + element(CODEC_ID, b"V_MJPEG")
            + element(VIDEO, video),
        )
        self._tracks_at = self._s.offset
        return self._emit(element(TRACKS, entry))

    def block(self, ms: int, size: int) -> tuple[list[Patch], bytes]:
        """Patches to apply and the bytes to write before a frame of `size` bytes at `ms`.

        `ms` is moved later when needed so timestamps strictly increase.
        """
        if self._tracks_at is None:
            raise RuntimeError("tracks() must come before the first block")
        self._saved = copy.deepcopy(self._s)
        s = self._s
        if s.last_ms is not None and ms <= s.last_ms:
            ms = s.last_ms + 1
        patches: list[Patch] = []
        prefix = b""
        if s.cluster_at is None or ms - s.cluster_ms >= CLUSTER_MS:
            patches = self._close_cluster()
            s.cluster_at = s.offset
            s.cluster_ms = ms
            s.cues.append((ms, s.offset - self._segment_data))
            prefix = CLUSTER + UNKNOWN_SIZE + element(CLUSTER_TIMESTAMP, uint(ms))
        relative = ms - s.cluster_ms
        assert 0 <= relative <= MAX_RELATIVE_MS
        prefix += SIMPLE_BLOCK + vint(4 + size) + b"\x81" + _INT16.pack(relative) + b"\x80"
        s.offset += len(prefix) + size
        s.last_ms = ms
        self.frames += 1
        return patches, prefix

    @property
    def finish_bytes(self) -> int:
        """An upper bound of len(cues()): a cue point takes at most 32 bytes."""
        return 16 + 32 * len(self._s.cues)

    def undo(self) -> None:
        """Forget the last block (its write failed and the caller cut it off again)."""
        self._s = self._saved
        self.frames -= 1

    def _close_cluster(self) -> list[Patch]:
        s = self._s
        if s.cluster_at is None:
            return []
        size = s.offset - (s.cluster_at + len(CLUSTER) + len(UNKNOWN_SIZE))
        return [Patch(s.cluster_at + len(CLUSTER), vint(size, 8))]

    def cues(self) -> bytes:
        """The Cues to append at a clean finish (one point per cluster)."""
        points = b"".join(
            element(
                CUE_POINT,
                element(CUE_TIME, uint(ms))
                + element(
                    CUE_TRACK_POSITIONS,
                    element(CUE_TRACK, uint(1)) + element(CUE_CLUSTER_POSITION, uint(pos)),
                ),
            )
            for ms, pos in self._s.cues
        )
        return element(CUES, points)

    def finish(self, duration_ms: float, cues_at: int | None) -> list[Patch]:
        """The in-place patches of a clean finish: the last cluster's size, Duration, the
        SeekHead and the Segment's size. `cues_at` is where the caller wrote `cues()` (and told
        `note_written`), or None when they could not be written."""
        end = cues_at if cues_at is not None else self._s.offset
        patches: list[Patch] = []
        if self._s.cluster_at is not None:
            payload = self._s.cluster_at + len(CLUSTER) + len(UNKNOWN_SIZE)
            patches.append(Patch(self._s.cluster_at + len(CLUSTER), vint(end - payload, 8)))
        patches.append(Patch(self._duration_at, DURATION + b"\x88" + _DOUBLE.pack(duration_ms)))
        seeks = [(INFO, self._info_at), (TRACKS, self._tracks_at)]
        if cues_at is not None:
            seeks.append((CUES, cues_at))
        entries = b"".join(
            element(
                SEEK,
                element(SEEK_ID, eid) + element(SEEK_POSITION, uint(pos - self._segment_data)),
            )
            for eid, pos in seeks
            if pos is not None
        )
        seekhead = element(SEEKHEAD, entries)
        patches.append(Patch(self._seekhead_at, seekhead + void(SEEKHEAD_RESERVED - len(seekhead))))
        segment_size = self._s.offset - self._segment_data
        patches.append(Patch(self._segment_data - 8, vint(segment_size, 8)))
        return patches

    def note_written(self, n: int) -> None:
        """The caller appended `n` bytes that the muxer did not make (the Cues)."""
        self._s.offset += n


# ---- reading back: the duration of a finished file, for the page's list -------------------


def _read_vint(data: bytes, i: int, is_id: bool) -> tuple[int, int] | None:
    """(value, next index) of the EBML number at `i`; None if cut short or invalid."""
    if i >= len(data):
        return None
    first = data[i]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > (4 if is_id else 8) or i + length > len(data):
        return None
    raw = int.from_bytes(data[i : i + length], "big")
    if is_id:
        return raw, i + length
    value = raw & ((1 << (7 * length)) - 1)
    if value == (1 << (7 * length)) - 1:
        value = -1  # unknown size
    return value, i + length


def read_duration_s(head: bytes) -> float | None:
    """The Duration in seconds that a clean finish wrote, from the file's first bytes (4 KiB is
    plenty); None when there is none (a recording cut short or still running) or `head` is not
    one of ours."""
    i = 0
    found = _read_vint(head, i, True)
    if found is None or found[0] != int.from_bytes(EBML, "big"):
        return None
    size = _read_vint(head, found[1], False)
    if size is None or size[0] < 0:
        return None
    i = size[1] + size[0]
    found = _read_vint(head, i, True)
    if found is None or found[0] != int.from_bytes(SEGMENT, "big"):
        return None
    size = _read_vint(head, found[1], False)
    if size is None:
        return None
    i = size[1]
    scale = TIMESTAMP_SCALE_NS
    while i < len(head):
        eid = _read_vint(head, i, True)
        size = eid and _read_vint(head, eid[1], False)
        if not eid or not size or size[0] < 0:
            return None
        start, end = size[1], size[1] + size[0]
        if eid[0] != int.from_bytes(INFO, "big"):
            if eid[0] == int.from_bytes(CLUSTER, "big"):
                return None
            i = end
            continue
        j, duration = start, None
        while j < min(end, len(head)):
            cid = _read_vint(head, j, True)
            csize = cid and _read_vint(head, cid[1], False)
            if not cid or not csize or csize[0] < 0 or csize[1] + csize[0] > len(head):
                return None
            payload = head[csize[1] : csize[1] + csize[0]]
            if cid[0] == int.from_bytes(TIMESTAMP_SCALE, "big"):
                scale = int.from_bytes(payload, "big")
            elif cid[0] == int.from_bytes(DURATION, "big") and len(payload) == 8:
                duration = _DOUBLE.unpack(payload)[0]
            j = csize[1] + csize[0]
        return None if duration is None else duration * scale / 1e9
    return None
