# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge doctor` against fake sysfs/procfs/dev/etc trees.

The trees mimic what the kernel shows for an RTL8152 borescope and a v4l2loopback device,
so each check is exercised for its OK, WARN and FAIL answers without hardware. The only
real network use is the device probe, against a responder on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bridge.cli import doctor
from bridge.cli.doctor import FAIL, OK, WARN, Context, Finding, network, service
from bridge.core import protocol

ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)


def _route(iface: str, dest: str, mask: str, metric: int, gw: str = "00000000") -> str:
    return f"{iface}\t{dest}\t{gw}\t0003\t0\t0\t{metric}\t{mask}\t0\t0\t0\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


class Tree:
    """A fake root: a healthy machine by default, each part changeable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[list[str]] = []
        self.probes: list[tuple[str, int]] = []
        self.addrs: dict[str, list[str]] = {}
        self.answer = True
        self.commands: dict[str, tuple[int, str]] = {"systemctl": (0, "active\n")}

    def module(
        self,
        label: str = "Borescope",
        number: int = 42,
        excl: str = "Y",
        version: str | None = "0.15.0",
    ) -> None:
        mod = self.root / "sys/module/v4l2loopback"
        if version is not None:  # 0.12.x has no version attribute
            _write(mod / "version", version + "\n")
        _write(mod / "parameters/exclusive_caps", f"{excl},N,N,N\n")
        _write(mod / "parameters/video_nr", f"{number},-1,-1,-1\n")
        dev = self.root / f"sys/devices/virtual/video4linux/video{number}"
        _write(dev / "name", label + "\n")
        _write(dev / "max_openers", "10\n")
        _link(self.root / f"sys/class/video4linux/video{number}", dev)
        node = self.root / f"dev/video{number}"
        _write(node, "")
        node.chmod(0o660)

    def real_webcam(self, number: int = 0) -> None:
        dev = (
            self.root
            / f"sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/video4linux/video{number}"
        )
        _write(dev / "name", "Integrated Camera\n")
        _link(self.root / f"sys/class/video4linux/video{number}", dev)

    def nic(
        self, name: str, driver: str = "r8152", ids: tuple[str, str] = ("0bda", "8152")
    ) -> None:
        usbdev = self.root / f"sys/devices/pci0000:00/0000:00:14.0/usb1/1-1-{name}"
        _write(usbdev / "idVendor", ids[0] + "\n")
        _write(usbdev / "idProduct", ids[1] + "\n")
        intf = usbdev / "1-1:1.0"
        drv = self.root / f"sys/bus/usb/drivers/{driver}"
        drv.mkdir(parents=True, exist_ok=True)
        _link(intf / "driver", drv)
        netdev = intf / "net" / name
        netdev.mkdir(parents=True)
        _link(netdev / "device", intf)
        _link(self.root / f"sys/class/net/{name}", netdev)

    def routes(self, *lines: str) -> None:
        _write(self.root / "proc/net/route", ROUTE_HEADER + "".join(lines))

    def rmem(self, value: int) -> None:
        _write(self.root / "proc/sys/net/core/rmem_max", f"{value}\n")

    def systemd(self) -> None:
        (self.root / "run/systemd/system").mkdir(parents=True, exist_ok=True)

    def udev_rule(self) -> None:
        _write(self.root / "etc/udev/rules.d/90-borescope-bridge.rules", "# rule\n")

    def wifi_hook(self, directory: str = "etc/NetworkManager/dispatcher.d") -> Path:
        hook = self.root / directory / "90-borescope-bridge"
        _write(hook, "#!/bin/sh\n")
        hook.chmod(0o755)
        return hook

    def healthy(self) -> Tree:
        self.module()
        self.nic("enx00e04c680001")
        self.addrs["enx00e04c680001"] = ["192.168.10.100"]
        self.routes(
            _route("wlan0", "00000000", "00000000", 600, gw="0100A8C0"),
            _route("enx00e04c680001", "000AA8C0", "00FFFFFF", 100),
        )
        self.rmem(16777216)
        self.systemd()
        self.udev_rule()
        self.wifi_hook()
        return self

    def runner(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(argv))
        return self.commands.get(" ".join(argv), self.commands.get(argv[0], (127, "")))

    def prober(self, ip: str, port: int, timeout: float) -> bool:
        self.probes.append((ip, port))
        return self.answer

    def context(self, **kw: object) -> Context:
        return Context(
            root=self.root,
            runner=self.runner,
            prober=self.prober,
            addresses=lambda iface: self.addrs.get(iface, []),
            **kw,  # type: ignore[arg-type]
        )

    def findings(self, **kw: object) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for f in doctor.run_checks(self.context(**kw)):
            out.setdefault(f.check, []).append(f)
        return out


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def _status(found: dict[str, list[Finding]], check: str) -> str:
    return found[check][0].status


def test_healthy_machine_is_all_ok(tree: Tree) -> None:
    found = tree.healthy().findings()
    statuses = {f.check: f.status for fs in found.values() for f in fs}
    assert set(statuses.values()) == {OK}, statuses
    for check in (
        "v4l2loopback",
        "module version",
        "camera",
        "exclusive_caps",
        "camera access",
        "interface",
        "device",
        "default route",
        "rmem_max",
        "service",
        "udev rule",
        "WiFi scopes",
        "config",
    ):
        assert check in statuses
    assert "/dev/video42" in found["camera"][0].message
    assert tree.probes == [("192.168.10.123", 50000)]


def test_module_not_installed_says_how_to_get_it(tree: Tree) -> None:
    tree.commands["modinfo"] = (1, "")
    found = tree.findings()
    f = found["v4l2loopback"][0]
    assert f.status == FAIL
    assert "v4l2loopback-dkms" in f.fix
    assert ["modinfo", "-F", "version", "v4l2loopback"] in tree.calls
    assert "camera" not in found


def test_module_installed_not_loaded(tree: Tree) -> None:
    tree.commands["modinfo"] = (0, "0.12.7\n")
    f = tree.findings()["v4l2loopback"][0]
    assert f.status == FAIL
    assert f.fix.startswith("sudo modprobe v4l2loopback")


def test_wrong_label_and_no_exclusive_caps_warn(tree: Tree) -> None:
    tree.real_webcam(0)
    tree.module(label="Dummy video device (0x0000)", number=5, excl="N")
    found = tree.findings()
    assert _status(found, "camera") == WARN
    assert "/dev/video5" in found["camera"][0].message
    assert _status(found, "exclusive_caps") == WARN
    assert "modprobe" in found["exclusive_caps"][0].fix


def test_exclusive_caps_follows_video_nr_order(tree: Tree) -> None:
    tree.healthy()
    params = tree.root / "sys/module/v4l2loopback/parameters"
    (params / "video_nr").write_text("43,42,-1\n")
    (params / "exclusive_caps").write_text("Y,N,N\n")
    assert _status(tree.findings(), "exclusive_caps") == WARN
    (params / "exclusive_caps").write_text("N,Y,N\n")
    assert _status(tree.findings(), "exclusive_caps") == OK


def test_loaded_module_without_devices_fails(tree: Tree) -> None:
    _write(tree.root / "sys/module/v4l2loopback/version", "0.12.7\n")
    tree.real_webcam(0)
    assert _status(tree.findings(), "camera") == FAIL


def test_no_r8152_means_no_probe(tree: Tree) -> None:
    tree.healthy()
    tree.nic("eth1", driver="e1000e")
    for p in (tree.root / "sys/class/net").iterdir():
        if p.name.startswith("enx"):
            p.unlink()
    found = tree.findings()
    assert _status(found, "interface") == WARN
    assert "plugged in" in found["interface"][0].message
    assert "device" not in found
    assert tree.probes == []


def test_r8152_outside_borescope_subnet_is_never_probed(tree: Tree) -> None:
    tree.healthy()
    tree.addrs["enx00e04c680001"] = ["10.0.0.7"]
    found = tree.findings()
    assert _status(found, "interface") == WARN
    assert "ordinary" in found["interface"][0].message
    assert tree.probes == []


def test_r8152_without_address_suggests_dhcp(tree: Tree) -> None:
    tree.healthy()
    tree.addrs.clear()
    f = tree.findings()["interface"][0]
    assert f.status == WARN
    assert "nmcli device connect enx00e04c680001" in f.fix
    assert tree.probes == []


def test_other_usb_id_is_named(tree: Tree) -> None:
    tree.healthy()
    tree.nic("enx2", ids=("17ef", "720c"))
    tree.addrs["enx2"] = ["192.168.1.5"]
    msgs = [f.message for f in tree.findings()["interface"]]
    assert any("17ef:720c" in m for m in msgs)
    assert any(m.startswith("enx00e04c680001") and "USB id" not in m for m in msgs)


def test_silent_device_warns(tree: Tree) -> None:
    tree.healthy()
    tree.answer = False
    found = tree.findings()
    assert _status(found, "device") == WARN
    assert "192.168.10.123:50000" in found["device"][0].message


def test_no_probe_flag_sends_nothing(tree: Tree) -> None:
    tree.healthy()
    found = tree.findings(probe=False)
    assert "device" not in found
    assert tree.probes == []


def test_default_route_through_borescope_fails(tree: Tree) -> None:
    tree.healthy()
    tree.routes(
        _route("enx00e04c680001", "00000000", "00000000", 100, gw="010AA8C0"),
        _route("wlan0", "00000000", "00000000", 600, gw="0100A8C0"),
    )
    f = tree.findings()["default route"][0]
    assert f.status == FAIL
    assert "never-default yes" in f.fix
    assert "UseGateway=no" in f.fix


def test_secondary_default_route_through_borescope_warns(tree: Tree) -> None:
    tree.healthy()
    tree.routes(
        _route("wlan0", "00000000", "00000000", 50, gw="0100A8C0"),
        _route("enx00e04c680001", "00000000", "00000000", 100, gw="010AA8C0"),
    )
    assert _status(tree.findings(), "default route") == WARN


@pytest.mark.parametrize(("value", "status"), [(212992, WARN), (8388608, OK), (16777216, OK)])
def test_rmem_max(tree: Tree, value: int, status: str) -> None:
    tree.healthy()
    tree.rmem(value)
    f = tree.findings()["rmem_max"][0]
    assert f.status == status
    assert str(value) in f.message
    if status == WARN:
        assert "net.core.rmem_max=16777216" in f.fix
        assert f.message.startswith("receive buffer: 208 KiB of the 8 MiB asked for")
    else:
        assert f.message.startswith("receive buffer: 8 MiB, as asked")


def test_service_failed_is_a_failure(tree: Tree) -> None:
    tree.healthy()
    tree.commands["systemctl"] = (3, "failed\n")
    f = tree.findings()["service"][0]
    assert f.status == FAIL
    assert "journalctl" in f.fix
    assert ["systemctl", "is-active", "borescope-bridge"] in tree.calls


def test_service_inactive_with_borescope_up_warns(tree: Tree) -> None:
    tree.healthy()
    tree.commands["systemctl"] = (3, "inactive\n")
    [f] = tree.findings()["service"]
    assert f.status == WARN
    # The unit udev starts for that link is the instance, not the single daemon.
    [iface] = [
        c[2].split("@", 1)[1]
        for c in tree.calls
        if c[:2] == ["systemctl", "is-active"] and "@" in c[2]
    ]
    assert f.fix == f"sudo systemctl start borescope-bridge@{iface}"
    tree.addrs.clear()
    assert _status(tree.findings(), "service") == OK


def test_the_instance_of_a_borescope_link_is_what_counts(tree: Tree) -> None:
    tree.healthy()
    tree.commands["systemctl"] = (3, "inactive\n")  # the single daemon, and any other unit
    tree.findings()
    [unit] = [c[2] for c in tree.calls if c[:2] == ["systemctl", "is-active"] and "@" in c[2]]
    tree.commands[f"systemctl is-active {unit}"] = (0, "active\n")
    [f] = tree.findings()["service"]
    assert (f.status, f.message) == (OK, f"{unit}.service is active")
    tree.commands[f"systemctl is-active {unit}"] = (3, "failed\n")
    [f] = tree.findings()["service"]
    assert f.status == FAIL and f"journalctl -b -u {unit}" in f.fix


def test_no_systemd_is_tolerated(tree: Tree) -> None:
    tree.healthy()
    (tree.root / "run/systemd/system").rmdir()
    assert _status(tree.findings(), "service") == WARN
    assert not any(c[0] == "systemctl" for c in tree.calls)


def test_udev_rule_missing_warns(tree: Tree) -> None:
    tree.healthy()
    (tree.root / "etc/udev/rules.d/90-borescope-bridge.rules").unlink()
    assert _status(tree.findings(), "udev rule") == WARN
    _write(tree.root / "usr/lib/udev/rules.d/90-borescope-bridge.rules", "")
    assert _status(tree.findings(), "udev rule") == OK


def test_wifi_hook_where_the_running_network_manager_looks(tree: Tree) -> None:
    tree.healthy()  # every unit "active": NetworkManager runs, the hook is in its directory
    [f] = tree.findings()["WiFi scopes"]
    assert (f.status, f.message) == (
        OK,
        "NetworkManager runs /etc/NetworkManager/dispatcher.d/90-borescope-bridge",
    )
    hook = tree.root / "etc/NetworkManager/dispatcher.d/90-borescope-bridge"
    hook.chmod(0o644)  # NetworkManager runs only executable hooks
    [f] = tree.findings()["WiFi scopes"]
    assert f.status == WARN and "will not start its instance" in f.message
    assert "make install" in f.fix
    tree.wifi_hook("usr/lib/NetworkManager/dispatcher.d")  # where the package puts it
    assert _status(tree.findings(), "WiFi scopes") == OK

    # A headless box: systemd-networkd, with or without networkd-dispatcher.
    tree.commands["systemctl is-active NetworkManager"] = (3, "inactive\n")
    tree.commands["systemctl is-active networkd-dispatcher"] = (4, "inactive\n")
    [f] = tree.findings()["WiFi scopes"]
    assert f.status == WARN and f.fix.startswith("sudo apt install networkd-dispatcher")
    del tree.commands["systemctl is-active networkd-dispatcher"]
    [f] = tree.findings()["WiFi scopes"]
    assert f.status == WARN and "networkd-dispatcher runs no borescope-bridge hook" in f.message
    tree.wifi_hook("usr/lib/networkd-dispatcher/routable.d")
    [f] = tree.findings()["WiFi scopes"]
    assert (f.status, f.message) == (
        OK,
        "networkd-dispatcher runs /usr/lib/networkd-dispatcher/routable.d/90-borescope-bridge",
    )
    tree.commands["systemctl is-active systemd-networkd"] = (3, "inactive\n")
    [f] = tree.findings()["WiFi scopes"]
    assert f.status == OK and "sudo systemctl start borescope-bridge@IF" in f.message


def test_invalid_config_fails_naming_the_key(tree: Tree) -> None:
    tree.healthy()
    _write(tree.root / "etc/borescope-bridge/config.toml", "rotate = 45\n")
    f = tree.findings()["config"][0]
    assert f.status == FAIL
    assert "rotate" in f.message and "45" in f.message


def test_main_json_and_exit_status(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.healthy()
    (tree.root / "run/systemd/system").rmdir()
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    rc = doctor.main(parser.parse_args(["--root", str(tree.root), "--json", "--no-probe"]))
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert report["ok"] is True
    assert {f["check"] for f in report["findings"]} >= {"v4l2loopback", "camera", "rmem_max"}
    assert all(set(f) == {"check", "status", "message", "fix"} for f in report["findings"])

    (tree.root / "sys/module/v4l2loopback/version").unlink()
    for p in sorted((tree.root / "sys/module").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (tree.root / "sys/module").rmdir()
    rc = doctor.main(parser.parse_args(["--root", str(tree.root), "--no-probe"]))
    text = capsys.readouterr().out
    assert rc == 1
    assert "FAIL" in text and "fix:" in text
    assert text.rstrip().splitlines()[-1].startswith("1 failed")


@pytest.fixture
def responder() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A fake borescope event port on 127.0.0.1 that answers SETCMD with RETCMD."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    seen: list[bytes] = []

    def serve() -> None:
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            return
        seen.append(data)
        counter = protocol.decode_setcmd(data)
        if isinstance(counter, int):
            sock.sendto(protocol.encode_retcmd(counter, 0), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock, seen
    thread.join(3)
    sock.close()


def test_probe_device_gets_an_answer(responder: tuple[socket.socket, list[bytes]]) -> None:
    sock, seen = responder
    port = sock.getsockname()[1]
    assert network.probe_device("127.0.0.1", port, 2.0) is True
    assert isinstance(protocol.decode_setcmd(seen[0]), int)


def test_probe_device_silence_is_false() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        assert network.probe_device("127.0.0.1", sock.getsockname()[1], 0.2) is False
    finally:
        sock.close()


def test_snapshot_folder_access(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.healthy()
    assert "snapshots" not in tree.findings()
    snaps = tree.root / "var/lib/borescope-bridge/snapshots"
    snaps.mkdir(parents=True)
    assert _status(tree.findings(), "snapshots") == OK
    # As a user outside the group (root passes every access check, so pretend).
    real_access = os.access
    monkeypatch.setattr(
        service.os, "access", lambda p, mode: False if Path(p) == snaps else real_access(p, mode)
    )
    f = tree.findings()["snapshots"][0]
    assert f.status == WARN
    assert "usermod -aG borescope-bridge" in f.fix


def test_main_takes_the_device_address_from_the_config_unless_a_flag_says(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service pointed elsewhere by config.toml is diagnosed at that address, not the default."""
    tree.healthy()
    _write(tree.root / "etc/borescope-bridge/config.toml", 'device_ip = "192.168.20.123"\n')
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)

    def interface_message(argv: list[str]) -> str:
        doctor.main(parser.parse_args(["--root", str(tree.root), "--json", "--no-probe", *argv]))
        report = json.loads(capsys.readouterr().out)
        return next(f["message"] for f in report["findings"] if f["check"] == "interface")

    assert "192.168.20.0/24" in interface_message([])
    assert "192.168.30.0/24" in interface_message(["--device-ip", "192.168.30.1"])


