# SPDX-License-Identifier: GPL-3.0-or-later
"""The builders of the daemon's parts: what `Daemon` runs, the demo shows and the bench measures.

One place constructs the receive path, the video side and the web page from a Config, so the
benchmark (bench/worker.py) measures exactly what the daemon runs, and the daemon's own module
keeps only the wiring between the parts.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from typing import Any, Protocol

from bridge.app.config import Config
from bridge.app.paths import default_state_dir, is_system_service
from bridge.app.settings import parse_http, parse_picture_size
from bridge.core.buttons import ButtonTracker
from bridge.core.framing_b import ReassemblerB
from bridge.core.framing_c import StreamC
from bridge.core.models import Framing
from bridge.core.reassembly import Reassembler
from bridge.device.probe import make_plan
from bridge.device.session import Listener, Session
from bridge.errors import BridgeError
from bridge.web.feed import Feed

log = logging.getLogger(__name__)


class Output(Protocol):
    """The video side as the daemon drives it: bridge.camera.pipeline.Pipeline, or NullOutput."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def submit(self, frame: Any) -> None:
        """Hand over a complete frame; must return at once (the loop thread calls it)."""

    def signal_lost(self) -> None: ...
    def signal_back(self) -> None: ...
    def set_transform(self, rotate: int, flip: str) -> None:
        """Rotate/flip from the next frame on; ConfigError when this output cannot."""

    def stuck(self, now: float) -> str | None:
        """Why the output's threads are not making progress; None while they are."""

    def stats(self) -> dict[str, Any]: ...


class NullOutput:
    """`--camera none`: nothing is decoded; snapshots, recording and status still work."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def submit(self, frame: Any) -> None: ...
    def signal_lost(self) -> None: ...
    def signal_back(self) -> None: ...
    def set_transform(self, rotate: int, flip: str) -> None: ...  # nothing shown: it just holds
    def stuck(self, now: float) -> str | None:
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "shown": 0,
            "skipped": 0,
            "camera": None,
            "camera_error": None,
            "resolution": None,
            "fps": None,
            "latency_p50_ms": None,
            "latency_p99_ms": None,
        }


def build_receive_path(config: Config, listener: Listener) -> Session:
    """The receive path for `config`: a Session with its Reassembler and ButtonTracker.

    The plan (bridge.device.probe) follows `model`: a name fixes the framing, address and
    ports (unless given explicitly); `auto` lets the session find them. Frames, presses, keys,
    state changes and ticks go to `listener` on the loop thread.
    """
    plan = make_plan(config.model, config.device_ip, config.stream_port, config.event_port)
    model = plan.model
    reassembler: Reassembler | StreamC
    if model is not None and model.framing == Framing.B:
        reassembler = ReassemblerB(max_frame_bytes=config.max_frame_bytes)
    elif model is not None and model.framing == Framing.C:
        reassembler = StreamC(max_frame_bytes=config.max_frame_bytes)
    else:
        reassembler = Reassembler(max_frame_bytes=config.max_frame_bytes)
    first = plan.udp_ports.get(plan.addresses[0], ())
    return Session(
        device_ip=plan.addresses[0],
        stream_port=first[0] if first else config.stream_port,
        event_port=config.event_port,
        interface=config.interface,
        reassembler=reassembler,
        tracker=ButtonTracker(),
        listener=listener,
        plan=plan,
        wait_s=config.wait,
        linger_s=config.linger,
        rcvbuf_bytes=config.receive_buffer_bytes,
    )


def make_output(config: Config, **pipeline_options: Any) -> Output:
    """The Pipeline (video side), or NullOutput for --camera none.

    `pipeline_options` go to the Pipeline as they are (the benchmark's stand-in sink).
    """
    if config.camera == "none":
        return NullOutput()
    from bridge.camera.pipeline import Pipeline

    if config.interface and config.camera == "auto" and "camera_finder" not in pipeline_options:
        from bridge.camera.loopback import find_camera

        # One instance of several: the next free camera labelled "Borescope N".
        pipeline_options["camera_finder"] = functools.partial(find_camera, instance=True)

    return Pipeline(
        camera=config.camera,
        fmt=config.format,
        rotate=config.rotate,
        flip=config.flip,
        fps_hint=config.fps_hint,
        max_picture_size=parse_picture_size(config.max_picture_size),
        **pipeline_options,
    )


def start_web(
    feed: Feed, http: str, state_dir: str | None, fallback: str | None
) -> tuple[Any, str | None]:
    """(the running bridge.web.server.WebServer, None), or (None, why the page is not served).

    `fallback` (the demo's "any free port") is tried when `http` cannot be bound; a page that
    cannot start is reported, never fatal: the camera and snapshots work without it.
    """
    where = parse_http(http)
    if where is None:
        return None, None
    from bridge.web import auth
    from bridge.web.server import WebServer

    state_dir = state_dir or default_state_dir()
    token_file: str | None = os.path.join(state_dir, auth.TOKEN_FILE)
    token_mode = 0o640 if is_system_service() else 0o600
    try:
        token = auth.load_or_create_token(state_dir, token_mode)
    except OSError as exc:
        token_file = None
        token = secrets.token_urlsafe(auth.TOKEN_BYTES)
        log.warning(
            "cannot keep the web page's access token in %s (%s): using one for this run "
            "only; its address changes at the next start",
            state_dir,
            exc.strerror or exc,
        )
    web = WebServer(feed, where[0], where[1], token)
    try:
        web.start()
    except BridgeError as exc:
        second = parse_http(fallback) if fallback else None
        if second is None:
            log.error("%s; the camera and snapshots work without it", exc)
            return None, str(exc)
        log.info("the web page cannot use %s (%s): trying %s", http, exc, fallback)
        web = WebServer(feed, second[0], second[1], token)
        try:
            web.start()
        except BridgeError as again:
            log.error("%s; the camera and snapshots work without it", again)
            return None, str(again)
    web.token_file = token_file
    web.token_mode = token_mode
    if not web.loopback:
        from bridge.web.urls import cleartext_warning

        log.warning("%s", cleartext_warning(web.host, web.port, token_file))
    return web, None
