# SPDX-License-Identifier: GPL-3.0-or-later
"""Reassembly: reorder, duplicates, wrap, hold policy, expiry, caps; property tests."""

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.protocol import FLAG_END, FLAG_START, encode_fragment, fragment_jpeg
from bridge.core.reassembly import Frame, Reassembler


def make_jpeg(size: int, seed: int = 0) -> bytes:
    """SOI + random body + EOI: all the reassembler checks of a JPEG."""
    rng = random.Random(seed)
    return b"\xff\xd8" + rng.randbytes(max(size - 4, 0)) + b"\xff\xd9"


def feed_all(r: Reassembler, datagrams: list[bytes], now: float = 0.0) -> list[Frame]:
    out: list[Frame] = []
    for d in datagrams:
        out.extend(r.feed(d, now))
    return out


def test_in_order_frame() -> None:
    jpeg = make_jpeg(5000)
    r = Reassembler()
    frames = feed_all(r, fragment_jpeg(9, jpeg, 1400), now=12.5)
    assert [(f.frame_id, f.data, f.completed_at) for f in frames] == [(9, jpeg, 12.5)]
    s = r.stats
    assert (s.packets, s.fragments, s.frames, s.duplicates, s.corrupt) == (4, 4, 1, 0, 0)


def test_recv_into_buffer_with_length() -> None:
    jpeg = make_jpeg(3000, 1)
    r = Reassembler()
    buf = bytearray(65536)
    frames: list[Frame] = []
    for d in fragment_jpeg(3, jpeg, 1000):
        buf[: len(d)] = d
        frames.extend(r.feed(buf, 0.0, len(d)))
        frames.extend(r.feed(memoryview(buf), 0.0, len(d)))  # and a duplicate via a view
    assert [f.data for f in frames] == [jpeg]
    assert r.stats.duplicates == 3