@pytest.mark.parametrize(
    ("version", "status", "words"),
    [
        # 0.12.x: no sysfs version (and QUERYCAP fails on the fake node, a plain file)
        (None, WARN, "0.12.x or older cannot tell who watches"),
        ("0.12.7", WARN, "cannot tell who watches"),
        ("0.13.2", WARN, "not apps that read()"),
        ("0.15.0", OK, "decoding pauses while no app watches"),
    ],
)
def test_module_version_and_its_known_problems(
    tree: Tree, version: str | None, status: str, words: str
) -> None:
    tree.healthy()
    vfile = tree.root / "sys/module/v4l2loopback/version"
    if version is None:
        vfile.unlink()
    else:
        vfile.write_text(version + "\n")
    f = tree.findings()["module version"][0]
    assert f.status == status and words in f.message, f
    if status == WARN:
        assert "0.14 or later" in f.fix and (version or "0.12.x") in f.message


# ---- v4l2loopback-dkms installed, no module for the running kernel (issue 22) ----------------

KVER = "6.1.0-99-amd64"


def _dkms_without_module(tree: Tree, **commands: tuple[int, str]) -> Tree:
    """The state after a kernel update: the package is installed, built for the old kernel."""
    tree.commands.update(
        {
            "modinfo": (1, ""),
            "dpkg-query": (0, "install ok installed"),
            "uname": (0, KVER + "\n"),
            "dkms": (0, "v4l2loopback/0.12.7, 6.1.0-18-amd64, x86_64: installed\n"),
            "dpkg": (0, "arm64\n"),
            "apt-cache": (
                0,
                f"linux-headers-{KVER}:\n  Installed: (none)\n  Candidate: 6.1.99-1\n",
            ),
            "mokutil": (0, "SecureBoot disabled\n"),
        }
    )
    tree.commands.update(commands)
    _write(tree.root / f"boot/config-{KVER}", "CONFIG_VIDEO_DEV=m\n")
    return tree


