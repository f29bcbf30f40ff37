# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge doctor`: check everything between the USB plug and the webcam app.

Each check reads the system the way the daemon and the apps will meet it (sysfs, procfs,
/dev, systemctl, modinfo) and returns findings: OK, WARN (works, but something a user would
notice) or FAIL (the camera cannot work this way), each with the one command that fixes it.
The exit status is 0 when nothing FAILs, so scripts can gate on it.

Every file system path hangs off `root` and every external command goes through `runner`,
so tests run the checks against fake trees. The only network traffic is one SETCMD poll to
the borescope, and only when an RTL8152 interface holds an address in the borescope's
subnet: doctor never sends anything on an ordinary network.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bridge.camera.loopback import CARD_LABEL, DEV_ROOT, SYSFS_ROOT, list_loopback_devices
from bridge.core.protocol import DEVICE_IP, EVENT_PORT
from bridge.errors import BridgeError

OK, WARN, FAIL = "OK", "WARN", "FAIL"
DRIVER = "r8152"
USB_ID = ("0bda", "8152")
# What the daemon asks for with SO_RCVBUF; the shipped sysctl file sets 16 MiB.
RMEM_WANTED_BYTES = 8 * 1024 * 1024
SYSCTL_FIX = (
    "sudo sysctl -w net.core.rmem_max=16777216 (permanently: the Debian package or "
    "sudo make install, which ship 60-borescope-bridge.conf in sysctl.d)"
)
UDEV_RULE = "90-borescope-bridge.rules"
UDEV_RULE_DIRS = (
    "etc/udev/rules.d",
    "run/udev/rules.d",
    "usr/lib/udev/rules.d",
    "lib/udev/rules.d",
)
SERVICE = "borescope-bridge"
SNAPSHOT_DIR = "/var/lib/borescope-bridge/snapshots"
PROBE_TIMEOUT_S = 0.5
SIOCGIFADDR = 0x8915

Runner = Callable[[Sequence[str]], tuple[int, str]]
Prober = Callable[[str, int, float], bool]
AddressLookup = Callable[[str], list[str]]


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    check: str
    status: str
    message: str
    fix: str = ""


@dataclass
class Context:
    """Where the checks look; tests replace every field."""

    root: Path = Path("/")
    runner: Runner | None = None
    prober: Prober | None = None
    addresses: AddressLookup | None = None
    device_ip: str = DEVICE_IP
    event_port: int = EVENT_PORT
    probe: bool = True
    probe_timeout_s: float = PROBE_TIMEOUT_S
    # Filled in by check_interfaces, read by the checks after it.
    borescope_ifaces: dict[str, list[str]] = field(default_factory=dict)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def run(self, argv: Sequence[str]) -> tuple[int, str]:
        return (self.runner or run_command)(argv)


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run a command briefly; (127, "") when it does not exist."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return 127, ""
    except (OSError, subprocess.SubprocessError) as exc:
        return 126, str(exc)
    return proc.returncode, proc.stdout


