# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge simulate`: its flags, and running the simulator until a signal."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import bridge.sim
from bridge.core import models
from bridge.errors import BridgeError
from bridge.sim.server import Simulator, SimulatorConfig

log = logging.getLogger(__name__)

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate between 0 and 1 (e.g. 0.01 = 1%)")
    return value


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be positive")
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0..65535, 0 = any)")
    return value


def _quality(text: str) -> int:
    value = _positive(int)(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"quality {text} is above 100")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `borescope-bridge simulate` (and `python -m bridge.sim.server`)."""
    d = SimulatorConfig()
    parser.add_argument(
        "--model",
        type=str.lower,
        choices=models.NAMES,
        default=d.model,
        help="which scope of the family to emulate: framing, address, ports, inversion, buttons "
        "(default %(default)s; `borescope-bridge models` lists them)",
    )
    parser.add_argument(
        "--bind", default=None, help=f"address to listen on (default: the model's, e.g. {d.bind})"
    )
    parser.add_argument(
        "--stream-port",
        type=_port,
        default=None,
        help="port for heartbeats and video, TCP for framing C (default: the model's)",
    )
    parser.add_argument(
        "--event-port",
        type=_port,
        default=None,
        help=f"UDP port for SETCMD/RETCMD button polls (default {d.event_port})",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=_positive(float),
        default=d.heartbeat_timeout,
        help="stop streaming after this many seconds without a heartbeat (default %(default)s)",
    )
    parser.add_argument(
        "--resolution",
        choices=sorted(RESOLUTIONS, key=lambda k: RESOLUTIONS[k]),
        default="640x480",
        help="picture size (default %(default)s)",
    )
    parser.add_argument(
        "--fps",
        type=_positive(float),
        default=d.fps,
        help="frames per second (default %(default)s)",
    )
    parser.add_argument(
        "--quality",
        type=_quality,
        default=d.quality,
        help="JPEG quality 1-100 (default %(default)s)",
    )
    parser.add_argument(
        "--fragment-size",
        type=_positive(int),
        default=None,
        help="JPEG bytes per datagram (default: the model's, 1400 for the J103)",
    )
    for name, what in (
        ("loss", "datagrams dropped"),
        ("duplicate", "datagrams sent twice"),
        ("reorder", "datagrams delayed behind 1-3 later ones"),
        ("corrupt", "frames sent with a damaged SOI/EOI marker"),
        ("foreign", "datagrams preceded by a forged copy from another address"),
    ):
        parser.add_argument(
            f"--{name}",
            type=_rate,
            default=0.0,
            metavar="RATE",
            help=f"fraction of {what} (0..1, default 0)",
        )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed for the fault injection (default: random)",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        model=args.model,
        bind=args.bind or "",
        stream_port=-1 if args.stream_port is None else args.stream_port,
        event_port=-1 if args.event_port is None else args.event_port,
        resolution=RESOLUTIONS[args.resolution],
        fps=args.fps,
        quality=args.quality,
        fragment_size=args.fragment_size or 0,
        heartbeat_timeout=args.heartbeat_timeout,
        loss=args.loss,
        duplicate=args.duplicate,
        reorder=args.reorder,
        corrupt=args.corrupt,
        foreign=args.foreign,
        seed=args.seed,
    )


def main(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT or SIGTERM; SIGUSR1 presses the snapshot button."""
    try:
        sim = Simulator(config_from_args(args))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    done = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, shutting down", signal.Signals(signum).name)
        done.set()

    def on_press(_signum: int, _frame: FrameType | None) -> None:
        sim.press_button()

    # Handlers first: SIGUSR1's default action would kill the process.
    previous: dict[int, Any] = {}
    try:
        for signum, handler in (
            (signal.SIGINT, on_stop),
            (signal.SIGTERM, on_stop),
            (signal.SIGUSR1, on_press),
        ):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:
        log.debug("not the main thread: signals are not handled")
    try:
        try:
            sim.start()
        except BridgeError as exc:
            log.error("%s", exc)
            return 1
        log.info("press the snapshot button with: kill -USR1 %d; stop with Ctrl-C", os.getpid())
        while not done.wait(1.0):
            pass
        sim.stop()
        log.info("statistics: %s", sim.stats.as_dict())
        return 0
    finally:
        sim.stop()
        for number, old in previous.items():
            signal.signal(number, old)


def run_script(prog: str, argv: list[str] | None = None) -> int:
    """Run as a script (``python -m``), with plain logging to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog=prog, description=bridge.sim.__doc__)
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    import sys

    sys.exit(run_script("python -m bridge.sim.cli"))
