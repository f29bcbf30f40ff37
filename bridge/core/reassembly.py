# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame reassembly: stream datagrams in, whole JPEG frames out. Pure, no I/O, no clock.

Theory of operation
===================

Fragments and placement
    The device cuts each JPEG into fragments of one fixed payload size (the *stride*) plus a
    shorter last one, flagged END. So fragment ``i`` always starts at byte ``i * stride``, and
    the stride is known from the first fragment of a frame that arrives, whichever it is: a START
    or MIDDLE fragment carries exactly ``stride`` bytes, and an END fragment at index ``e`` gives
    ``(total - size) / e``. Each fragment is copied once, straight from the datagram into a
    per-slot ``bytearray`` sized from the header's total frame size; slots and their buffers are
    reused. A byte array of "have" flags per index makes duplicates free to detect (the first copy
    wins). A frame is complete when the END index ``e`` is known, all indices ``0..e`` are
    present and the byte count equals the declared total. Any fragment that contradicts the
    frame's geometry (a different stride, a second END, data past the end) marks the frame corrupt.
    A complete frame must start with SOI ``FF D8`` and end with EOI ``FF D9``, else it is corrupt.
    Corrupt frames are counted and dropped, never returned.

Ordering across the 8-bit frame id
    Frame ids wrap at 256, so each id is turned into an unbounded sequence number: the id's signed
    8-bit distance from the newest frame seen (the *head*) added to the head's sequence. Within
    +-127 frames (4 s at 30 fps) this is exact. A fragment whose sequence is at or below the last
    emitted frame is never assembled again: it is counted as a duplicate if that frame was emitted
    (or completed as corrupt), else rejected as ``late``. If nothing but stale fragments arrives
    for longer than the expiry, and they belong to at least ``RESYNC_FRAMES`` different frame ids,
    the device has restarted its ids behind ours (a reboot, or a stream resumed after a long
    pause): the window *resyncs*, drops all state and starts afresh with the next fragment. That
    starts a new id epoch; "never older than emitted" holds within an epoch. The id count keeps a
    few very late stragglers from an old stream from passing for a restart.

Stream order and the hold policy
    Frames are returned in sequence order and a frame older than one already returned is never
    returned. When frame N+1 completes while N is still missing fragments, N+1 is *held*: N may
    only be late (reordering), and showing N then N+1 keeps motion smooth. The hold is bounded,
    because N may also be lost: as soon as ``max_held`` (default 2) newer frames are complete
    and waiting, N is given up (counted incomplete) and the held frames are released in order.
    At 30 fps that costs at most one extra frame interval (33 ms) of latency on a lost fragment,
    and none on clean or merely reordered traffic, where N completes before N+2 does. The other
    choice, emitting N+1 at once and dropping N when it completes late, has no added latency but
    throws away every frame that was merely reordered; for a viewer that is visible stutter.
    An incomplete frame older than ``expiry_s`` (1 s, as in the reference client) is dropped by
    :meth:`Reassembler.expire` or when the next frame starts, whichever comes first.

Bounds
    Declared frame sizes above ``max_frame_bytes`` (8 MiB) are rejected before any allocation; at
    most ``max_in_flight`` frames are assembled at once (a new frame evicts the oldest, counted
    incomplete; a fragment older than a full window is rejected ``window_full``); the index flags
    are capped at 65536 entries by the 16-bit index. So the memory held is at most
    ``max_in_flight * (max_frame_bytes + 65536)`` plus the held frames' copies, whatever arrives.