def ipv4_addresses(iface: str) -> list[str]:
    """The interface's primary IPv4 address via SIOCGIFADDR (no netlink, no root)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = struct.pack("256s", iface.encode()[:15])
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
        except OSError:
            return []
    return [socket.inet_ntoa(res[20:24])]


def probe_device(device_ip: str, event_port: int, timeout_s: float) -> bool:
    """One SETCMD poll to the event port; True if a well-formed RETCMD comes back from it."""
    from bridge.core import protocol

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        try:
            s.sendto(protocol.encode_setcmd(0), (device_ip, event_port))
            while True:
                data, addr = s.recvfrom(2048)
                if addr == (device_ip, event_port) and not isinstance(
                    protocol.decode_retcmd(data), protocol.Reject
                ):
                    return True
        except OSError:
            return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


# ---- checks --------------------------------------------------------------------------------


def check_module(ctx: Context) -> list[Finding]:
    """v4l2loopback loaded, else installed, else how to get it."""
    if ctx.path("sys/module/v4l2loopback").is_dir():
        version = _read(ctx.path("sys/module/v4l2loopback/version"))
        return [
            Finding(
                "v4l2loopback", OK, "module loaded" + (f" (version {version})" if version else "")
            )
        ]
    rc, _ = ctx.run(["modinfo", "-F", "version", "v4l2loopback"])
    if rc == 0:
        return [
            Finding(
                "v4l2loopback",
                FAIL,
                "module installed but not loaded",
                "sudo modprobe v4l2loopback (loaded at boot by "
                "/etc/modules-load.d/borescope-bridge.conf)",
            )
        ]
    return [
        Finding(
            "v4l2loopback",
            FAIL,
            "kernel module not installed",
            "sudo apt install v4l2loopback-dkms (Fedora: dnf install v4l2loopback; "
            "Arch: pacman -S v4l2loopback-dkms), then sudo modprobe v4l2loopback",
        )
    ]


def _loopback_devices(ctx: Context) -> list[tuple[int, str]]:
    """(number, card label) of every v4l2loopback video device, sorted by number.

    The same recognition as the daemon's ``--camera auto`` (bridge.camera.loopback), so doctor
    reports
    on the device the daemon will pick.
    """
    devices = list_loopback_devices(str(ctx.path(SYSFS_ROOT)), str(ctx.path(DEV_ROOT)))
    return [(d.number, d.label) for d in devices]


def _exclusive_caps(ctx: Context, number: int, ordinal: int) -> bool | None:
    """The exclusive_caps flag of /dev/video<number>, from the module's parameter arrays."""
    params = ctx.path("sys/module/v4l2loopback/parameters")
    caps = _read(params / "exclusive_caps")
    if caps is None:
        return None
    flags = [c.strip() in ("Y", "1") for c in caps.split(",")]
    nrs_text = _read(params / "video_nr")
    index = ordinal
    if nrs_text:
        nrs = [int(n) for n in nrs_text.split(",") if n.strip().lstrip("-").isdigit()]
        if number in nrs:
            index = nrs.index(number)
    return flags[index] if index < len(flags) else None


def check_camera(ctx: Context) -> list[Finding]:
    """A loopback device labelled Borescope with exclusive_caps, and who may open it."""
    if not ctx.path("sys/module/v4l2loopback").is_dir():
        return []
    devices = _loopback_devices(ctx)
    if not devices:
        return [
            Finding(
                "camera",
                FAIL,
                "v4l2loopback is loaded but has no devices",
                "sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback",
            )
        ]
    ordinal, (number, label) = next(
        ((i, d) for i, d in enumerate(devices) if d[1] == CARD_LABEL), (0, devices[0])
    )
    node = f"/dev/video{number}"
    findings = []
    reload_fix = (
        "sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback "
        "(options from borescope-bridge.conf in /etc/modprobe.d or, from the package, "
        "/lib/modprobe.d)"
    )
    if label == CARD_LABEL:
        findings.append(Finding("camera", OK, f"{node} is labelled {CARD_LABEL!r}"))
    else:
        findings.append(
            Finding(
                "camera",
                WARN,
                f"no loopback device labelled {CARD_LABEL!r}; "
                f"--camera auto will use {node} ({label!r})",
                reload_fix,
            )
        )
    excl = _exclusive_caps(ctx, number, ordinal)
    if excl is True:
        findings.append(
            Finding("exclusive_caps", OK, f"{node} has exclusive_caps=1 (Chrome, Zoom see it)")
        )
    elif excl is False:
        findings.append(
            Finding(
                "exclusive_caps",
                WARN,
                f"{node} has exclusive_caps=0: Chrome-based apps and Zoom will not list it",
                reload_fix,
            )
        )
    findings.append(_check_node_access(ctx, node))
    return findings


def _check_node_access(ctx: Context, node: str) -> Finding:
    path = ctx.path(node)
    try:
        st = path.stat()
    except OSError:
        return Finding("camera access", FAIL, f"{node} does not exist", "sudo udevadm trigger")
    if not stat.S_ISCHR(st.st_mode) and ctx.root == Path("/"):
        return Finding("camera access", FAIL, f"{node} is not a device node", "")
    try:
        import grp

        group = grp.getgrgid(st.st_gid).gr_name
    except (KeyError, ImportError):
        group = str(st.st_gid)
    if os.access(path, os.R_OK | os.W_OK):
        return Finding("camera access", OK, f"{node} (group {group}) can be opened by this user")
    return Finding(
        "camera access",
        WARN,
        f"{node} (group {group}) cannot be opened by this user (the service joins group video; "
        "this only matters for running borescope-bridge yourself)",
        f"sudo usermod -aG {group} $USER, then log in again",
    )