def test_single_fragment_frame() -> None:
    jpeg = make_jpeg(100)
    (datagram,) = fragment_jpeg(0, jpeg, 1400)
    r = Reassembler()
    assert [f.data for f in r.feed(datagram, 0.0)] == [jpeg]


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(4, 6000),
    fragment_size=st.integers(1, 1500),
    data=st.data(),
)
def test_any_permutation_with_duplicates(size: int, fragment_size: int, data) -> None:
    jpeg = make_jpeg(size, size)
    datagrams = fragment_jpeg(77, jpeg, fragment_size)
    if len(datagrams) > 400:
        datagrams = fragment_jpeg(77, jpeg, -(-size // 400))
    order = data.draw(st.permutations(range(len(datagrams))))
    dups = data.draw(st.lists(st.integers(0, len(datagrams) - 1), max_size=10))
    stream = [datagrams[i] for i in order]
    for i in dups:  # insert each duplicate at a random later place
        pos = data.draw(st.integers(0, len(stream)))
        stream.insert(pos, datagrams[i])
    r = Reassembler()
    frames = feed_all(r, stream)
    assert [f.data for f in frames] == [jpeg]
    assert r.stats.duplicates == len(dups)
    assert r.stats.frames == 1
    assert r.in_flight == 0


@settings(max_examples=150, deadline=None)
@given(first_id=st.integers(0, 255), data=st.data())
def test_interleaving_of_two_frames(first_id: int, data) -> None:
    a, b = make_jpeg(4000, 1), make_jpeg(2500, 2)
    fa = fragment_jpeg(first_id, a, 700)
    fb = fragment_jpeg((first_id + 1) & 0xFF, b, 700)
    picks = data.draw(st.lists(st.booleans(), min_size=len(fa) + len(fb)))
    # Merge the two (each internally shuffled) by the drawn choices.
    qa = data.draw(st.permutations(fa))
    qb = data.draw(st.permutations(fb))
    stream, ia, ib = [], 0, 0
    for pick in picks:
        if (pick and ia < len(qa)) or ib >= len(qb):
            if ia < len(qa):
                stream.append(qa[ia])
                ia += 1
        else:
            stream.append(qb[ib])
            ib += 1
    stream += qa[ia:] + qb[ib:]
    r = Reassembler()
    frames = feed_all(r, stream)
    # If the older frame had not even started when the newer one completed, nothing could tell
    # the reassembler to wait: the newer one goes out and the older one is late. Otherwise both
    # go out, oldest first.
    b_done = max(stream.index(d) for d in fb)
    a_started = min(stream.index(d) for d in fa)
    if a_started < b_done:
        assert [f.data for f in frames] == [a, b]
        assert [f.frame_id for f in frames] == [first_id, (first_id + 1) & 0xFF]
    else:
        assert [f.data for f in frames] == [b]
        assert r.stats.rejected == {"late": len(fa)}


def test_late_fragment_of_previous_frame_still_completes_it() -> None:
    a, b = make_jpeg(3000, 1), make_jpeg(3000, 2)
    fa, fb = fragment_jpeg(10, a, 1000), fragment_jpeg(11, b, 1000)
    r = Reassembler()
    assert feed_all(r, fa[:-1]) == []
    assert feed_all(r, fb) == []  # 11 is complete but held: 10 may still finish
    frames = r.feed(fa[-1], 0.1)
    assert [f.frame_id for f in frames] == [10, 11]
    assert [f.data for f in frames] == [a, b]
    assert r.stats.incomplete == 0


def test_hold_is_bounded_by_a_second_newer_frame() -> None:
    frames = {i: make_jpeg(2000, i) for i in range(3)}
    frags = {i: fragment_jpeg(250 + i, frames[i], 800) for i in range(3)}  # ids 250..252
    r = Reassembler()
    assert feed_all(r, frags[0][1:]) == []  # fragment 0 of the first frame is lost
    assert feed_all(r, frags[1]) == []
    out = feed_all(r, frags[2])
    assert [f.data for f in out] == [frames[1], frames[2]]
    assert r.stats.incomplete == 1
    # The lost fragment finally turns up: too late, never emitted.
    assert r.feed(frags[0][0], 0.2) == ()
    assert r.stats.rejected == {"late": 1}


def test_never_emits_a_frame_older_than_one_emitted() -> None:
    r = Reassembler()
    newer, older = make_jpeg(1500, 1), make_jpeg(1500, 2)
    assert len(feed_all(r, fragment_jpeg(5, newer, 1000))) == 1
    assert feed_all(r, fragment_jpeg(4, older, 1000)) == []
    assert r.stats.frames == 1
    assert r.stats.rejected["late"] == 2


def test_stream_across_id_wrap_in_order() -> None:
    r = Reassembler()
    got = []
    sent = []
    for n in range(700):
        jpeg = make_jpeg(600 + n % 50, n)
        sent.append(jpeg)
        got.extend(feed_all(r, fragment_jpeg(n & 0xFF, jpeg, 256), now=n / 30))
    assert [f.data for f in got] == sent
    assert [f.frame_id for f in got] == [n & 0xFF for n in range(700)]


def test_reordered_stream_across_wrap() -> None:
    rng = random.Random(5)
    r = Reassembler()
    stream, sent = [], []
    for n in range(600):
        jpeg = make_jpeg(900, n)
        sent.append(jpeg)
        stream.extend(fragment_jpeg(n & 0xFF, jpeg, 100))  # 9 fragments a frame
    # One swap in every block of 8 datagrams, so blocks straddle frame boundaries but no
    # fragment moves so far that a whole newer frame overtakes an older frame's first one.
    for i in range(0, len(stream) - 8, 8):
        a, b = rng.sample(range(i, i + 8), 2)
        stream[a], stream[b] = stream[b], stream[a]
    got = feed_all(r, stream)
    assert [f.data for f in got] == sent
    assert r.stats.incomplete == 0


def test_duplicates_of_an_emitted_frame_are_counted_as_duplicates() -> None:
    r = Reassembler()
    datagrams = fragment_jpeg(1, make_jpeg(3000), 1000)
    assert len(feed_all(r, datagrams)) == 1
    assert feed_all(r, datagrams) == []
    assert r.stats.duplicates == 3
    assert r.stats.frames == 1


@pytest.mark.parametrize("damage", ["soi", "eoi"])
def test_bad_markers_are_corrupt(damage: str) -> None:
    jpeg = bytearray(make_jpeg(3000))
    if damage == "soi":
        jpeg[1] = 0xD9
    else:
        jpeg[-1] = 0xD8
    r = Reassembler()
    datagrams = fragment_jpeg(1, bytes(jpeg), 1000)
    assert feed_all(r, datagrams) == []
    assert r.stats.corrupt == 1
    assert feed_all(r, datagrams[:1]) == []  # stragglers of a corrupt frame are duplicates
    assert r.stats.duplicates == 1
    assert r.in_flight == 0


def test_inconsistent_geometry_is_corrupt() -> None:
    r = Reassembler()
    jpeg = make_jpeg(3000)
    first = encode_fragment(FLAG_START, 1, 3000, 0, jpeg[:1000])
    # An END that claims to be index 1 with 1500 bytes: 1000 + 1500 != 3000.
    bad_end = encode_fragment(FLAG_END, 1, 3000, 1, jpeg[1000:2500])
    assert feed_all(r, [first, bad_end]) == []
    assert r.stats.corrupt == 1


def test_frame_size_cap_allocates_nothing() -> None:
    r = Reassembler(max_frame_bytes=10_000)
    datagram = encode_fragment(FLAG_START, 1, 10_001, 0, b"\xff\xd8")
    assert r.feed(datagram, 0.0) == ()
    assert r.stats.rejected == {"frame_too_large": 1}
    assert r.buffer_bytes == 0


def test_window_evicts_oldest() -> None:
    r = Reassembler(max_in_flight=2)
    frags = {i: fragment_jpeg(i, make_jpeg(3000, i), 1000) for i in range(1, 5)}
    feed_all(r, [frags[1][0], frags[2][0], frags[3][0]])
    assert r.stats.incomplete == 1
    assert r.in_flight == 2
    # The evicted frame's fragments are late now; frames 2 and 3 still complete.
    out = feed_all(r, frags[1][1:] + frags[2][1:] + frags[3][1:])
    assert [f.frame_id for f in out] == [2, 3]
    assert r.stats.rejected == {"late": 2}


def test_eviction_never_lets_an_older_frame_follow_a_newer_one() -> None:
    # Found by the lossy-stream property test: evicting the oldest frame releases a held newer
    # one (4); a frame between them (3) that starts right then must be refused, not emitted.
    r = Reassembler(max_in_flight=3)
    frames = {k: make_jpeg(1000, k) for k in range(2, 6)}
    frags = {k: fragment_jpeg(k, frames[k], 300) for k in frames}
    out = feed_all(r, [frags[2][-1], *frags[4], frags[5][0], *frags[3]])
    assert [f.frame_id for f in out] == [4]
    assert r.stats.incomplete == 1
    assert r.stats.rejected["late"] == len(frags[3])


def test_window_full_rejects_older_newcomer() -> None:
    r = Reassembler(max_in_flight=2)
    frags = {i: fragment_jpeg(i, make_jpeg(3000, i), 1000) for i in range(1, 4)}
    feed_all(r, [frags[2][0], frags[3][0], frags[1][0]])
    assert r.stats.rejected == {"window_full": 1}
    assert r.in_flight == 2


def test_expiry_drops_incomplete_and_releases_held() -> None:
    r = Reassembler(expiry_s=1.0)
    a, b = make_jpeg(3000, 1), make_jpeg(3000, 2)
    feed_all(r, fragment_jpeg(1, a, 1000)[:2], now=0.0)
    feed_all(r, fragment_jpeg(2, b, 1000), now=0.5)
    assert r.expire(0.9) == ()
    released = r.expire(1.01)
    assert [f.data for f in released] == [b]
    assert r.stats.incomplete == 1
    assert r.in_flight == 0


def test_expired_frame_is_dropped_when_next_frame_starts() -> None:
    r = Reassembler(expiry_s=1.0)
    feed_all(r, fragment_jpeg(1, make_jpeg(3000, 1), 1000)[:2], now=0.0)
    c = make_jpeg(2000, 3)
    assert [f.data for f in feed_all(r, fragment_jpeg(2, c, 1000), now=2.0)] == [c]
    assert r.stats.incomplete == 1


def test_resync_after_device_restarts_ids() -> None:
    r = Reassembler(expiry_s=1.0)
    for n in range(100):
        feed_all(r, fragment_jpeg(n, make_jpeg(500, n), 200), now=n / 30)
    assert r.stats.frames == 100
    # Reboot: ids restart at 0, behind 99. They are refused until they have come for longer
    # than the expiry from enough different ids; then the window resynchronises.
    t0 = 100 / 30
    restarted = [make_jpeg(500, 1000 + n) for n in range(60)]
    out = []
    for n, jpeg in enumerate(restarted):
        out += feed_all(r, fragment_jpeg(n, jpeg, 200), now=t0 + n / 30)
    assert r.stats.resyncs == 1
    first = restarted.index(out[0].data)
    assert [f.data for f in out] == restarted[first:]
    assert 0 < first < 45


def test_a_few_very_late_stragglers_do_not_resync() -> None:
    r = Reassembler(expiry_s=1.0)
    frames = [make_jpeg(300, n) for n in range(6)]
    assert len(feed_all(r, fragment_jpeg(5, frames[5], 1000), now=0.0)) == 1
    for n in range(1, 5):  # older frames trickling in, the last after more than the expiry
        assert feed_all(r, fragment_jpeg(n, frames[n], 1000), now=0.4 * n) == []
    assert r.stats.resyncs == 0
    assert r.stats.rejected == {"late": 4}


def test_slot_buffers_are_reused() -> None:
    r = Reassembler(max_in_flight=2)
    for n in range(50):
        feed_all(r, fragment_jpeg(n, make_jpeg(5000, n), 1000))
    assert r.stats.frames == 50
    assert r.buffer_bytes <= 2 * (5000 + 64)


fragment_like = st.builds(
    lambda flag, fid, total, index, size, payload: (
        struct.pack("<BBBBI4xHH8x", 0x66, flag, 1, fid, total, index, size) + payload
    ),
    st.integers(0, 4),
    st.integers(0, 3),
    st.one_of(st.integers(0, 70_000), st.integers(0, 0xFFFFFFFF)),
    st.integers(0, 0xFFFF),
    st.integers(0, 2000),
    st.binary(max_size=2000),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=100), fragment_like), max_size=60))