def _module_finding(tree: Tree) -> Finding:
    [f] = tree.findings()["v4l2loopback"]
    assert f.status == FAIL
    return f


def test_dkms_without_headers_names_the_kernel_and_the_headers_package(tree: Tree) -> None:
    f = _module_finding(_dkms_without_module(tree))
    assert f"no v4l2loopback module for the running kernel {KVER}" in f.message
    assert "dkms built it for 6.1.0-18-amd64" in f.message
    assert f"linux-headers-{KVER} is missing" in f.message
    assert f.fix.startswith(f"sudo apt install linux-headers-{KVER} && sudo dkms autoinstall")
    assert "apt install v4l2loopback-dkms" not in f.fix  # following that would do nothing
    assert "mokutil" not in f.fix
    assert ["dpkg-query", "-W", "-f=${Status}", "v4l2loopback-dkms"] in tree.calls
    assert ["apt-cache", "policy", f"linux-headers-{KVER}"] in tree.calls


def test_dkms_with_headers_needs_only_autoinstall(tree: Tree) -> None:
    (tree.root / f"lib/modules/{KVER}/build").mkdir(parents=True)
    f = _module_finding(_dkms_without_module(tree))
    assert f.fix.startswith(f"sudo dkms autoinstall -k {KVER} && sudo modprobe v4l2loopback")
    assert "make.log" in f.fix


