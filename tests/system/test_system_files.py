# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped system files, checked with the real tools where they run and parsed otherwise.

- The unit: `systemd-analyze verify` (clean) and `systemd-analyze security --offline=true`
  (rated 2.0 or lower), plus the settings the daemon relies on.
- The udev rule: `udevadm verify` where systemd >= 254 has it; a parser of our own always
  (keys, operators, labels, the required matches, no RUN+=, no interface names); and a real
  `udevadm test` run inside a throw-away network namespace.
- modprobe.d, modules-load.d, sysctl.d, sysusers.d, the .network file and the config example.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from support.paths import REPO
from support.units import unit_limits, unit_settings

UNIT = REPO / "systemd" / "borescope-bridge.service"
RULE = REPO / "udev" / "90-borescope-bridge.rules"
MODPROBE = REPO / "systemd" / "borescope-bridge.modprobe.conf"
MODULES_LOAD = REPO / "systemd" / "borescope-bridge.modules-load.conf"
SYSCTL = REPO / "systemd" / "borescope-bridge.sysctl.conf"
SYSUSERS = REPO / "systemd" / "borescope-bridge.sysusers.conf"
NETWORK = REPO / "systemd" / "50-borescope-bridge.network"
CONFIG_EXAMPLE = REPO / "config.example.toml"
COMMITTED_EXECSTART = "/usr/local/bin/borescope-bridge run"
MAX_EXPOSURE = 2.0

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (apt install systemd)",
)


