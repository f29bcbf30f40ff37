# SPDX-License-Identifier: GPL-3.0-or-later
"""What the fake borescope does, as a state machine: no sockets, no clock.

It is driven by the time (``now``, any monotonic seconds) and the datagrams that arrive, and
answers with the datagrams to send (:class:`Send`); the server owns the sockets and the clock.
As far as the bridge can tell it behaves like the J10x-OTG device:

* The stream port waits for a heartbeat, then streams JPEG frames (fragmented exactly like the
  device, 8-bit wrapping frame ids) to the source address of the latest heartbeat, paced at
  ``fps``. It stops on the STOP packet and by itself when heartbeats cease for
  ``heartbeat_timeout`` seconds.
* The event port answers every ``SETCMD`` with a ``RETCMD`` echoing its counter and carrying the
  button counter, which :meth:`Device.press` increments.
* :meth:`Device.reboot`: the device goes quiet for a while, forgets its client, restarts its
  frame ids at 0 and its button counter at 0.

Other models of the family (bridge.core.models) change what goes on the wire, as the row says:
framing B chunks (with the inverted byte where the model inverts), framing C frames on a TCP
connection instead of heartbeats, a GetRemoteKey poll of 1 or 4 bytes (a poll of the wrong
length is not answered), and key codes in the reply's form instead of the J103's counter. A key
is shown in one reply and cleared, so :meth:`Device.press_key` twice shows it twice.
"""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import asdict, dataclass, field

from bridge.core import control, framing_b, framing_c
from bridge.core.models import MODELS, Buttons, Framing, Model, ReplyForm
from bridge.core.protocol import (
    Reject,
    decode_control,
    decode_setcmd,
    encode_retcmd,
    fragment_jpeg,
)
from bridge.sim.faults import (
    Action,
    FaultRates,
    HeldBack,
    corrupt_frame,
    datagram_fate,
    forge_reply,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]


class Via(enum.Enum):
    """Which of the device's sockets a datagram leaves from."""

    STREAM = "stream"
    EVENT = "event"
    TCP = "tcp"  # framing C: the connected client
    FOREIGN = "foreign"  # another address: forged packets


@dataclass(frozen=True)
class Send:
    """One datagram for the server to send."""

    via: Via
    data: bytes
    addr: Address