def test_any_bytes_never_raise_and_memory_stays_bounded(datagrams: list[bytes]) -> None:
    r = Reassembler(max_frame_bytes=65_536, max_in_flight=3)
    for i, d in enumerate(datagrams):
        for frame in r.feed(d, i * 0.01):
            assert frame.data[:2] == b"\xff\xd8"
            assert frame.data[-2:] == b"\xff\xd9"
        assert r.buffer_bytes <= r.memory_bound
        assert r.in_flight <= 3
    r.expire(1e9)
    s = r.stats
    assert s.packets == len(datagrams)
    assert s.fragments + sum(s.rejected.values()) >= s.packets


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_prefixes_of_valid_fragments_never_raise(noise: list[bytes]) -> None:
    datagrams = fragment_jpeg(1, make_jpeg(3000), 1000)
    r = Reassembler()
    for d in datagrams:
        for i in range(0, len(d), 97):
            r.feed(d[:i], 0.0)
    for n in noise:
        r.feed(n, 0.0)
    assert r.stats.frames == 0
    assert r.stats.rejected


def test_odd_buffer_types_are_read_as_bytes() -> None:
    jpeg = make_jpeg(3000, 4)
    datagrams = fragment_jpeg(1, jpeg, 1000)
    r = Reassembler()
    out: list[Frame] = []
    for d in datagrams:
        wide = memoryview(bytearray(d) + b"\0" * (len(d) % 2)).cast("H")  # 2-byte items
        strided = memoryview(bytes(x for b in d for x in (b, 0)))[::2]  # not contiguous
        out += r.feed(wide, 0.0, len(d))
        out += r.feed(strided, 0.0)
        out += r.feed(d, 0.0, len(d) + 100)  # a length beyond the buffer is clamped
    assert [f.data for f in out] == [jpeg]
    assert r.stats.duplicates == 2 * len(datagrams)
    assert r.buffer_bytes <= r.memory_bound
    for junk in (None, 42, "text", [1, 2, 3]):
        assert r.feed(junk, 0.0) == ()  # type: ignore[arg-type]
    for bad_length in (-1, "10", 2.5):
        assert r.feed(datagrams[0], 0.0, bad_length) == ()  # type: ignore[arg-type]
    assert r.stats.rejected == {"not_bytes": 7}


