# SPDX-License-Identifier: GPL-3.0-or-later
"""The commands that talk to a running daemon over its control socket: snapshot, status, url."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bridge.errors import BridgeError

SNAPSHOT_EXAMPLES = """\
examples:
  borescope-bridge snapshot
      save the next frame of the running daemon and print the file's path
  borescope-bridge snapshot --socket /run/user/1000/borescope-bridge/control.sock
      talk to a daemon started with `run` by a user (or by `demo`)
  xdg-open "$(borescope-bridge snapshot)"
      take a snapshot and open it

The hardware button on the borescope and `kill -USR1 <pid>` take snapshots too.
exit status: 0 with the file's path on stdout; 1 with the reason on stderr: no frame within
--timeout (nothing is saved), a disk error, or a disk slower than --timeout, in which case
the frame is taken and its file, named in the message, appears once the disk has it; 2 for
an invalid --timeout."""

STATUS_EXAMPLES = """\
examples:
  borescope-bridge status
      state, resolution, fps, frame counters, latency, snapshots, camera, uptime
  borescope-bridge status --all
      every running instance, one per borescope (`--interface IF` picks one)
  borescope-bridge status --json | jq .fps
      machine-readable, for scripts and monitoring"""

URL_EXAMPLES = """\
examples:
  xdg-open "$(borescope-bridge url)"
      open the live view (picture, snapshot button, recent snapshots) in your browser
  borescope-bridge url --lan --qr
      the address a phone on the same network uses, as a QR code for its camera
  borescope-bridge url --socket /run/user/1000/borescope-bridge/control.sock
      the page of a daemon started with `run` by a user (or by `demo`)

The address contains the page's access token: share it only with people who may see the
borescope. The page listens on 127.0.0.1 unless `run --http` (config key http) says otherwise."""


def find_instances() -> list[Any]:
    """Every running instance (bridge.control.instances.Instance): its interface, control
    socket and status. For `status --all`, `url --all` and the commands other modules add."""
    from bridge.app.config import control_socket_candidates
    from bridge.control.instances import find_instances as find

    return find(control_socket_candidates())


def socket_for(socket_path: str | None, interface: str | None) -> str:
    """The control socket a client command talks to: --socket, else the instance for
    --interface, else the only one running (a clear error lists them when there are several)."""
    from bridge.app.config import control_socket_candidates
    from bridge.control.instances import existing_sockets, pick

    if socket_path:
        return socket_path
    candidates = control_socket_candidates()
    if not interface and len(existing_sockets(candidates)) <= 1:
        from bridge.control.client import find_socket

        return find_socket(None, candidates)  # one scope: as ever, without asking first
    return pick(find_instances(), interface).control_socket


def _socket_path(args: argparse.Namespace) -> str:
    return socket_for(args.socket, getattr(args, "interface", None))


def _timeout_seconds(text: str) -> float:
    """`--timeout`: seconds, above 0 and at most the daemon's limit; anything else is an error."""
    from bridge.control.wire import MAX_SNAPSHOT_TIMEOUT_S

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_SNAPSHOT_TIMEOUT_S:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_SNAPSHOT_TIMEOUT_S:g} seconds, not {text}"
        )
    return value


# The daemon answers a snapshot within its --timeout; this much more covers a busy socket.
SNAPSHOT_REPLY_MARGIN_S = 5.0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from bridge.control.client import request

    path = _socket_path(args)
    reply = request(
        path,
        {"cmd": "snapshot", "timeout": args.timeout},
        timeout=args.timeout + SNAPSHOT_REPLY_MARGIN_S,
    )
    if not reply.get("ok"):
        if reply.get("pending"):
            raise BridgeError(f"snapshot not saved yet: {reply.get('error')}")
        raise BridgeError(f"snapshot failed: {reply.get('error', 'unknown error')}")
    print(reply["path"])
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    from bridge.control.client import request
    from bridge.web.urls import cleartext_warning, lan_urls, loopback_only_advice, qr_text

    if args.all:
        return _url_all(args)
    path = _socket_path(args)
    reply = request(path, {"cmd": "url"}, timeout=args.timeout)
    if not reply.get("ok"):
        raise BridgeError(f"url failed: {reply.get('error', 'unknown error')}")
    url = str(reply["url"])
    if args.lan:
        if str(reply["host"]).startswith("127."):
            raise BridgeError(loopback_only_advice(int(reply["port"])))
        warning = cleartext_warning(str(reply["host"]), int(reply["port"]), reply.get("token_file"))
        print(f"warning: {warning}", file=sys.stderr)
        urls = lan_urls(str(reply["host"]), int(reply["port"]), str(reply["token"]))
        if not urls:
            raise BridgeError(
                "this machine has no network address besides loopback: connect it to the "
                "network the phone is on"
            )
        url = urls[0]
        for other in urls[1:]:
            print(f"(also: {other})", file=sys.stderr)
    if args.qr:
        sys.stdout.write(qr_text(url))
    print(url)
    return 0