def check_interfaces(ctx: Context) -> list[Finding]:
    """RTL8152 interfaces (driver r8152), their USB ids and IPv4 addresses."""
    base = ctx.path("sys/class/net")
    found: dict[str, list[str]] = {}
    try:
        entries = sorted(base.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        driver = entry / "device" / "driver"
        try:
            name = os.path.basename(os.readlink(driver))
        except OSError:
            continue
        if name == DRIVER:
            found[entry.name] = []
    if not found:
        return [
            Finding(
                "interface",
                WARN,
                "no network interface driven by r8152: is the borescope plugged in?",
                "plug the borescope in, then check: lsusb -d 0bda:8152; sudo dmesg | grep r8152",
            )
        ]
    lookup = ctx.addresses or ipv4_addresses
    net = ipaddress.ip_network(f"{ctx.device_ip}/24", strict=False)
    findings = []
    for iface in found:
        usb = ctx.path(f"sys/class/net/{iface}/device/..")
        ids = (_read(usb / "idVendor"), _read(usb / "idProduct"))
        id_note = (
            "" if ids == USB_ID else f" (USB id {ids[0]}:{ids[1]}, not the borescope's 0bda:8152)"
        )
        addrs = lookup(iface)
        found[iface] = addrs
        in_net = [a for a in addrs if ipaddress.ip_address(a) in net]
        if in_net:
            ctx.borescope_ifaces[iface] = in_net
            findings.append(
                Finding("interface", OK, f"{iface}: r8152, {', '.join(in_net)}{id_note}")
            )
        elif addrs:
            findings.append(
                Finding(
                    "interface",
                    WARN,
                    f"{iface}: r8152 with {', '.join(addrs)}, not in {net}: an ordinary USB "
                    f"Ethernet adapter, or not the borescope's network{id_note}",
                )
            )
        else:
            findings.append(
                Finding(
                    "interface",
                    WARN,
                    f"{iface}: r8152 without an IPv4 address yet "
                    f"(the borescope's DHCP server gives one in {net}){id_note}",
                    f"nmcli device connect {iface} (NetworkManager) "
                    f"or sudo networkctl reconfigure {iface}",
                )
            )
    return findings


def check_reachability(ctx: Context) -> list[Finding]:
    """One poll to the device, only when an r8152 interface sits in its subnet."""
    if not ctx.borescope_ifaces or not ctx.probe:
        return []
    prober = ctx.prober or probe_device
    where = f"{ctx.device_ip}:{ctx.event_port}"
    if prober(ctx.device_ip, ctx.event_port, ctx.probe_timeout_s):
        return [Finding("device", OK, f"the borescope answers at {where}")]
    return [
        Finding(
            "device",
            WARN,
            f"no borescope answers at {where}: not a borescope, still booting, or another "
            "program is polling it",
            "wait a few seconds and run doctor again; replug the borescope",
        )
    ]


def _default_routes(ctx: Context) -> list[tuple[str, int]]:
    """(interface, metric) of each IPv4 default route, lowest metric first."""
    text = _read(ctx.path("proc/net/route"))
    routes = []
    for line in (text or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        iface, dest, _gw, flags, _ref, _use, metric, mask = cols[:8]
        try:
            up = int(flags, 16) & 0x1
        except ValueError:
            continue
        if dest == "00000000" and mask == "00000000" and up:
            routes.append((iface, int(metric)))
    return sorted(routes, key=lambda r: r[1])


def check_default_route(ctx: Context) -> list[Finding]:
    """The borescope link must not carry the default route (it has no internet behind it)."""
    routes = _default_routes(ctx)
    bad = [r for r in routes if r[0] in ctx.borescope_ifaces]
    if not bad:
        return [Finding("default route", OK, "the default route does not use the borescope link")]
    iface = bad[0][0]
    fix = (
        f'sudo nmcli connection modify "$(nmcli -g GENERAL.CONNECTION device show {iface})" '
        f"ipv4.never-default yes && sudo nmcli device reapply {iface}; with systemd-networkd: "
        "install 50-borescope-bridge.network (UseGateway=no) from "
        "/usr/share/doc/borescope-bridge/examples (package) or share/borescope-bridge"
    )
    status = FAIL if routes[0][0] == iface else WARN
    detail = (
        "carries your default route: internet traffic goes to the borescope"
        if status == FAIL
        else ("has a default route (a lower-metric one wins for now)")
    )
    return [Finding("default route", status, f"{iface} {detail}", fix)]


def check_rmem(ctx: Context) -> list[Finding]:
    """net.core.rmem_max high enough for a 1080p frame burst."""
    text = _read(ctx.path("proc/sys/net/core/rmem_max"))
    if text is None or not text.isdigit():
        return [Finding("rmem_max", WARN, "cannot read net.core.rmem_max", SYSCTL_FIX)]
    value = int(text)
    if value >= RMEM_WANTED_BYTES:
        return [Finding("rmem_max", OK, f"net.core.rmem_max = {value}")]
    return [
        Finding(
            "rmem_max",
            WARN,
            f"net.core.rmem_max = {value} caps the receive buffer below {RMEM_WANTED_BYTES}: "
            "large frames will be lost",
            SYSCTL_FIX,
        )
    ]


def check_service(ctx: Context) -> list[Finding]:
    """The systemd service's state; tolerates machines without systemd."""
    if not ctx.path("run/systemd/system").is_dir():
        return [
            Finding(
                "service",
                WARN,
                "systemd is not running here: nothing starts the bridge on plug-in",
                "borescope-bridge run",
            )
        ]
    rc, out = ctx.run(["systemctl", "is-active", SERVICE])
    state = out.strip() or ("unknown" if rc else "active")
    if state in ("active", "reloading", "activating"):
        return [Finding("service", OK, f"{SERVICE}.service is {state}")]
    if state == "failed":
        return [
            Finding(
                "service",
                FAIL,
                f"{SERVICE}.service failed",
                f"journalctl -b -u {SERVICE}; then sudo systemctl reset-failed {SERVICE} && "
                f"sudo systemctl start {SERVICE}",
            )
        ]
    if ctx.borescope_ifaces:
        return [
            Finding(
                "service",
                WARN,
                f"{SERVICE}.service is {state} although a borescope link is up",
                f"sudo systemctl start {SERVICE}",
            )
        ]
    return [Finding("service", OK, f"{SERVICE}.service is {state} (udev starts it on plug-in)")]


def check_udev_rule(ctx: Context) -> list[Finding]:
    """The rule that starts the service on plug-in."""
    for d in UDEV_RULE_DIRS:
        p = ctx.path(f"{d}/{UDEV_RULE}")
        if p.is_file():
            return [Finding("udev rule", OK, f"/{d}/{UDEV_RULE} installed")]
    return [
        Finding(
            "udev rule",
            WARN,
            "udev rule not installed: the service will not start on plug-in",
            "sudo apt install ./borescope-bridge_VERSION_all.deb (make deb builds it), "
            "or sudo make install (from the source tree)",
        )
    ]


def check_config(ctx: Context) -> list[Finding]:
    """/etc/borescope-bridge/config.toml parses and every key is valid."""
    path = ctx.path("etc/borescope-bridge/config.toml")
    if not path.is_file():
        return [Finding("config", OK, "no /etc/borescope-bridge/config.toml (built-in defaults)")]
    from bridge.app import config
    from bridge.errors import ConfigError

    try:
        config.read_config_file(str(path))
    except ConfigError as exc:
        return [Finding("config", FAIL, str(exc), "sudoedit /etc/borescope-bridge/config.toml")]
    return [Finding("config", OK, "/etc/borescope-bridge/config.toml is valid")]


def check_snapshots(ctx: Context) -> list[Finding]:
    """Whether this user can read the service's snapshots (the borescope-bridge group)."""
    path = ctx.path(SNAPSHOT_DIR)
    if not path.is_dir():
        return []
    if os.access(path, os.R_OK | os.X_OK):
        return [Finding("snapshots", OK, f"{SNAPSHOT_DIR} is readable by this user")]
    return [
        Finding(
            "snapshots",
            WARN,
            f"{SNAPSHOT_DIR} is not readable by this user",
            f"sudo usermod -aG {SERVICE} $USER, then log in again",
        )
    ]


def _module_version(ctx: Context) -> tuple[int, int, int] | None:
    """sysfs (0.13 and later), else the QUERYCAP version of a loopback device, else None."""
    from bridge.camera.usage import MODULE_VERSION_FILE, module_version

    version_file = str(ctx.path(MODULE_VERSION_FILE))
    found = module_version(None, version_file)
    for number, _ in [] if found else _loopback_devices(ctx):
        try:
            fd = os.open(ctx.path(f"dev/video{number}"), os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            found = module_version(fd, version_file)
        finally:
            os.close(fd)
        if found:
            break
    return found


NEWER_MODULE = (
    "v4l2loopback 0.14 or later (Debian 13 ships 0.15.0: "
    "https://packages.debian.org/trixie/v4l2loopback-dkms; or build the release from "
    "https://github.com/v4l2loopback/v4l2loopback), then sudo modprobe -r v4l2loopback && "
    "sudo modprobe v4l2loopback"
)
ONE_READER = "one app at a time can stream the camera (a second one gets 'device busy')"


def check_module_version(ctx: Context) -> list[Finding]:
    """The loaded v4l2loopback release and what it means for us (bridge.camera.usage)."""
    if not ctx.path("sys/module/v4l2loopback").is_dir():
        return []
    from bridge.camera.usage import counts_every_reader, version_str

    version = _module_version(ctx)
    # every release since 0.13 has the sysfs version attribute: without it, it is 0.12 or older
    name = f"v4l2loopback {'0.12.x or older' if version is None else version_str(version)}"
    if version is None or version[:2] < (0, 13):
        return [
            Finding(
                "module version",
                WARN,
                f"{name} cannot tell who watches: raw mode decodes every frame even while "
                "no app uses the camera (about 10% of a core at 720p30)",
                NEWER_MODULE,
            )
        ]
    if not counts_every_reader(version):
        return [
            Finding(
                "module version",
                WARN,
                f"{name} counts only readers that stream, not apps that read(): decoding "
                f"cannot pause while nobody watches, so it never does; {ONE_READER}",
                NEWER_MODULE,
            )
        ]
    return [
        Finding(
            "module version",
            OK,
            f"{name} reports its readers: decoding pauses while no app watches; {ONE_READER}",
        )
    ]


CHECKS: tuple[Callable[[Context], list[Finding]], ...] = (
    check_module,
    check_module_version,
    check_camera,
    check_interfaces,
    check_reachability,
    check_default_route,
    check_rmem,
    check_service,
    check_udev_rule,
    check_config,
    check_snapshots,
)


def run_checks(ctx: Context) -> list[Finding]:
    """All checks in order; interface findings feed the reachability and route checks."""
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(ctx))
    return findings


# ---- command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `borescope-bridge doctor`."""
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--device-ip",
        help=f"the borescope's address (default: device_ip from the config file, else {DEVICE_IP})",
    )
    parser.add_argument(
        "--event-port",
        type=int,
        help=f"its event port (default: event_port from the config file, else {EVENT_PORT})",
    )
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="send nothing to the device, only look at this machine",
    )
    parser.add_argument(
        "--root",
        default="/",
        help="look at sysfs, procfs, /dev and /etc under this directory (tests)",
    )