@dataclass
class SimulatorStats:
    """What the simulator did, including every fault it injected."""

    frames_sent: int = 0
    datagrams: int = 0
    bytes_sent: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    foreign: int = 0
    foreign_events: int = 0
    heartbeats: int = 0
    stops: int = 0
    timeouts: int = 0
    clients: int = 0
    polls: int = 0
    rejected: int = 0
    presses: int = 0
    reboots: int = 0
    send_errors: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Device:
    """The device's behaviour; not thread-safe (the server serialises the calls).

    ``frames`` is the loop of JPEGs being shown and ``resolution`` its size; the owner replaces
    both to switch resolution, and the stream switches at the next frame. The counters of
    datagrams actually sent (``datagrams``, ``bytes_sent``, ``send_errors``) are the sender's
    to keep in :attr:`stats`.
    """

    def __init__(
        self,
        *,
        fps: float,
        heartbeat_timeout: float,
        fragment_size: int,
        faults: FaultRates,
        rng: random.Random,
        resolution: tuple[int, int],
        stats: SimulatorStats | None = None,
        model: Model = MODELS[0],
    ) -> None:
        self.model = model
        self.keys: list[int] = []  # key codes still to show, one per reply (SDK 2.x models)
        self.fps = fps
        self.heartbeat_timeout = heartbeat_timeout
        self.fragment_size = fragment_size
        self.faults = faults
        self.rng = rng
        self.resolution = resolution
        self.frames: list[bytes] | None = None
        self.stats = stats if stats is not None else SimulatorStats()
        self.buttons = 0
        self.client: Address | None = None
        self._sent: list[bytes | None] = [None] * 256
        self._last_heartbeat = 0.0
        self._next_frame = 0.0
        self._frame_seq = 0
        self._loop_index = 0
        self._held = HeldBack()
        self._down_until = 0.0

    @property
    def down(self) -> bool:
        """Rebooting: silent, and deaf to every packet."""
        return bool(self._down_until)

    def sent_frame(self, frame_id: int) -> bytes | None:
        """The JPEG most recently sent with this 8-bit id (before any injected corruption)."""
        return self._sent[frame_id & 0xFF]

    def timeout(self, now: float) -> float | None:
        """Seconds until :meth:`tick` has something to do, or None when only a packet can."""
        if self.client is not None:
            return max(self._next_frame - now, 0.0)
        if self._down_until:
            return max(self._down_until - now, 0.0)
        return None

    def tick(self, now: float) -> list[Send]:
        """Advance to ``now``: come back up, time the client out, or send the frame that is due."""
        if self._down_until and now >= self._down_until:
            self._down_until = 0.0
            log.info("back up after reboot, waiting for a heartbeat")
        if self.client is None:
            return []
        tcp = self.model.framing == Framing.C
        if not tcp and now - self._last_heartbeat > self.heartbeat_timeout:
            log.info(
                "client %s:%d gone: no heartbeat for %.1f s; streaming stopped",
                *self.client,
                self.heartbeat_timeout,
            )
            self.stats.timeouts += 1
            return self.end_stream()
        if now < self._next_frame:
            return []
        sends = self._send_frame(self.client)
        period = 1.0 / self.fps
        self._next_frame += period
        if now - self._next_frame > period:
            self._next_frame = now + period  # fell behind: no catch-up burst
        return sends

    def on_stream(self, data: bytes, addr: Address, now: float) -> list[Send]:
        """A packet on the stream port: a heartbeat (re)directs the stream, STOP ends it."""
        if self._down_until:
            return []  # powered off: the packet is lost
        kind = decode_control(data)
        if isinstance(kind, Reject):
            self._reject(kind)
            log.debug("ignored %d-byte packet from %s:%d on the stream port", len(data), *addr)
            return []
        if kind != "heartbeat":
            self.stats.stops += 1
            if addr == self.client:
                log.info("client %s:%d sent stop: streaming stopped", *addr)
                return self.end_stream()
            log.debug("stop from %s:%d, which is not the client: ignored", *addr)
            return []
        self.stats.heartbeats += 1
        self._last_heartbeat = now
        if self.client == addr:
            return []
        sends = []
        if self.client is not None:
            log.info("heartbeat from %s:%d: now streaming there instead", *addr)
            sends = self._flush_held()
        self.client = addr
        self._next_frame = now
        self.stats.clients += 1
        width, height = self.resolution
        log.info(
            "client %s:%d connected: streaming %dx%d at %.0f fps", *addr, width, height, self.fps
        )
        return sends

    def on_connect(self, addr: Address, now: float) -> None:
        """Framing C: a client connected to the TCP port; it is streamed to at once."""
        self.client = addr
        self._next_frame = now
        self.stats.clients += 1
        log.info("TCP client %s:%d connected: streaming", *addr)

    def on_disconnect(self) -> None:
        """Framing C: the client went away (or a send to it failed)."""
        if self.client is not None:
            log.info("TCP client %s:%d gone: streaming stopped", *self.client)
        self.client = None

    def press_key(self, code: int) -> None:
        """Press a key of an SDK 2.x model: 1 photo, 2 video, 3 zoom in, 4 zoom out."""
        self.keys.append(code)
        self.stats.presses += 1

    def on_event(self, data: bytes, addr: Address) -> list[Send]:
        """A packet on the event port: a SETCMD poll is answered with the button counter."""
        if self._down_until:
            return []
        if self.model.buttons == Buttons.KEYS:
            return self._on_key_poll(data, addr)
        counter = decode_setcmd(data)
        if isinstance(counter, Reject):
            self._reject(counter)
            return []
        self.stats.polls += 1
        sends = []
        if forge_reply(self.faults, self.rng):
            sends.append(Send(Via.FOREIGN, encode_retcmd(counter, self.buttons + 5), addr))
            self.stats.foreign_events += 1
        sends.append(Send(Via.EVENT, encode_retcmd(counter, self.buttons), addr))
        return sends

    def _on_key_poll(self, data: bytes, addr: Address) -> list[Send]:
        """SDK 2.x: GetRemoteKey of the model's payload length, answered in the model's form."""
        if self.model.control_9999 and data[:2] == b"\x99\x99":
            return self._on_9999(data, addr)
        cmd = control.decode_command(data)
        if isinstance(cmd, Reject):
            self._reject(cmd)
            return []
        if cmd.magic != control.SETCMD:
            self._reject(Reject.BAD_MAGIC)
            return []
        if cmd.op == control.OP_GET_RESOLUTIONS:
            w, h = self.resolution
            body = b"\0\x10\0\x01" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + b"\x14"
            return [Send(Via.EVENT, control.encode_reply(cmd.seq, cmd.op, body), addr)]
        if cmd.op != control.OP_GET_REMOTE_KEY:
            self._reject(Reject.UNKNOWN_COMMAND)
            return []
        if len(cmd.payload) != self.model.key_payload:
            self._reject(Reject.BAD_LENGTH)
            return []
        self.stats.polls += 1
        key = self.keys.pop(0) if self.keys else 0
        if key and self.keys and self.keys[0] == key:
            self.keys.insert(0, 0)  # the same key twice: a reply without it in between
        return [Send(Via.EVENT, self._key_reply(cmd.seq, key), addr)]

    def _on_9999(self, data: bytes, addr: Address) -> list[Send]:
        """The 0x9999 reads: version, LED level, battery (fixed, made-up values); nothing else."""
        cmd = control.decode_9999(data)
        if isinstance(cmd, Reject):
            self._reject(cmd)
            return []
        op, seq, _param = cmd
        values = {
            control.OP9999_VERSION: 70,
            control.OP9999_GET_PWM: 1,
            control.OP9999_BATTERY: 100,
        }
        if op not in values:
            self._reject(Reject.UNKNOWN_COMMAND)
            return []
        return [Send(Via.EVENT, control.encode_9999(op, seq, values[op]), addr)]

    def _key_reply(self, seq: int, key: int) -> bytes:
        form = self.model.reply
        if form == ReplyForm.J103:
            return encode_retcmd(seq, key)
        if form == ReplyForm.ZERO_LENGTH:
            return control.encode_reply(seq, control.OP_GET_REMOTE_KEY, bytes(6) + bytes([key, 0]))
        return control.encode_reply(seq, control.OP_GET_REMOTE_KEY, b"\x01\x00" + bytes([key]))

    def press(self, n: int = 1) -> int:
        """Press the snapshot button ``n`` times (the 16-bit counter wraps like the device's)."""
        if self.model.buttons == Buttons.KEYS:
            for _ in range(n):
                self.press_key(control.KEY_PHOTO)
            return len(self.keys)
        self.buttons = (self.buttons + n) & 0xFFFF
        self.stats.presses += n
        return self.buttons

    def reboot(self, now: float, downtime: float) -> None:
        """A power cycle: silent until ``now + downtime``, then counters and frame ids from 0."""
        if self.client is not None:
            self.stats.lost += len(self._held)
            self._held.drain()
            self.client = None
        self.buttons = 0
        self._frame_seq = 0
        self._loop_index = 0
        self._down_until = now + downtime
        self.stats.reboots += 1
        log.info("rebooting: silent for %.1f s, then button counter and frame ids at 0", downtime)

    def end_stream(self) -> list[Send]:
        """Stop streaming; what reordering still holds goes out first."""
        sends = self._flush_held()
        self.client = None
        return sends

    def _reject(self, reason: Reject) -> None:
        self.stats.rejected += 1
        by_reason = self.stats.rejected_by_reason
        by_reason[reason.value] = by_reason.get(reason.value, 0) + 1

    def _flush_held(self) -> list[Send]:
        """Send what reordering held back, so every datagram is sent or counted as lost."""
        held = self._held.drain()
        if self.client is None:
            self.stats.lost += len(held)
            return []
        return [Send(Via.STREAM, datagram, self.client) for datagram in held]

    def _send_frame(self, client: Address) -> list[Send]:
        frames = self.frames
        if not frames:
            raise RuntimeError("the device has no frames to show")
        stats = self.stats
        jpeg = frames[self._loop_index % len(frames)]
        self._loop_index = (self._loop_index + 1) % len(frames)
        frame_id = self._frame_seq & 0xFF
        self._frame_seq += 1
        self._sent[frame_id] = jpeg
        wire = corrupt_frame(jpeg, self.faults, self.rng)
        if wire is None:
            wire = jpeg
        else:
            stats.corrupted += 1
        stats.frames_sent += 1
        model = self.model
        if model.framing == Framing.C:
            return [Send(Via.TCP, framing_c.encode_frame(self._frame_seq - 1, wire), client)]
        if model.framing == Framing.B:
            datagrams = framing_b.chunk_jpeg(
                self._frame_seq - 1,
                wire,
                inverted=model.inverted,
                chunk_size=self.fragment_size,
                size=self.resolution,
            )
        else:
            datagrams = fragment_jpeg(frame_id, wire, self.fragment_size)
        sends = []
        for datagram in datagrams:
            fate = datagram_fate(datagram, self.faults, self.rng)
            if fate.forged is not None:
                sends.append(Send(Via.FOREIGN, fate.forged, client))
                stats.foreign += 1
            if fate.action is Action.HOLD:
                self._held.hold(datagram, fate.delay)
                stats.reordered += 1
                continue  # a held-back datagram does not count as a later one's predecessor
            if fate.action is Action.LOSE:
                stats.lost += 1
            else:
                sends.append(Send(Via.STREAM, datagram, client))
                if fate.action is Action.TWICE:
                    sends.append(Send(Via.STREAM, datagram, client))
                    stats.duplicated += 1
            sends.extend(Send(Via.STREAM, d, client) for d in self._held.passed())
        return sends