def verifiable_copy(unit_text: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at a binary that exists on this machine.

    `systemd-analyze verify` fails on an ExecStart whose binary is missing, and the test
    machine has no /usr/local/bin/borescope-bridge (make install makes it). Only the path
    changes; everything else is verified as committed.
    """
    assert f"\nExecStart={COMMITTED_EXECSTART}\n" in unit_text
    copy = tmp_path / "borescope-bridge.service"
    copy.write_text(
        unit_text.replace(f"ExecStart={COMMITTED_EXECSTART}", "ExecStart=/bin/true run")
    )
    return copy


def exposure(unit: Path) -> float:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert m, proc.stdout + proc.stderr
    return float(m.group(1))


# ---- the unit ------------------------------------------------------------------------------


@needs_systemd_analyze
def test_unit_verifies_clean(tmp_path: Path) -> None:
    copy = verifiable_copy(UNIT.read_text(), tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


@needs_systemd_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is reported."""
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes")
    copy = verifiable_copy(broken, tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ProtectHomme" in proc.stderr


@needs_systemd_analyze
def test_unit_security_rating(tmp_path: Path) -> None:
    rating = exposure(UNIT)
    assert rating <= MAX_EXPOSURE, f"systemd-analyze security rates the unit {rating}"


@needs_systemd_analyze
def test_security_rating_parse_sees_a_weak_unit(tmp_path: Path) -> None:
    """Without its hardening the same unit rates far worse, so the parse above is real."""
    kept = []
    in_hardening = False
    for line in UNIT.read_text().splitlines():
        if line.startswith("NoNewPrivileges="):
            in_hardening = True
        if line.startswith("[Install]"):
            in_hardening = False
        if not in_hardening:
            kept.append(line)
    weak = tmp_path / "borescope-bridge.service"
    weak.write_text("\n".join(kept) + "\n")
    assert exposure(weak) > 5.0


def test_unit_settings_the_daemon_relies_on() -> None:
    s = unit_settings(UNIT.read_text())
    svc, unit = s["Service"], s["Unit"]
    assert svc["Type"] == ["notify"]
    assert svc["NotifyAccess"] == ["main"]
    assert svc["ExecStart"] == [COMMITTED_EXECSTART]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["Restart"] == ["on-failure"]
    assert re.fullmatch(r"\d+s?", svc["WatchdogSec"][0])
    assert "StartLimitIntervalSec" in unit and "StartLimitBurst" in unit
    assert "StartLimitBurst" not in svc, "start limits belong in [Unit]"
    assert svc["StateDirectory"] == ["borescope-bridge"]
    assert svc["RuntimeDirectory"] == ["borescope-bridge"]
    assert svc["User"] == ["borescope-bridge"]
    assert "video" in svc["SupplementaryGroups"][0].split()
    assert svc["CapabilityBoundingSet"] == [""]
    assert svc["AmbientCapabilities"] == [""]
    assert svc["DevicePolicy"] == ["closed"]
    assert svc["DeviceAllow"] == ["char-video4linux rw"]
    assert set(svc["RestrictAddressFamilies"][0].split()) <= {"AF_INET", "AF_UNIX", "AF_NETLINK"}
    assert svc["SystemCallFilter"][0] == "@system-service"
    # The daemon needs the host's network and the video group: these would break it.
    for forbidden in ("PrivateNetwork", "PrivateUsers", "DynamicUser", "PrivateDevices"):
        assert forbidden not in svc
    # Not bound to the interface: the camera must outlive a brief unplug.
    assert "BindsTo" not in unit
    allow = svc["IPAddressAllow"][0].split()
    assert "192.168.10.0/24" in allow and "localhost" in allow
    # Every address of the model table, and of AIR-Look's home-router subnet only its address.
    import ipaddress

    from bridge.core.models import MODELS

    nets = [ipaddress.ip_network(a) for a in allow if a != "localhost"]
    for m in MODELS:
        assert any(ipaddress.ip_address(m.address) in n for n in nets), m.name
    assert "192.168.0.0/24" not in allow
    assert svc["IPAddressDeny"] == ["any"]


def test_unit_limits_leave_room_for_every_bounded_buffer() -> None:
    """MemoryMax/TasksMax stop a runaway, never the bounded worst case of a real stream."""
    from bridge.app.config import MAX_FRAME_BYTES_CAP
    from bridge.capture.recorder import MAX_QUEUED_FRAMES
    from bridge.capture.recordings import MAX_QUEUED_BYTES
    from bridge.core.reassembly import Reassembler

    tasks, memory = unit_limits()
    assert 64 <= tasks <= 1024
    reassembly = Reassembler(max_frame_bytes=MAX_FRAME_BYTES_CAP).memory_bound
    recording = MAX_QUEUED_FRAMES * 300 * 1024  # a --record queue full of large 1080p frames
    recording += MAX_QUEUED_BYTES  # and the .mkv recording's queue beside it
    baseline = 128 << 20  # Python, numpy, the decoders (a real run measures ~50 MiB)
    assert reassembly + recording + baseline < memory <= 1 << 30


def test_sysusers_matches_unit(tmp_path: Path) -> None:
    lines = [
        shlex.split(line)
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0][:2] == ["u", "borescope-bridge"]
    svc = unit_settings(UNIT.read_text())["Service"]
    assert svc["User"] == [lines[0][1]] and svc["Group"] == [lines[0][1]]
    if shutil.which("systemd-sysusers"):
        (tmp_path / "etc").mkdir()
        body = "\n".join(" ".join(shlex.quote(w) for w in words) for words in lines)
        proc = subprocess.run(
            ["systemd-sysusers", f"--root={tmp_path}", "--dry-run", "--inline", body],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "borescope-bridge" in proc.stderr + proc.stdout


# ---- the udev rule -------------------------------------------------------------------------

MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
    "DRIVERS", "ATTR", "ATTRS", "ENV", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST",
    "SYSCTL", "SYMLINK",
}  # fmt: skip
ASSIGN_KEYS = {
    "ENV", "TAG", "GOTO", "LABEL", "OWNER", "GROUP", "MODE", "SYMLINK", "OPTIONS", "IMPORT",
    "RUN", "NAME", "ATTR", "SYSCTL", "SECLABEL", "WAIT_FOR",
}  # fmt: skip
TOKEN = re.compile(r'\s*([A-Z_]+)(\{[^}]*\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def parse_rule_line(line: str) -> list[tuple[str, str, str, str]]:
    """(key, {attr}, operator, value) tokens of one rule line; AssertionError if malformed."""
    tokens = []
    pos = 0
    while pos < len(line):
        m = TOKEN.match(line, pos)
        assert m, f"cannot parse udev rule at {line[pos:]!r}"
        key, attr, op, value, _ = m.groups()
        attr = (attr or "").strip("{}")
        if op in ("==", "!="):
            assert key in MATCH_KEYS, f"{key} is not a match key"
        else:
            assert key in ASSIGN_KEYS, f"{key} cannot be assigned"
        tokens.append((key, attr, op, value))
        pos = m.end()
    return tokens


def rule_lines(text: str) -> list[list[tuple[str, str, str, str]]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            assert not line.endswith("\\"), "keep each rule on one line"
            out.append(parse_rule_line(line))
    return out


def widened(text: str, driver: str) -> str:
    """What the end-to-end test does to the rule: replace the one device-match line.

    Equivalent to: sed -E 's/^ENV\\{ID_NET_DRIVER\\}==.*$/ENV{ID_NET_DRIVER}=="DRIVER",
    GOTO="borescope_bridge_match"/'
    """
    out, n = re.subn(
        r"(?m)^ENV\{ID_NET_DRIVER\}==.*$",
        f'ENV{{ID_NET_DRIVER}}=="{driver}", GOTO="borescope_bridge_match"',
        text,
    )
    assert n == 1, "the rule must have exactly one ENV{ID_NET_DRIVER} match line"
    return out


def test_rule_parses_and_labels_resolve() -> None:
    rules = rule_lines(RULE.read_text())
    labels = [v for toks in rules for k, _, _, v in toks if k == "LABEL"]
    gotos = [v for toks in rules for k, _, _, v in toks if k == "GOTO"]
    assert len(labels) == len(set(labels))
    assert set(gotos) <= set(labels), "every GOTO needs its LABEL"


def check_rule(text: str) -> None:
    """The rule's requirements (issue 4); AssertionError names the broken one."""
    rules = rule_lines(text)
    flat = [t for toks in rules for t in toks]
    assert not [t for t in flat if t[0] == "RUN"], "udev must not start the daemon (RUN+=)"
    assert not [t for t in flat if t[0] in ("NAME", "KERNEL", "KERNELS", "DEVPATH")], (
        "never match an interface name: it differs between systems and changes on rename"
    )
    assert not [t for t in flat if t[0] == "ACTION" and t[2] == "==" and t[3] == "add"], (
        'ACTION=="add" loses SYSTEMD_WANTS after the interface rename; use !="remove"'
    )
    assert ("ACTION", "", "==", "remove") in flat
    assert ("SUBSYSTEM", "", "!=", "net") in flat
    (match,) = [toks for toks in rules if ("ENV", "ID_NET_DRIVER", "==", "r8152") in toks]
    assert ("ATTRS", "idVendor", "==", "0bda") in match
    assert ("ATTRS", "idProduct", "==", "8152") in match
    assert ("TAG", "", "+=", "systemd") in flat
    assert ("ENV", "SYSTEMD_WANTS", "+=", "borescope-bridge@$name.service") in flat


def test_rule_matches_narrowly_and_never_runs_anything() -> None:
    check_rule(RULE.read_text())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('TAG+="systemd"', 'TAG+="systemd", RUN+="/usr/bin/systemctl start borescope-bridge"'),
        ('ACTION=="remove", GOTO', 'ACTION!="add", GOTO'),
        ('ACTION=="remove", GOTO', 'ACTION=="add", KERNEL=="enx*", GOTO'),
        ('ATTRS{idVendor}=="0bda", ', ""),
        ('ENV{SYSTEMD_WANTS}+="borescope-bridge@$name', 'ENV{SYSTEMD_WANTS}+="other@$name'),
        ("borescope-bridge@$name.service", "borescope-bridge@%k.service"),
        ('GOTO="borescope_bridge_match"', 'GOTO="borescope_bridge_match" TAG+="x"'),
    ],
)
def test_rule_checks_reject_the_anti_patterns(old: str, new: str) -> None:
    """The checks above can fail: each broken variant of the rule is refused."""
    text = RULE.read_text()
    assert old in text
    with pytest.raises(AssertionError):
        check_rule(text.replace(old, new, 1))


@pytest.mark.skipif(shutil.which("udevadm") is None, reason="udevadm not installed")
def test_udevadm_verify_where_available(tmp_path: Path) -> None:
    probe = subprocess.run(["udevadm", "verify", "--help"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("udevadm verify needs systemd >= 254 (the parser tests above cover it)")
    proc = subprocess.run(
        ["udevadm", "verify", "--no-summary", str(RULE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _udevadm_test_in_netns(rules_dir: Path, action: str) -> str:
    """`udevadm test` on a veth interface inside a new network and mount namespace.

    udevadm test (systemd 252) really renames the interface it tests, so it must never
    run against the host's interfaces; in a fresh namespace only our veth exists. /sys is
    remounted so it shows that namespace, and our rules directory replaces /etc/udev/rules.d
    (the distribution's rules in /usr/lib stay). The namespace gets its own empty /run with
    the /run/udev that udevadm writes to: a machine where udev never ran has no /run/udev,
    and the host's udev database must neither help nor be touched. Likewise /etc/udev/rules.d
    is made if the distribution left it out.
    """
    script = (
        "set -e; mount -t sysfs sysfs /sys; mount -t tmpfs -o mode=0755 tmpfs /run; "
        "mkdir /run/udev; "
        "if [ ! -d /etc/udev/rules.d ]; then mount -t tmpfs tmpfs /etc/udev; "
        "mkdir /etc/udev/rules.d; fi; "
        f"mount --bind {shlex.quote(str(rules_dir))} /etc/udev/rules.d; "
        "ip link add bstest0 type veth peer name bstest1; "
        f"udevadm test --action={action} /sys/class/net/bstest0 2>&1"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ID_NET_DRIVER=veth" in proc.stdout or action == "remove", proc.stdout
    return proc.stdout


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "udevadm", "ip")):
        return False
    return (
        subprocess.run(
            ["unshare", "--mount", "--net", "ip", "link", "add", "x0", "type", "veth"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


@pytest.mark.skipif(not _can_unshare(), reason="needs root, unshare, ip, udevadm and veth")
def test_rule_with_real_udev(tmp_path: Path) -> None:
    """The real rule leaves a veth alone; the widened test copy wants the service.

    The widened copy is exactly what the end-to-end test installs, so this shows the rule's
    structure (GOTOs, labels, ACTION handling, the SYSTEMD_WANTS line) works in real udev.
    """
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(RULE, real / RULE.name)
    assert "SYSTEMD_WANTS" not in _udevadm_test_in_netns(real, "add")

    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / RULE.name).write_text(widened(RULE.read_text(), "veth"))
    for action in ("add", "change", "move"):
        out = _udevadm_test_in_netns(wide, action)
        assert "SYSTEMD_WANTS=borescope-bridge@bstest0.service" in out, (action, out)
    assert "SYSTEMD_WANTS" not in _udevadm_test_in_netns(wide, "remove")


@pytest.mark.skipif(not _can_unshare(), reason="needs root, unshare, ip, udevadm and veth")
def test_rule_names_the_instance_after_the_rename(tmp_path: Path) -> None:
    """udev renames usb0 to enx<MAC> in the same "add" event our rule sees: the instance must
    carry the final name (the device unit it binds to), on "add" and on the "move" after it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    # What 80-net-setup-link.rules does for a USB adapter (NAME= from the .link policy).
    (rules / "85-rename.rules").write_text(
        'SUBSYSTEM=="net", KERNEL=="bstest0", NAME="bsrenamed0"\n'
    )
    (rules / RULE.name).write_text(widened(RULE.read_text(), "veth"))
    for action in ("add", "move"):
        out = _udevadm_test_in_netns(rules, action)
        assert "SYSTEMD_WANTS=borescope-bridge@bsrenamed0.service" in out, (action, out)


# ---- the other files -----------------------------------------------------------------------


def test_modprobe_options() -> None:
    lines = [
        shlex.split(line)
        for line in MODPROBE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 1
    words = lines[0]
    assert words[:2] == ["options", "v4l2loopback"]
    opts = dict(w.split("=", 1) for w in words[2:])
    devices = int(opts["devices"])
    labels = opts["card_label"].split(",")
    nrs = [int(n) for n in opts["video_nr"].split(",")]
    caps = opts["exclusive_caps"].split(",")
    assert labels[0] == "Borescope"
    assert len(labels) == len(nrs) == len(caps) == devices >= 2, "leave a device for OBS"
    assert "OBS Virtual Camera" in labels
    assert set(caps) == {"1"}, "Chrome and Zoom need exclusive_caps=1"
    assert {"Borescope 2", "Borescope 3"} <= set(labels), "a second and third scope need a camera"
    assert labels.index("OBS Virtual Camera") == 1, "OBS keeps /dev/video43 from earlier releases"
    assert min(nrs) >= 10, "keep /dev/video0.. for real webcams"


def test_modules_load() -> None:
    entries = [
        line.strip()
        for line in MODULES_LOAD.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", ";"))
    ]
    assert entries == ["v4l2loopback"]


def test_sysctl_raises_rmem_max() -> None:
    values = {}
    for line in SYSCTL.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, sep, value = line.partition("=")
            assert sep, line
            values[key.strip()] = value.strip()
    assert set(values) == {"net.core.rmem_max"}
    assert int(values["net.core.rmem_max"]) > 8 * 1024 * 1024


def test_network_file_is_opt_in_and_never_takes_the_gateway() -> None:
    cp = configparser.ConfigParser(strict=True)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(NETWORK.read_text())
    assert cp["Match"]["Driver"] == "r8152"
    assert cp["DHCPv4"]["UseGateway"] == "no"
    assert "OPT-IN" in NETWORK.read_text()


def test_config_example_covers_every_key_and_validates(tmp_path: Path) -> None:
    from bridge.app import config

    text = CONFIG_EXAMPLE.read_text()
    assert tomllib.loads(text) == {}, "the example changes nothing until a key is uncommented"
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = .*)$", r"\1", text)
    values = tomllib.loads(uncommented)
    assert set(values) == set(config.KEYS)
    path = tmp_path / "config.toml"
    path.write_text(uncommented)
    parsed = config.read_config_file(str(path))
    loaded = config.load(str(path))
    assert loaded.device_ip == parsed["device_ip"] == "192.168.10.123"
    # The example shows the built-in defaults.
    defaults = config.Config()
    for key in ("device_ip", "stream_port", "event_port", "camera", "rotate", "flip", "format"):
        assert parsed[key] == getattr(defaults, key), key


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    commands = [
        line.strip() for line in text.splitlines() if line.strip().startswith(("make", "exec make"))
    ]
    assert commands == ["exec make test </dev/null"]
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def test_license_is_gpl3() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in text
    assert len(text) > 30000


# ---- several scopes: the template unit and the NetworkManager dispatcher script ---------------

TEMPLATE = REPO / "systemd" / "borescope-bridge@.service"
DISPATCHER = REPO / "nm" / "90-borescope-bridge"
# What an instance may differ in from the plain unit; everything else (the hardening, limits,
# identity) must be the same.
INSTANCE_KEYS = {("Unit", "Description"), ("Unit", "Requisite"), ("Unit", "After"),
                 ("Unit", "Conflicts"), ("Service", "ExecStart"),
                 ("Service", "RuntimeDirectory")}  # fmt: skip


@needs_systemd_analyze
def test_template_verifies_clean_and_rates_like_the_plain_unit(tmp_path: Path) -> None:
    text = TEMPLATE.read_text().replace(
        f"ExecStart={COMMITTED_EXECSTART} --interface %i", "ExecStart=/bin/true run --interface %i"
    )
    (tmp_path / TEMPLATE.name).write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "borescope-bridge@usb0.service"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).strip() == "", proc.stderr
    instance = tmp_path / "borescope-bridge@usb0.service"
    instance.write_text(text)
    assert exposure(instance) <= MAX_EXPOSURE


def test_template_is_the_plain_unit_per_interface() -> None:
    plain, inst = unit_settings(UNIT.read_text()), unit_settings(TEMPLATE.read_text())
    for section in ("Unit", "Service", "Install"):
        for key in set(plain.get(section, {})) | set(inst.get(section, {})):
            if (section, key) not in INSTANCE_KEYS:
                assert plain[section].get(key) == inst[section].get(key), (section, key)
    unit, svc = inst["Unit"], inst["Service"]
    assert svc["ExecStart"] == [f"{COMMITTED_EXECSTART} --interface %i"]
    # The directory the daemon's own default names for an instance: /run/borescope-bridge/IF.
    assert svc["RuntimeDirectory"] == ["borescope-bridge/%i"]
    # Started only while its interface exists; never stopped with it (no BindsTo=): the camera
    # must outlive a brief unplug, as the plain unit's does; --linger ends the instance.
    assert unit["Requisite"] == ["sys-subsystem-net-devices-%i.device"]
    assert "BindsTo" not in unit
    after = " ".join(unit["After"]).split()
    assert "sys-subsystem-net-devices-%i.device" in after and "borescope-bridge.service" in after
    assert unit["Conflicts"] == ["borescope-bridge.service"]


def _run_hook(tmp_path: Path, hook: Path, args: list[str], env: dict[str, str]) -> list[str]:
    """Run the hook with fake systemctl and logger on PATH; the systemctl calls it made."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit 0\n')
    (fake / "logger").write_text("#!/bin/sh\nexit 0\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    proc = subprocess.run(
        [str(hook), *args],
        env={"PATH": f"{fake}:/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


def _dispatch(tmp_path: Path, action: str, **env: str) -> list[str]:
    """Run the hook as NetworkManager does: the interface and the action as arguments."""
    return _run_hook(tmp_path, DISPATCHER, [env.pop("IFACE", "wlan0"), action], env)


def test_dispatcher_starts_an_instance_on_a_scopes_network_only(tmp_path: Path) -> None:
    assert os.access(DISPATCHER, os.X_OK)
    start = ["start --no-block borescope-bridge@wlan0.service"]
    assert _dispatch(tmp_path, "up", IP4_GATEWAY="192.168.10.123") == start
    assert _dispatch(tmp_path, "dhcp4-change", DHCP4_DHCP_SERVER_IDENTIFIER="192.168.10.123") == (
        start
    )
    # An AIR-Look otoscope's network (its access point at 192.168.0.10).
    assert _dispatch(tmp_path, "up", IP4_GATEWAY="192.168.0.10") == start
    # The home network (192.168.0.1 beside it too), or no gateway at all: nothing is started.
    assert _dispatch(tmp_path, "up", IP4_GATEWAY="192.168.1.1") == []
    assert _dispatch(tmp_path, "up", IP4_GATEWAY="192.168.0.1") == []
    assert _dispatch(tmp_path, "up") == []
    # Leaving: the instance is stopped (the fake systemctl says it is active).
    assert _dispatch(tmp_path, "down") == [
        "-q is-active borescope-bridge@wlan0.service",
        "stop --no-block borescope-bridge@wlan0.service",
    ]
    # A name a unit cannot carry as it is: left alone.
    assert _dispatch(tmp_path, "up", IFACE="wl-an0", IP4_GATEWAY="192.168.10.123") == []
    assert _dispatch(tmp_path, "up", IFACE="x;reboot", IP4_GATEWAY="192.168.10.123") == []


def _networkd_dispatch(tmp_path: Path, state: str, lease: str | None) -> list[str]:
    """Run the hook as networkd-dispatcher does (no arguments; IFACE and STATE in the
    environment), with networkd's lease file for wlan0 (interface index 7) holding `lease`."""
    sys_net, leases = tmp_path / "sys", tmp_path / "leases"
    (sys_net / "wlan0").mkdir(parents=True, exist_ok=True)
    (sys_net / "wlan0" / "ifindex").write_text("7\n")
    leases.mkdir(exist_ok=True)
    (leases / "7").unlink(missing_ok=True)
    if lease is not None:
        (leases / "7").write_text(lease)
    script = DISPATCHER.read_text()
    for line, path in (
        ("NETWORKD_LEASES=/run/systemd/netif/leases", leases),
        ("SYS_NET=/sys/class/net", sys_net),
    ):
        assert script.count(f"\n{line}\n") == 1, line
        script = script.replace(f"\n{line}\n", f"\n{line.split('=')[0]}={path}\n")
    hook = tmp_path / "hook"
    hook.write_text(script)
    hook.chmod(0o755)
    return _run_hook(tmp_path, hook, [], {"IFACE": "wlan0", "STATE": state})


def test_networkd_hook_reads_the_lease_and_follows_the_link_state(tmp_path: Path) -> None:
    start = ["start --no-block borescope-bridge@wlan0.service"]
    # A lease as systemd-networkd writes it: the scope's own DHCP server, with or without a router.
    scope = "# This is private data. Do not parse.\nADDRESS=192.168.10.100\nNETMASK=255.255.255.0\n"
    assert _networkd_dispatch(tmp_path, "routable", scope + "SERVER_ADDRESS=192.168.10.123\n") == (
        start
    )
    assert _networkd_dispatch(tmp_path, "routable", "ROUTER=192.168.0.10 192.168.0.11\n") == start
    # A home network's lease, or none at all (a static address): nothing is started.
    home = "ADDRESS=192.168.1.20\nROUTER=192.168.1.1\nSERVER_ADDRESS=192.168.1.1\n"
    assert _networkd_dispatch(tmp_path, "routable", home) == []
    assert _networkd_dispatch(tmp_path, "routable", None) == []
    # The states between say nothing; losing the link stops the instance.
    for state in ("carrier", "degraded", "configured", "dormant"):
        assert _networkd_dispatch(tmp_path, state, scope + "SERVER_ADDRESS=192.168.10.123\n") == []
    stop = [
        "-q is-active borescope-bridge@wlan0.service",
        "stop --no-block borescope-bridge@wlan0.service",
    ]
    assert _networkd_dispatch(tmp_path, "no-carrier", None) == stop
    assert _networkd_dispatch(tmp_path, "off", None) == stop
