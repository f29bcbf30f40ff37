# SPDX-License-Identifier: GPL-3.0-or-later
"""A small frame whose SOF declares a huge picture is refused before anything of that size.

The security review's fault: a 629-byte frame declaring 30000x30000 made the pipeline allocate
about 3 GB (the service's MemoryMax: an OOM kill), and in MJPEG mode it could switch the camera
to that size. The bomb here is a real simulator JPEG with its SOF patched
(tests/support/damage.py), through the real Pipeline and libturbojpeg; the process's peak RSS
is measured around it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.damage import with_sof_size
from support.stepped import Clock, H, Recorder, W, feed, good_frames, reference, stepped_pipeline

from bridge.app.build import make_output
from bridge.app.config import Config
from bridge.camera.pipeline import Pipeline
from bridge.pixels.decode import Decoder, PictureTooLarge
from bridge.pixels.turbojpeg import turbojpeg_available

pytestmark = pytest.mark.skipif(
    not turbojpeg_available(), reason="the decoder under test: apt install libturbojpeg0"
)

BOMB = (30000, 30000)
# One 30000x30000 picture costs gigabytes; the frames here need a few megabytes.
RSS_GROWTH_LIMIT = 64 * 1024 * 1024


def peak_rss_growth(action: Callable[[], None]) -> int:
    """Bytes the process's peak resident set grew by while `action` ran (Linux: the peak is
    reset through /proc/self/clear_refs, so an earlier test's peak does not hide this one's)."""

    def status(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise LookupError(field)

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS here: {exc}")
    before = status("VmRSS")
    action()
    return status("VmHWM") - before


@pytest.mark.parametrize("fmt", ["raw", "mjpeg"])
def test_a_decompression_bomb_between_good_frames_is_refused(fmt: str) -> None:
    frames = good_frames()
    bomb = with_sof_size(frames[20], *BOMB)
    recorder, clock = Recorder(), Clock()
    p = stepped_pipeline(recorder, clock, fmt)
    feed(p, clock, frames[:20])
    # Fewer bombs in a row than a camera size switch takes: what is measured is the decoding.
    growth = peak_rss_growth(lambda: feed(p, clock, [bomb] * 3))
    feed(p, clock, frames[21:61])
    assert growth < RSS_GROWTH_LIMIT, f"the bomb grew the process by {growth >> 20} MiB"
    assert BOMB not in recorder.asked
    stats = p.stats()
    assert stats["frames_too_large"] == 3
    assert stats["decode_errors"] == 0
    assert stats["shown"] == 60
    assert stats["camera_size"] == (W, H)
    expected = [reference(f) if fmt == "raw" else f for f in frames[21:61]]
    assert recorder.pictures[-40:] == expected
    p.stop()


@pytest.mark.parametrize("fmt", ["raw", "mjpeg"])
def test_a_bomb_as_the_first_frame_opens_no_camera_at_its_size(fmt: str) -> None:
    frames = good_frames()
    recorder, clock = Recorder(), Clock()
    p = stepped_pipeline(recorder, clock, fmt)
    growth = peak_rss_growth(lambda: feed(p, clock, [with_sof_size(frames[0], *BOMB)]))
    assert recorder.asked == []
    assert growth < RSS_GROWTH_LIMIT, f"the bomb grew the process by {growth >> 20} MiB"
    assert p.stats()["frames_too_large"] == 1
    feed(p, clock, frames[1:41])
    assert recorder.asked == [(W, H)]
    assert p.stats()["shown"] == 40
    p.stop()


def test_the_cap_is_configurable_and_inclusive() -> None:
    frames = good_frames()
    recorder, clock = Recorder(), Clock()
    p = stepped_pipeline(recorder, clock, "mjpeg", max_picture_size=(W, H))
    wider, taller = with_sof_size(frames[1], W + 2, H), with_sof_size(frames[2], W, H + 2)
    feed(p, clock, [frames[0], wider, taller])
    stats = p.stats()
    assert (stats["shown"], stats["frames_too_large"]) == (1, 2)
    assert recorder.asked == [(W, H)]
    p.stop()


def test_frames_too_large_are_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    bomb = with_sof_size(good_frames()[0], *BOMB)
    recorder, clock = Recorder(), Clock()
    p = stepped_pipeline(recorder, clock, "mjpeg")
    with caplog.at_level("WARNING", logger="bridge.camera"):
        feed(p, clock, [bomb] * 30)  # one second of bombs: one warning
        clock.now += 120
        feed(p, clock, [bomb])  # a later one: a warning that counts the held-back ones
    warnings = [r.getMessage() for r in caplog.records if "30000x30000" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert "4096x4096" in warnings[0] and "max_picture_size" in warnings[0]
    assert "29 more" in warnings[1]
    assert p.stats()["frames_too_large"] == 31
    p.stop()


@pytest.mark.parametrize("backend", ["turbojpeg", "simplejpeg"])
def test_the_decoder_refuses_a_declared_size_beyond_its_limit(backend: str) -> None:
    good = good_frames()[0]
    decoder = Decoder(backend, max_size=(4096, 4096))

    def decode_the_bomb() -> None:
        with pytest.raises(PictureTooLarge, match="30000x30000"):
            decoder.decode(with_sof_size(good, *BOMB))

    try:
        assert peak_rss_growth(decode_the_bomb) < RSS_GROWTH_LIMIT
        assert decoder.decode(good).shape == (H * 3 // 2, W)
    finally:
        decoder.close()


def test_the_setting_reaches_the_pipeline() -> None:
    frames = good_frames()
    recorder, clock = Recorder(), Clock()
    config = Config(camera="/dev/video9", format="mjpeg", max_picture_size=f"{W}x{H}")
    p = make_output(config, sink_factory=recorder, usage_factory=lambda sink: None, clock=clock)
    assert isinstance(p, Pipeline)
    feed(p, clock, [frames[0], with_sof_size(frames[1], W + 2, H)])
    assert (p.stats()["shown"], p.stats()["frames_too_large"]) == (1, 1)
    p.stop()