Counters
    ``packets`` every datagram fed; ``fragments`` those with a valid header (including duplicates
    and late ones); ``frames`` returned; ``incomplete`` given up (expired, evicted or overtaken);
    ``corrupt`` dropped as malformed; ``duplicates`` repeated fragments; ``rejected`` by reason.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.core.protocol import (
    FLAG_END,
    FLAG_MIDDLE,
    FLAG_START,
    FRAGMENT_HEADER,
    FRAGMENT_HEADER_LEN,
    FRAGMENT_MAGIC,
    FRAGMENT_VERSION,
    MAX_FRAGMENT_INDEX,
    Reject,
    unpack_fragment,
)

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 8 * 1024 * 1024  # largest declared JPEG we allocate for; 1080p q95 is ~1 MiB
MAX_IN_FLIGHT = 4  # frames assembled at once; reordering on a USB link spans 1-2 frames
MAX_HELD_FRAMES = 2  # complete frames waiting on an older one before that one is given up
FRAME_EXPIRY_S = 1.0  # an incomplete frame older than this is dropped (reference client: 1 s)
RESYNC_FRAMES = 8  # distinct stale frame ids, over more than the expiry, that mean a restart
DEAD_MEMORY = 64  # dropped frames remembered, to count their stragglers instead of restarting them
_EMITTED_BITS = 64  # emitted frames remembered as a bit mask behind the last one
_EMITTED_MASK = (1 << _EMITTED_BITS) - 1
_MAX_FLAGS = MAX_FRAGMENT_INDEX + 1

_ASSEMBLING = 0
_COMPLETE = 1

_NOTHING: tuple[Frame, ...] = ()


def flat_view(datagram: object) -> memoryview | None:
    """A flat byte view of anything that is not bytes (so that slicing counts bytes), or None
    when it cannot be one: the slow path, for odd inputs only."""
    try:
        view = memoryview(datagram)  # type: ignore[arg-type]
        if view.ndim != 1 or view.itemsize != 1 or not view.c_contiguous:
            view = memoryview(view.tobytes())
    except (TypeError, ValueError, BufferError):
        return None
    return view