def format_text(findings: Sequence[Finding]) -> str:
    """Aligned report, the fix under each finding that is not OK."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        lines.append(f"{f.status:<4}  {f.check:<{width}}  {f.message}")
        if f.fix and f.status != OK:
            lines.append(f"      {'':<{width}}  fix: {f.fix}")
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    lines.append(f"{fails} failed, {warns} warnings, {len(findings) - fails - warns} ok")
    return "\n".join(lines) + "\n"


def _configured(root: Path) -> dict[str, object]:
    """The device address and port the service would use: the config file's, where valid."""
    from bridge.app import config

    path = root / "etc/borescope-bridge/config.toml"
    try:
        return config.read_config_file(str(path)) if path.is_file() else {}
    except BridgeError:
        return {}  # check_config reports the broken file


def main(args: argparse.Namespace) -> int:
    """Run every check, print the report; 0 when nothing FAILs."""
    root = Path(getattr(args, "root", "/") or "/")
    configured = _configured(root)
    ctx = Context(
        root=root,
        device_ip=getattr(args, "device_ip", None) or str(configured.get("device_ip", DEVICE_IP)),
        event_port=getattr(args, "event_port", None)
        or int(str(configured.get("event_port", EVENT_PORT))),
        probe=not getattr(args, "no_probe", False),
    )
    findings = run_checks(ctx)
    failed = any(f.status == FAIL for f in findings)
    if getattr(args, "json", False):
        sys.stdout.write(
            json.dumps({"ok": not failed, "findings": [asdict(f) for f in findings]}, indent=2)
            + "\n"
        )
    else:
        sys.stdout.write(format_text(findings))
    return 1 if failed else 0
