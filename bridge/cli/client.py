# SPDX-License-Identifier: GPL-3.0-or-later
"""The commands that talk to a running daemon over its control socket: snapshot, status, url,
open, record."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from bridge.cli.command import command_line
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

RECORD_EXAMPLES = """\
examples:
  borescope-bridge record start
      start recording the borescope's video; prints the file it goes to
  borescope-bridge record stop
      stop it; prints the finished file (Matroska, the scope's own JPEG frames)
  borescope-bridge record status --json
      whether a recording runs, its name, duration and frames

Recordings go to /var/lib/borescope-bridge/recordings for the service, ~/Videos/Borescope
for your own `run` (--recordings-dir); one stops by itself at --record-max-bytes or
--record-max-seconds. The web page's Record button and the scope's video key do the same.
exit status: 0 with the file's path on stdout; 1 with the reason on stderr."""

URL_EXAMPLES = """\
examples:
  borescope-bridge url
      the address of the live view (picture, snapshot button, recent snapshots); to open it
      on this machine use `borescope-bridge open`, which keeps the token off the process list
  borescope-bridge url --lan --qr
      the address a phone on the same network uses, as a QR code for its camera
  borescope-bridge url --socket /run/user/1000/borescope-bridge/control.sock
      the page of a daemon started with `run` by a user (or by `demo`)

  borescope-bridge url --new-token
      make a new access token: every old address, open page and script token stops working

The address contains the page's access token: share it only with people who may see the
borescope. The page listens on 127.0.0.1 unless `run --http` (config key http) says otherwise."""

OPEN_EXAMPLES = """\
examples:
  borescope-bridge open
      open the live view in your default browser (through xdg-open)
  borescope-bridge open --lan
      the same with the machine's network address, as a phone would use it

The browser is given a one-time code (valid once, within 60 s), never the access token: a
browser's command line is readable by every user of the machine (ps). The page then keeps the
token for its address, as if opened from `borescope-bridge url`'s."""

# Seconds to wait for xdg-open; most return at once, a few run the browser until it closes.
XDG_OPEN_WAIT_S = 10.0


def not_running_hint() -> str:
    """What to start when no daemon answers; never the demo while one runs."""
    from bridge.app.paths import demo_control_socket
    from bridge.control.client import is_listening

    demo = demo_control_socket()
    if os.path.exists(demo) and is_listening(demo):
        return f"a demo is running with its socket at {demo}: leave out --socket, or pass that one"
    cmd = command_line()
    return (
        f"nothing is running. Without a borescope, start the demo: `{cmd} demo` (in a source "
        f"tree: `make demo`); with one, plug it in (the service starts by itself: "
        f"`systemctl status 'borescope-bridge*'`) or run `{cmd} run`"
    )


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

        # one scope (or a demo): as ever, without asking first
        return find_socket(None, candidates, not_running_hint())
    return pick(find_instances(), interface).control_socket


def _socket_path(args: argparse.Namespace) -> str:
    return socket_for(args.socket, getattr(args, "interface", None))


def _request(path: str, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
    from bridge.control.client import request

    return request(path, msg, timeout, not_running_hint())


def _is_demo(path: str) -> bool:
    from bridge.app.paths import demo_control_socket

    return os.path.abspath(path) == os.path.abspath(demo_control_socket())


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
    path = _socket_path(args)
    reply = _request(
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
    from bridge.web.urls import qr_text

    if args.all:
        return _url_all(args)
    path = _socket_path(args)
    cmd = "new-token" if args.new_token else "url"
    reply = _request(path, {"cmd": cmd}, timeout=args.timeout)
    if not reply.get("ok"):
        raise BridgeError(f"{cmd} failed: {reply.get('error', 'unknown error')}")
    if args.new_token:
        print(
            "made a new access token: every old address, open page and script token is "
            "refused from now on",
            file=sys.stderr,
        )
    url = str(reply["url"])
    loopback = str(reply["host"]).startswith("127.")
    if args.lan:
        if loopback and _is_demo(path):
            raise BridgeError(
                "the demo's page listens on 127.0.0.1 only, so a phone cannot reach it: stop "
                f"the demo (Ctrl-C) and start it again with `{command_line()} demo --lan`, "
                "which listens on the network and prints the phone's address and its QR code"
            )
        url = _lan_url(reply, f"token={reply['token']}")
    elif args.qr and loopback:
        print(
            f"warning: {url.split('?')[0]} works on this machine only: a phone that scans this "
            "code reaches itself, not this machine; for a phone use "
            f"`{command_line()} url --lan --qr`",
            file=sys.stderr,
        )
    if args.qr:
        sys.stdout.write(qr_text(url))
    print(url)
    return 0


def _lan_url(reply: dict[str, Any], query: str) -> str:
    """The page's address for another device, with `query`; the warning and the other
    candidates on stderr; BridgeError when the page is on loopback only."""
    from bridge.web.urls import cleartext_warning, lan_urls, loopback_only_advice

    host, port = str(reply["host"]), int(reply["port"])
    if host.startswith("127."):
        raise BridgeError(loopback_only_advice(port))
    warning = cleartext_warning(host, port, reply.get("token_file"))
    print(f"warning: {warning}", file=sys.stderr)
    urls = lan_urls(host, port, query)
    if not urls:
        raise BridgeError(
            "this machine has no network address besides loopback: connect it to the "
            "network the phone is on"
        )
    for other in urls[1:]:
        print(f"(also: {other})", file=sys.stderr)
    return urls[0]


def cmd_open(args: argparse.Namespace) -> int:
    """Open the page in the default browser with a one-time code, never the token."""

    xdg_open = shutil.which("xdg-open")
    if xdg_open is None:
        raise BridgeError(
            "xdg-open is not installed, so the default browser cannot be started: install it "
            "(sudo apt install xdg-utils), or start your browser yourself and paste the "
            "address that `borescope-bridge url` prints into its address bar"
        )
    path = _socket_path(args)
    reply = _request(path, {"cmd": "code"}, timeout=args.timeout)
    if not reply.get("ok"):
        raise BridgeError(f"open failed: {reply.get('error', 'unknown error')}")
    query = f"code={reply['code']}"
    if args.lan:
        url = _lan_url(reply, query)
    else:
        host = "127.0.0.1" if reply["host"] in ("0.0.0.0", "127.0.0.1") else reply["host"]
        url = f"http://{host}:{reply['port']}/?{query}"
    try:
        opener = subprocess.Popen([xdg_open, url], stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BridgeError(f"cannot run {xdg_open}: {exc.strerror or exc}") from None
    opened = (
        f"opened {url.partition('?')[0]} in your browser (its address carries a one-time "
        "code: it works once, within 60 s)"
    )
    try:
        status = opener.wait(XDG_OPEN_WAIT_S)
    except subprocess.TimeoutExpired:
        print(opened, file=sys.stderr)  # it runs the browser itself: the page is open
        return 0
    if status != 0:
        raise BridgeError(
            f"xdg-open could not open the page (exit status {status}); is a default browser "
            "set? (xdg-settings set default-web-browser firefox-esr.desktop)"
        )
    print(opened, file=sys.stderr)
    return 0


def _url_all(args: argparse.Namespace) -> int:
    """One line per running instance: its interface ("-" for none), a tab, its page's address."""
    from bridge.control.client import request

    instances = find_instances()
    if not instances:
        raise BridgeError(f"no borescope-bridge daemon answers: {not_running_hint()}")
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


def _resolutions_text(entries: list[dict[str, Any]]) -> str:
    """The scope's own resolution list, e.g. ``1280x720@20, 640x480``."""
    return ", ".join(
        f"{e.get('width')}x{e.get('height')}" + ("" if e.get("fps") is None else f"@{e['fps']}")
        for e in entries
    )


def _model_text(s: dict[str, Any]) -> str:
    """The found model and its framing, or that the search goes on."""
    model, framing = s.get("model"), s.get("framing")
    if framing is None:
        return "not found yet (looking at every known address and port)"
    if model == framing:
        return f"framing {framing} (the model cannot be told apart)"
    return f"{model} (framing {framing})"


def format_status(s: dict[str, Any]) -> str:
    """Human-readable status, aligned, one fact per line."""
    from bridge.app.settings import DEFAULT_RCVBUF_BYTES
    from bridge.device.sockets import describe_receive_buffer

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
    rec = s.get("record")
    if rec:
        rec_text = f"{rec['path']} ({rec['frames']} frames" + (
            f", stopped: {rec['error']})" if rec.get("error") else ")"
        )
    else:
        rec_text = "off"
    rb = s.get("receive_buffer_bytes")
    asked = s.get("receive_buffer_requested") or DEFAULT_RCVBUF_BYTES
    rb_text = "-" if rb is None else describe_receive_buffer(int(rb) // 2, int(asked))
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
        ("model", _model_text(s)),
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
        ("record file", rec_text),
        ("recording", recording_text(s.get("recording"))),
        ("web page", web_text),
        ("receive buffer", rb_text),
        ("uptime", f"{_fmt(s.get('uptime_s'))} s"),
    ]
    if s.get("snapshot_error"):
        rows.insert(10, ("snapshot error", s["snapshot_error"]))
    at = 4  # after "model": what the scope said about itself, where it said it
    if s.get("battery_percent") is not None:
        rows.insert(at, ("battery", f"{s['battery_percent']} %"))
    if s.get("resolutions"):
        rows.insert(at, ("scope offers", _resolutions_text(s["resolutions"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows) + "\n"


def _clock(seconds: Any) -> str:
    s = int(seconds or 0)
    return f"{s // 60}:{s % 60:02d}"


def recording_text(r: dict[str, Any] | None) -> str:
    """One line on the .mkv recording: running (name, time, frames), or the last one."""
    if not r:
        return "off"
    if r.get("running"):
        text = f"{r['path']} ({_clock(r.get('duration_s'))}, {r.get('frames', 0)} frames"
        return text + (f", {r['dropped']} dropped)" if r.get("dropped") else ")")
    text = "not recording"
    if r.get("name"):
        text += f" (last: {r['path']}, {_clock(r.get('duration_s'))}, {r.get('frames')} frames)"
    if r.get("last_error"):
        text += f"; stopped: {r['last_error']}"
    return text


def cmd_record(args: argparse.Namespace) -> int:
    path = _socket_path(args)
    reply = _request(path, {"cmd": "record", "action": args.action}, timeout=args.timeout)
    if args.action == "status":
        if not reply.get("ok"):
            raise BridgeError(f"record status failed: {reply.get('error', 'unknown error')}")
        if args.json:
            print(json.dumps(reply["recording"], indent=2, sort_keys=True))
        else:
            print(recording_text(reply["recording"]))
        return 0
    if not reply.get("ok"):
        raise BridgeError(f"record {args.action} failed: {reply.get('error', 'unknown error')}")
    if reply.get("pending"):
        print(f"warning: {reply.get('error')}", file=sys.stderr)
    if reply.get("reason"):
        print(f"note: it had stopped by itself: {reply['reason']}", file=sys.stderr)
    print(reply["path"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.all:
        return _status_all(args)
    path = _socket_path(args)
    reply = _request(path, {"cmd": "status"}, timeout=args.timeout)
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
        raise BridgeError(f"no borescope-bridge daemon answers: {not_running_hint()}")
    for k, inst in enumerate(instances):
        if k:
            sys.stdout.write("\n")
        sys.stdout.write(f"== {inst.name} ({inst.control_socket})\n")
        sys.stdout.write(inst.error + "\n" if inst.error else format_status(inst.status))
    return 0


def add_arguments(p: argparse.ArgumentParser, name: str) -> None:
    """The flags of the client command `name` (snapshot, status, url, open or record)."""
    p.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's control socket (default: the one running daemon found among the "
        "service's ($RUNTIME_DIRECTORY, /run/borescope-bridge), your own `run`'s and your "
        "demo's ($XDG_RUNTIME_DIR/borescope-bridge, else ${TMPDIR:-/tmp}/borescope-bridge-UID))",
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
    if name == "record":
        p.add_argument(
            "action",
            choices=("start", "stop", "status"),
            help="start a recording, stop it (prints the finished file), or say what runs",
        )
        p.add_argument("--json", action="store_true", help="record status: machine-readable")
    if name in ("url", "open"):
        p.add_argument(
            "--lan",
            action="store_true",
            help="the address for another device on the network (a phone), not 127.0.0.1",
        )
    if name == "url":
        p.add_argument("--qr", action="store_true", help="also draw the address as a QR code")
        p.add_argument(
            "--new-token",
            action="store_true",
            help="first make a new access token (kept in the token file): every old address, "
            "open page and script token stops working; then print the new address",
        )