_HEADER_UNPACK = FRAGMENT_HEADER.unpack_from


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete, well-formed JPEG; ``completed_at`` is the ``now`` of its last fragment."""

    frame_id: int
    data: bytes
    completed_at: float


@dataclass(slots=True)
class ReassemblyStats:
    """Counters; see the module docstring for what each one means."""

    packets: int = 0
    fragments: int = 0
    frames: int = 0
    incomplete: int = 0
    corrupt: int = 0
    duplicates: int = 0
    resyncs: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "fragments": self.fragments,
            "frames": self.frames,
            "incomplete": self.incomplete,
            "corrupt": self.corrupt,
            "duplicates": self.duplicates,
            "resyncs": self.resyncs,
            "rejected": dict(self.rejected),
        }


class _Slot:
    """One frame in flight. Reused: the buffers survive from frame to frame."""

    __slots__ = (
        "buf",
        "count",
        "end",
        "flip",
        "frame",
        "frame_id",
        "have",
        "nbytes",
        "seq",
        "started",
        "state",
        "stride",
        "top",
        "total",
    )

    def __init__(self) -> None:
        self.buf = bytearray()
        self.have = bytearray()
        self.frame: Frame | None = None
        self.seq = 0
        self.frame_id = 0
        self.total = 0
        self.stride = 0
        self.end = -1
        self.count = 0
        self.nbytes = 0
        self.top = 0  # 1 + highest index seen: the part of `have` to clear on reuse
        self.started = 0.0
        self.state = _ASSEMBLING
        self.flip = -1  # a byte the device inverted (framing B), undone on completion

    def reset(self, seq: int, frame_id: int, total: int, now: float, flip: int = -1) -> None:
        if self.top:
            self.have[: self.top] = bytes(self.top)
        if len(self.buf) < total:
            self.buf = bytearray(total)
        self.frame = None
        self.seq = seq
        self.frame_id = frame_id
        self.total = total
        self.stride = 0
        self.end = -1
        self.count = 0
        self.nbytes = 0
        self.top = 0
        self.started = now
        self.state = _ASSEMBLING
        self.flip = flip


class Reassembler:
    """Turns stream datagrams into complete frames in stream order; see the module docstring."""

    def __init__(
        self,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
        expiry_s: float = FRAME_EXPIRY_S,
        max_held: int = MAX_HELD_FRAMES,
    ) -> None:
        if max_frame_bytes < 4 or max_in_flight < 1 or expiry_s <= 0 or max_held < 1:
            raise ValueError("reassembler limits must be positive (frames need at least 4 bytes)")
        self.max_frame_bytes = max_frame_bytes
        self.max_in_flight = max_in_flight
        self.expiry_s = expiry_s
        self.max_held = max_held
        self.stats = ReassemblyStats()
        self._free = [_Slot() for _ in range(max_in_flight)]
        self._all = list(self._free)
        self._live: list[_Slot] = []  # in sequence order, oldest first
        self._by_id: list[_Slot | None] = [None] * 256
        self._head: int | None = None  # sequence of the newest frame started
        self._last: int | None = None  # sequence of the last frame returned
        self._emitted = 0  # bit k set: frame `_last - k` was returned
        self._dead: dict[int, tuple[bool, float]] = {}  # seq -> (all fragments seen, when)
        self._progress = 0.0  # `now` of the last frame returned (or of a resync)
        self._stale_ids = 0  # bit per frame id seen stale since then: evidence of a restart

    # ------------------------------------------------------------------ public

    @property
    def in_flight(self) -> int:
        """Frames currently being assembled or held."""
        return len(self._live)

    @property
    def buffer_bytes(self) -> int:
        """Bytes held by slot buffers and held frames: what the memory bound is about."""
        total = 0
        for slot in self._all:
            total += len(slot.buf) + len(slot.have)
            if slot.frame is not None:
                total += len(slot.frame.data)
        return total

    @property
    def memory_bound(self) -> int:
        """The most :attr:`buffer_bytes` can ever reach with these limits."""
        return self.max_in_flight * (2 * self.max_frame_bytes + _MAX_FLAGS)

    def feed(
        self, datagram: bytes | bytearray | memoryview, now: float, length: int | None = None
    ) -> Sequence[Frame]:
        """Take one stream datagram; return the frames it completes or releases, oldest first.

        ``length`` is the byte count of a ``recv_into`` buffer that may be longer than the datagram.
        Usually returns an empty tuple. Never raises on any input.
        """
        stats = self.stats
        stats.packets += 1
        kind = type(datagram)
        if kind is not bytes and kind is not bytearray:
            view = flat_view(datagram)  # odd inputs: the slow path, rejected with a reason
            if view is None:
                self._reject(Reject.NOT_BYTES)
                return _NOTHING
            datagram = view
        # Fast path: the header checks of protocol.unpack_fragment, inlined. Whatever fails
        # them goes through unpack_fragment itself, which names the reason.
        n = len(datagram)
        if length is not None:
            if type(length) is not int or length < 0:
                self._reject(Reject.NOT_BYTES)
                return _NOTHING
            if length < n:
                n = length
        try:
            magic, flag, version, frame_id, total, index, size = _HEADER_UNPACK(datagram)
        except (struct.error, TypeError, ValueError):
            magic = -1
        if not (
            magic == FRAGMENT_MAGIC
            and version == FRAGMENT_VERSION
            and total
            and n - FRAGMENT_HEADER_LEN == size
            and (
                (flag == FLAG_MIDDLE and index)
                or flag == FLAG_END
                or (flag == FLAG_START and not index)
            )
        ):
            r = unpack_fragment(datagram, length)
            if type(r) is not tuple:
                self._reject(r)  # type: ignore[arg-type]
                return _NOTHING
            flag, frame_id, total, index, size = r
        return self.fragment(flag, frame_id, total, index, size, datagram, FRAGMENT_HEADER_LEN, now)

    def fragment(
        self,
        flag: int,
        frame_id: int,
        total: int,
        index: int,
        size: int,
        datagram: bytes | bytearray | memoryview,
        start: int,
        now: float,
        flip: int = -1,
    ) -> Sequence[Frame]:
        """Place one fragment whose header a framing module has already checked.

        ``flag``/``index`` are in framing A's terms (START/MIDDLE/END, 0-based), ``frame_id`` is
        8 bits, the payload is ``datagram[start:start + size]``, and ``flip`` is the position of
        a byte the device inverted (-1: none); it is set by the frame's first fragment.
        """
        stats = self.stats
        stats.fragments += 1
        if total > self.max_frame_bytes:
            self._reject(Reject.FRAME_TOO_LARGE)
            return _NOTHING
        out: list[Frame] | None = None
        slot = self._by_id[frame_id]
        if slot is None:
            out, slot = self._open(frame_id, total, now, flip)
            if slot is None:
                return out or _NOTHING
        elif slot.state == _COMPLETE:
            # Held, waiting on an older frame: everything it needs is already here.
            stats.duplicates += 1
            return _NOTHING
        elif slot.total != total:
            # Same id, different frame size: a damaged header or a frame 256 ids away. Either
            # way the bytes gathered so far cannot be trusted.
            self._kill(slot, all_seen=False, corrupt=True, now=now)
            return self._release(out, now) or _NOTHING
        if self._place(slot, flag, index, size, datagram, start, now):
            out = self._release(out, now)
        return out or _NOTHING

    def expire(self, now: float) -> Sequence[Frame]:
        """Drop incomplete frames older than ``expiry_s``.

        Returns the frames that were held behind the expired ones (usually none); a caller that
        ignores the result only loses those.
        """
        return self._expire(None, now) or _NOTHING

    # ----------------------------------------------------------------- private

    def _reject(self, reason: Reject) -> None:
        rejected = self.stats.rejected
        key = reason.value
        rejected[key] = rejected.get(key, 0) + 1

    def _open(
        self, frame_id: int, total: int, now: float, flip: int = -1
    ) -> tuple[list[Frame] | None, _Slot | None]:
        """Find the sequence for a frame id with no slot, and give it one if it deserves it."""
        head = self._head
        if head is None:
            seq = 256 + frame_id
            self._progress = now
        else:
            seq = head + (((frame_id - head + 128) & 0xFF) - 128)
        last = self._last
        if last is not None and seq <= last:
            self._stale_ids |= 1 << frame_id
            if now - self._progress <= self.expiry_s or self._stale_ids.bit_count() < RESYNC_FRAMES:
                self._count_straggler(seq, now)
                return None, None
            self._resync(now)
            seq = 256 + frame_id
        elif seq in self._dead:
            all_seen, when = self._dead[seq]
            if now - when <= self.expiry_s:
                if all_seen:
                    self.stats.duplicates += 1
                else:
                    self._reject(Reject.LATE)
                return None, None
            del self._dead[seq]
        out = self._expire(None, now)
        live = self._live
        if len(live) >= self.max_in_flight:
            if seq < live[0].seq:
                self._reject(Reject.WINDOW_FULL)
                return out, None
            self._give_up(live[0], now)
            out = self._release(out, now)
        if self._last is not None and seq <= self._last:
            # Expiry or eviction just released a newer frame: this one can never go out.
            self._reject(Reject.LATE)
            return out, None
        slot = self._free.pop()
        slot.reset(seq, frame_id, total, now, flip)
        pos = len(live)
        while pos and live[pos - 1].seq > seq:
            pos -= 1
        live.insert(pos, slot)
        self._by_id[frame_id] = slot
        if self._head is None or seq > self._head:
            self._head = seq
        return out, slot

    def _count_straggler(self, seq: int, now: float) -> None:
        """A fragment of a frame at or before the last one returned."""
        last = self._last
        assert last is not None
        back = last - seq
        dead = self._dead.get(seq)
        if dead is not None and now - dead[1] <= self.expiry_s:
            seen = dead[0]
        else:
            seen = back < _EMITTED_BITS and bool((self._emitted >> back) & 1)
        if seen:
            self.stats.duplicates += 1
        else:
            self._reject(Reject.LATE)

    def _resync(self, now: float) -> None:
        """Forget the id history: the device restarted its frame ids or the stream resumed."""
        for slot in list(self._live):
            self._give_up(slot, now)
        self._head = None
        self._last = None
        self._emitted = 0
        self._dead.clear()
        self._progress = now
        self._stale_ids = 0
        self.stats.resyncs += 1
        log.debug("frame ids jumped backwards for %.1f s: resynchronised", self.expiry_s)

    def _place(
        self,
        slot: _Slot,
        flag: int,
        index: int,
        size: int,
        datagram: bytes | bytearray | memoryview,
        start: int,
        now: float,
    ) -> bool:
        """Copy one fragment into its slot; True if the slot completed or died."""
        total = slot.total
        stride = slot.stride
        if stride == 0:
            if flag != FLAG_END:
                stride = size
            elif index == 0:
                stride = size if size == total else 0
            else:
                rest = total - size
                stride = rest // index if rest > 0 and rest % index == 0 else 0
            if stride <= 0 or -(-total // stride) > _MAX_FLAGS:
                return self._kill(slot, all_seen=False, corrupt=True, now=now)
            slot.stride = stride
            flags = min(total // stride + 1, _MAX_FLAGS)
            if len(slot.have) < flags:
                slot.have = bytearray(flags)
        offset = index * stride
        if flag == FLAG_END:
            if (
                offset + size != total
                or (slot.end >= 0 and slot.end != index)
                or slot.top > index + 1
            ):
                return self._kill(slot, all_seen=False, corrupt=True, now=now)
            slot.end = index
        elif size != stride or offset + size > total or (slot.end >= 0 and index >= slot.end):
            return self._kill(slot, all_seen=False, corrupt=True, now=now)
        have = slot.have
        if have[index]:
            self.stats.duplicates += 1
            return False
        have[index] = 1
        if index >= slot.top:
            slot.top = index + 1
        if size:
            slot.buf[offset : offset + size] = memoryview(datagram)[start : start + size]
        slot.count += 1
        slot.nbytes += size
        if slot.end < 0 or slot.count <= slot.end:
            return False
        buf = slot.buf
        if 0 <= slot.flip < total:
            buf[slot.flip] ^= 0xFF
        if (
            slot.nbytes != total
            or total < 4
            or buf[0] != 0xFF
            or buf[1] != 0xD8
            or buf[total - 2] != 0xFF
            or buf[total - 1] != 0xD9
        ):
            return self._kill(slot, all_seen=True, corrupt=True, now=now)
        slot.state = _COMPLETE
        slot.frame = Frame(slot.frame_id, bytes(memoryview(buf)[:total]), now)
        return True

    def _kill(self, slot: _Slot, all_seen: bool, corrupt: bool, now: float) -> bool:
        """Drop a frame for good, remembering it so its stragglers are counted, not restarted."""
        if corrupt:
            self.stats.corrupt += 1
        else:
            self.stats.incomplete += 1
        self._live.remove(slot)
        self._by_id[slot.frame_id] = None
        dead = self._dead
        dead[slot.seq] = (all_seen, now)
        if len(dead) > DEAD_MEMORY:
            del dead[min(dead)]
        slot.frame = None
        self._free.append(slot)
        return True

    def _give_up(self, slot: _Slot, now: float) -> None:
        self._kill(slot, all_seen=False, corrupt=False, now=now)

    def _release(self, out: list[Frame] | None, now: float) -> list[Frame] | None:
        """Return every frame that may now go out in order, applying the hold bound."""
        live = self._live
        while live:
            first = live[0]
            if first.state == _COMPLETE:
                frame = first.frame
                assert frame is not None
                live.pop(0)
                self._by_id[first.frame_id] = None
                last = self._last
                if last is None:
                    self._emitted = 1
                else:
                    shift = first.seq - last
                    self._emitted = (
                        ((self._emitted << shift) | 1) & _EMITTED_MASK
                        if shift < _EMITTED_BITS
                        else 1
                    )
                self._last = first.seq
                self._progress = now
                self._stale_ids = 0
                self.stats.frames += 1
                first.frame = None
                self._free.append(first)
                if out is None:
                    out = []
                out.append(frame)
                continue
            held = 0
            for slot in live:
                held += slot.state
            if held >= self.max_held:
                self._give_up(first, now)
                continue
            break
        return out

    def _expire(self, out: list[Frame] | None, now: float) -> list[Frame] | None:
        limit = now - self.expiry_s
        expired = [s for s in self._live if s.state == _ASSEMBLING and s.started < limit]
        if not expired:
            return out
        for slot in expired:
            self._give_up(slot, now)
        return self._release(out, now)
