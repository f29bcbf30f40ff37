# SPDX-License-Identifier: GPL-3.0-or-later
"""Device discovery (``--camera auto`` and doctor) on a fake sysfs/dev tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bridge.camera.loopback import find_camera, list_loopback_devices
from bridge.camera.v4l2 import CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT, DeviceInfo
from bridge.cli.doctor import Context
from bridge.cli.doctor.camera import _loopback_devices
from bridge.errors import CameraError


class FakeTree:
    """A fake root with /sys/class/video4linux and /dev (the layout doctor reads too)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sys = root / "sys/class/video4linux"
        self.dev = root / "dev"
        self.module = root / "sys/module/v4l2loopback"
        self.sys.mkdir(parents=True)
        self.dev.mkdir()

    def add(
        self,
        n: int,
        label: str,
        loopback: bool = True,
        mode: int = 0o660,
        attribute: str = "max_openers",
    ) -> str:
        entry = self.sys / f"video{n}"
        entry.mkdir()
        (entry / "name").write_text(label + "\n")
        if loopback:
            (entry / attribute).write_text("10\n")
        node = self.dev / f"video{n}"
        node.write_bytes(b"")
        node.chmod(mode)
        return str(node)

    def find(self, spec: str = "auto", caps: dict[str, int] | None = None) -> str | None:
        def query(path: str) -> DeviceInfo | None:
            if caps is None or path not in caps:
                return None
            if caps[path] < 0:
                raise OSError(-caps[path], os.strerror(-caps[path]))
            return DeviceInfo("v4l2 loopback", "x", caps[path])

        return find_camera(spec, str(self.sys), str(self.dev), str(self.module), query)


@pytest.fixture
def tree(tmp_path: Path) -> FakeTree:
    return FakeTree(tmp_path)


def test_none_means_no_camera(tree: FakeTree) -> None:
    assert tree.find("none") is None


def test_prefers_borescope_label_even_when_busy(tree: FakeTree) -> None:
    tree.add(0, "Integrated Camera", loopback=False)
    b = tree.add(2, "Dummy video device (0x0000)")
    c = tree.add(7, "Borescope")
    assert [d.path for d in list_loopback_devices(str(tree.sys), str(tree.dev))] == [b, c]
    assert tree.find(caps={c: CAP_VIDEO_CAPTURE}) == c


def test_first_free_loopback_without_label(tree: FakeTree) -> None:
    tree.add(0, "Integrated Camera", loopback=False)
    busy = tree.add(3, "OBS Virtual Camera")
    free = tree.add(10, "Dummy video device (0x0001)")
    # video3 announces CAPTURE only: exclusive_caps=1 with a producer attached.
    assert tree.find(caps={busy: CAP_VIDEO_CAPTURE, free: CAP_VIDEO_OUTPUT}) == free
    # numeric order, not string order: video3 before video10 when both are free
    assert tree.find(caps={busy: CAP_VIDEO_OUTPUT, free: CAP_VIDEO_OUTPUT}) == busy


def test_all_busy_says_so(tree: FakeTree) -> None:
    busy = tree.add(3, "OBS Virtual Camera")
    with pytest.raises(CameraError, match="in use by another producer"):
        tree.find(caps={busy: CAP_VIDEO_CAPTURE})


def test_no_module_says_what_to_run(tree: FakeTree) -> None:
    tree.add(0, "Integrated Camera", loopback=False)
    with pytest.raises(CameraError) as exc:
        tree.find()
    assert "sudo modprobe v4l2loopback exclusive_caps=1 card_label=Borescope" in str(exc.value)


def test_module_without_devices(tree: FakeTree) -> None:
    tree.module.mkdir(parents=True)
    with pytest.raises(CameraError, match="loaded but has no device"):
        tree.find()


def test_permission_denied_names_the_group(tree: FakeTree) -> None:
    if os.geteuid() == 0:
        path = tree.add(4, "Dummy video device (0x0000)")
        with pytest.raises(CameraError, match="usermod -aG video"):
            tree.find(caps={path: -errno.EACCES})
    else:
        tree.add(4, "Borescope", mode=0o000)
        with pytest.raises(CameraError, match="usermod -aG video"):
            tree.find()


def test_explicit_path(tree: FakeTree) -> None:
    path = tree.add(5, "whatever")
    assert tree.find(path) == path
    with pytest.raises(CameraError, match="modprobe v4l2loopback"):
        tree.find(str(tree.dev / "video99"))


def test_doctor_sees_the_devices_the_daemon_picks(tree: FakeTree) -> None:
    """One heuristic: a virtual camera of another driver is neither's, either attribute is."""
    tree.add(0, "Integrated Camera", loopback=False)
    # akvcam and other virtual cameras live under /sys/devices/virtual too, without our attributes
    other = tree.root / "sys/devices/virtual/video4linux/video1"
    other.mkdir(parents=True)
    (other / "name").write_text("akvcam\n")
    (tree.sys / "video1").symlink_to(other)
    (tree.dev / "video1").write_bytes(b"")
    old = tree.add(2, "Dummy video device (0x0000)", attribute="buffers")
    ours = tree.add(5, "Borescope")
    daemon_view = [(d.number, d.label) for d in list_loopback_devices(str(tree.sys), str(tree.dev))]
    assert daemon_view == [(2, "Dummy video device (0x0000)"), (5, "Borescope")]
    assert _loopback_devices(Context(root=tree.root)) == daemon_view
    assert tree.find(caps={old: CAP_VIDEO_OUTPUT}) == ours


# ---- several scopes: one camera each, "Borescope", "Borescope 2", ... -----------------------


def test_instances_take_the_borescope_cameras_in_label_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    from bridge.camera import loopback

    monkeypatch.setattr(loopback, "_HELD", {})
    t = FakeTree(tmp_path)
    t.add(0, "Integrated Webcam")
    second = t.add(1, "Borescope 2")
    first = t.add(2, "Borescope")
    third = t.add(5, "Borescope 3")

    def find() -> str | None:
        return find_camera("auto", str(t.sys), str(t.dev), str(t.module), instance=True)

    # Another instance (another process: another open file) holds "Borescope".
    fd = os.open(first, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert find() == second
        assert find() == second  # ours stays ours when the pipeline asks again
    finally:
        os.close(fd)
    assert find() == second  # the other let go: ours is still ours
    for fd in loopback._HELD.values():
        os.close(fd)
    monkeypatch.setattr(loopback, "_HELD", {})
    assert find() == first  # a new instance: the first free one in label order
    for fd in loopback._HELD.values():
        os.close(fd)
    monkeypatch.setattr(loopback, "_HELD", {})
    others = [os.open(p, os.O_RDONLY) for p in (first, second)]
    try:
        for fd in others:
            fcntl.flock(fd, fcntl.LOCK_EX)
        assert find() == third
        for fd in loopback._HELD.values():
            os.close(fd)
        monkeypatch.setattr(loopback, "_HELD", {})
        held = os.open(third, os.O_RDONLY)
        others.append(held)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CameraError) as exc:
            find()
        assert '"Borescope 4"' in str(exc.value)
        assert "/etc/modprobe.d/borescope-bridge.conf" in str(exc.value)
        assert "sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback" in str(exc.value)
    finally:
        for fd in others:
            os.close(fd)


def test_a_single_daemon_keeps_its_choice(tmp_path: Path) -> None:
    t = FakeTree(tmp_path)
    t.add(0, "Borescope 2")
    one = t.add(1, "Borescope")
    assert t.find() == one