def test_secure_boot_adds_the_mok_enrolment(tree: Tree) -> None:
    f = _module_finding(_dkms_without_module(tree, mokutil=(0, "SecureBoot enabled\n")))
    assert f.fix.startswith(f"sudo apt install linux-headers-{KVER}")
    assert "sudo mokutil --import /var/lib/dkms/mok.pub" in f.fix and "reboot" in f.fix


def test_a_kernel_without_a_headers_package_says_so(tree: Tree) -> None:
    no_candidate = (0, f"linux-headers-{KVER}:\n  Installed: (none)\n  Candidate: (none)\n")
    f = _module_finding(_dkms_without_module(tree, **{"apt-cache": no_candidate}))
    assert f"there is no package linux-headers-{KVER}" in f.message
    assert "did not come from the distribution" in f.message
    assert "boot a kernel it was built for (6.1.0-18-amd64)" in f.fix
    assert "sudo apt install linux-image-arm64 linux-headers-arm64" in f.fix
    assert "--camera none" in f.fix


def test_a_kernel_without_video4linux_cannot_have_the_module(tree: Tree) -> None:
    _dkms_without_module(tree)
    _write(tree.root / f"boot/config-{KVER}", "# CONFIG_VIDEO_DEV is not set\n")
    f = _module_finding(tree)
    assert "no video4linux support" in f.message
    assert "linux-headers-" + KVER not in f.fix  # headers would not help
    assert "linux-image-arm64" in f.fix


def test_without_the_dkms_package_the_advice_is_to_install_it(tree: Tree) -> None:
    _dkms_without_module(tree, **{"dpkg-query": (1, "")})
    f = _module_finding(tree)
    assert f.message == "kernel module not installed"
    assert f.fix.startswith("sudo apt install v4l2loopback-dkms")


def test_installed_not_loaded_under_secure_boot_mentions_the_key(tree: Tree) -> None:
    tree.commands.update({"modinfo": (0, "0.12.7\n"), "mokutil": (0, "SecureBoot enabled\n")})
    f = _module_finding(tree)
    assert f.fix.startswith("sudo modprobe v4l2loopback")
    assert "Key was rejected by service" in f.fix and "mokutil --import" in f.fix