def _url_all(args: argparse.Namespace) -> int:
    """One line per running instance: its interface ("-" for none), a tab, its page's address."""
    from bridge.control.client import request

    instances = find_instances()
    if not instances:
        from bridge.control.wire import NOT_RUNNING_HINT

        raise BridgeError(f"no borescope-bridge daemon answers: {NOT_RUNNING_HINT}")
    failed = 0
    for inst in instances:
        try:
            reply = request(inst.control_socket, {"cmd": "url"}, timeout=args.timeout)
        except BridgeError as exc:
            reply = {"ok": False, "error": str(exc)}
        if reply.get("ok"):
            print(f"{inst.interface or '-'}\t{reply['url']}")
        else:
            failed += 1
            print(f"{inst.name}: {reply.get('error', 'unknown error')}", file=sys.stderr)
    return 1 if failed else 0


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v}{unit}"


def format_status(s: dict[str, Any]) -> str:
    """Human-readable status, aligned, one fact per line."""
    iface = s.get("interface") or (
        f"{s['device_interface']} (the route to the device)"
        if s.get("device_interface")
        else "none leads to the device yet (nothing from it is accepted)"
        if "device_interface" in s
        else "(routing decides)"
    )
    foreign = _fmt(s.get("foreign_packets"))
    if s.get("wrong_interface"):
        foreign += f" ({s['wrong_interface']} with its address on another interface: forged?)"
    rec = s.get("recording")
    if rec:
        rec_text = f"{rec['path']} ({rec['frames']} frames" + (
            f", stopped: {rec['error']})" if rec.get("error") else ")"
        )
    else:
        rec_text = "off"
    rb = s.get("receive_buffer_bytes")
    rb_text = _fmt(rb, " bytes")
    if rb is not None and s.get("receive_buffer_requested"):
        rb_text += f" (asked for {s['receive_buffer_requested']}; the kernel reports double)"
    if s.get("receive_buffer_capped"):
        rb_text += " (capped by net.core.rmem_max: raise it, see `borescope-bridge doctor`)"
    camera = s.get("camera") or "none"
    if s.get("camera_error"):
        camera += f" ({s['camera_error']})"
    elif s.get("camera"):
        readers = s.get("camera_readers", "unknown")
        camera += f" (readers: {readers}{', decoding idle' if s.get('decoding_idle') else ''})"
    http = s.get("http") or "off"
    if s.get("http_error"):
        web_text = f"not served: {s['http_error']}"
    elif http == "off":
        web_text = "off"
    else:
        n = s.get("stream_clients") or 0
        web_text = f"http://{http}/ ({n} viewer{'s' if n != 1 else ''}; `borescope-bridge url`)"
    rows = [
        ("state", s.get("state")),
        (
            "device",
            f"{s.get('device_ip')} (stream {s.get('stream_port')}, events {s.get('event_port')})",
        ),
        ("interface", iface),
        ("resolution", _fmt(s.get("resolution"))),
        ("fps", _fmt(s.get("fps"))),
        (
            "frames",
            f"received {s.get('frames_received')}, shown {s.get('frames_shown')}, "
            f"skipped {s.get('frames_skipped')}, incomplete {s.get('frames_incomplete')}, "
            f"corrupt {s.get('frames_corrupt')}, undecodable {s.get('decode_errors', 0)}, "
            f"too large {s.get('frames_too_large', 0)}",
        ),
        ("foreign packets", foreign),
        (
            "last frame",
            "never" if s.get("last_frame_age_s") is None else f"{s['last_frame_age_s']:.2f} s ago",
        ),
        (
            "latency",
            f"p50 {_fmt(s.get('latency_p50_ms'), ' ms')}, "
            f"p99 {_fmt(s.get('latency_p99_ms'), ' ms')}",
        ),
        (
            "snapshots",
            f"{s.get('snapshots_taken')} taken, {s.get('snapshots_failed')} failed"
            + (f", {s['snapshots_writing']} being written" if s.get("snapshots_writing") else "")
            + (f", {s['snapshots_refused']} refused" if s.get("snapshots_refused") else "")
            + (f", last {s['last_snapshot']}" if s.get("last_snapshot") else ""),
        ),
        ("snapshot dir", _fmt(s.get("snapshot_dir"))),
        ("camera", camera),
        ("recording", rec_text),
        ("web page", web_text),
        ("receive buffer", rb_text),
        ("uptime", f"{_fmt(s.get('uptime_s'))} s"),
    ]
    if s.get("snapshot_error"):
        rows.insert(10, ("snapshot error", s["snapshot_error"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows) + "\n"


def cmd_status(args: argparse.Namespace) -> int:
    from bridge.control.client import request

    if args.all:
        return _status_all(args)
    path = _socket_path(args)
    reply = request(path, {"cmd": "status"}, timeout=args.timeout)
    if not reply.get("ok"):
        raise BridgeError(f"status failed: {reply.get('error', 'unknown error')}")
    if args.json:
        print(json.dumps(reply["status"], indent=2, sort_keys=True))
    else:
        sys.stdout.write(format_status(reply["status"]))
    return 0


def _status_all(args: argparse.Namespace) -> int:
    """Every running instance's status: a JSON list (each with "interface"), or one block each."""
    instances = find_instances()
    if args.json:
        entries = []
        for inst in instances:
            entry = dict(inst.status) or {"control_socket": inst.control_socket}
            entry["interface"] = inst.interface
            if inst.error:
                entry["error"] = inst.error
            entries.append(entry)
        print(json.dumps(entries, indent=2, sort_keys=True))
        return 0
    if not instances:
        from bridge.control.wire import NOT_RUNNING_HINT

        raise BridgeError(f"no borescope-bridge daemon answers: {NOT_RUNNING_HINT}")
    for k, inst in enumerate(instances):
        if k:
            sys.stdout.write("\n")
        sys.stdout.write(f"== {inst.name} ({inst.control_socket})\n")
        sys.stdout.write(inst.error + "\n" if inst.error else format_status(inst.status))
    return 0


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """The flags of the client command `name` (snapshot, status or url)."""
    p.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's control socket (default: found in $RUNTIME_DIRECTORY, "
        "$XDG_RUNTIME_DIR/borescope-bridge, /run/borescope-bridge or "
        "${TMPDIR:-/tmp}/borescope-bridge-UID)",
    )
    p.add_argument(
        "--timeout",
        type=_timeout_seconds,
        default=5.0,
        metavar="S",
        help="give up after S seconds (default 5, at most 300)"
        + (
            "; a snapshot whose frame was taken is still saved if the disk is slower, "
            "and the error names its file"
            if name == "snapshot"
            else ""
        ),
    )
    p.add_argument(
        "--interface",
        metavar="IF",
        help="the instance for this network interface, when several borescopes are bridged "
        "(default: the only one running)",
    )
    if name in ("status", "url"):
        p.add_argument(
            "--all",
            action="store_true",
            help="every running instance"
            + (" (with --json: a list, each entry with its interface)" if name == "status" else "")
            + (
                ': one line each, "INTERFACE<tab>URL" ("-": no --interface)'
                if name == "url"
                else ""
            ),
        )
    if name == "status":
        p.add_argument("--json", action="store_true", help="machine-readable output")
    if name == "url":
        p.add_argument(
            "--lan",
            action="store_true",
            help="the address for another device on the network (a phone), not 127.0.0.1",
        )
        p.add_argument("--qr", action="store_true", help="also draw the address as a QR code")