@settings(max_examples=150, deadline=None)
@given(start=st.integers(0, 255), sizes=st.lists(st.integers(4, 2500), min_size=1, max_size=12),
       data=st.data())  # fmt: skip
def test_lossy_reordered_stream_emits_exact_frames_in_order(start: int, sizes, data) -> None:
    frames = [make_jpeg(size, k) for k, size in enumerate(sizes)]
    sent = [d for k, f in enumerate(frames) for d in fragment_jpeg((start + k) & 0xFF, f, 300)]
    # Loss, duplicates, and a bounded random displacement of each datagram.
    keep = data.draw(st.lists(st.integers(0, 9), min_size=len(sent), max_size=len(sent)))
    shift = data.draw(st.lists(st.integers(0, 15), min_size=len(sent), max_size=len(sent)))
    stream = []
    for i, d in enumerate(sent):
        copies = 0 if keep[i] == 0 else 2 if keep[i] == 9 else 1
        stream += [(i + shift[i], d)] * copies
    stream.sort(key=lambda item: item[0])
    r = Reassembler(max_in_flight=3)
    out: list[Frame] = []
    for t, (_, d) in enumerate(stream):
        out += r.feed(d, t * 0.01)
        assert r.buffer_bytes <= r.memory_bound
    out += r.expire(1e9)
    positions = [(f.frame_id - start) & 0xFF for f in out]
    if r.stats.resyncs == 0:  # a resync (only after >1 s of stale traffic) starts a new epoch
        assert positions == sorted(set(positions))  # stream order, no repeats
    assert all(f.data == frames[p] for f, p in zip(out, positions, strict=True))
    if all(keep) and not any(shift):
        assert len(out) == len(frames)
    s = r.stats
    assert s.frames == len(out)
    assert s.packets == len(stream)
