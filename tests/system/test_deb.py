# SPDX-License-Identifier: GPL-3.0-or-later
"""`make deb`: the Debian package as dpkg sees it (issue 13).

Builds the package once with the real tools (dpkg-buildpackage, debhelper, pybuild) into a
temporary directory, then checks what apt would install: the file list and where each file
goes, the control fields (Depends only on Debian packages, no OpenCV or simplejpeg), the
conffile, that the installed command runs with Debian's python3 and nothing from PyPI, lintian,
and the maintainer scripts, both read and run (in a private mount namespace, against stub
commands, so the host's udev, systemd and sysctl are never touched). The guest test
(tests/vm/scenarios/package.sh) installs, upgrades and removes it for real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import REPO

import bridge

VERSION = bridge.__version__
DEB_NAME = f"borescope-bridge_{VERSION}_all.deb"
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "pybuild", "dpkg-deb")
PY_PACKAGE = "usr/lib/python3/dist-packages/bridge"

# Every file outside the Python package, and where it comes from in the tree.
SYSTEM_FILES = {
    "lib/udev/rules.d/90-borescope-bridge.rules": "udev/90-borescope-bridge.rules",
    "lib/modprobe.d/borescope-bridge.conf": "systemd/borescope-bridge.modprobe.conf",
    "usr/lib/modules-load.d/borescope-bridge.conf": "systemd/borescope-bridge.modules-load.conf",
    "usr/lib/sysctl.d/60-borescope-bridge.conf": "systemd/borescope-bridge.sysctl.conf",
    "usr/lib/sysusers.d/borescope-bridge.conf": "systemd/borescope-bridge.sysusers.conf",
    "etc/borescope-bridge/config.toml": "config.example.toml",
    "usr/lib/NetworkManager/dispatcher.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "usr/lib/networkd-dispatcher/routable.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "usr/lib/networkd-dispatcher/no-carrier.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "usr/lib/networkd-dispatcher/off.d/90-borescope-bridge": "nm/90-borescope-bridge",
    "usr/share/doc/borescope-bridge/examples/config.example.toml": "config.example.toml",
    "usr/share/doc/borescope-bridge/examples/50-borescope-bridge.network": (
        "systemd/50-borescope-bridge.network"
    ),
}
OTHER_FILES = {
    "lib/systemd/system/borescope-bridge.service",
    "lib/systemd/system/borescope-bridge@.service",
    "usr/bin/borescope-bridge",
    "usr/share/doc/borescope-bridge/copyright",
    "usr/share/doc/borescope-bridge/changelog.gz",
    "usr/share/doc/borescope-bridge/README.md.gz",
    "usr/share/doc/borescope-bridge/README.Debian",
    "usr/share/man/man1/borescope-bridge.1.gz",
    "usr/share/bash-completion/completions/borescope-bridge",
    "usr/share/zsh/vendor-completions/_borescope-bridge",
    "usr/share/lintian/overrides/borescope-bridge",
}
DEPENDS = {
    "libturbojpeg0 | libturbojpeg",  # Ubuntu 24.04 names it libturbojpeg
    "python3 (>= 3.11)",
    "python3-aiohttp",
    "python3-numpy",
    "python3-segno",
    "python3-systemd",
    "python3:any (>= 3.11~)",
    "systemd | systemd-standalone-sysusers | systemd-sysusers",
}


def _changelog_version() -> str:
    first = (REPO / "debian/changelog").read_text().splitlines()[0]
    m = re.match(r"^borescope-bridge \(([^)]+)\) ", first)
    assert m, first
    return m.group(1)


def test_changelog_matches_the_version() -> None:
    assert _changelog_version() == VERSION


def test_make_deb_refuses_a_changelog_that_disagrees(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist"))
    log = src / "debian/changelog"
    log.write_text(log.read_text().replace(f"({VERSION})", "(0.0.1)", 1))
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(src), "deb", "DEB_BUILD_DEPS="],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert f"bridge.__version__ is {VERSION} but debian/changelog says 0.0.1" in proc.stdout


def _missing_tools() -> list[str]:
    return [t for t in BUILD_TOOLS if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package built by `make deb`, into a temporary directory (not the checkout's dist/)."""
    missing = _missing_tools()
    if missing:
        pytest.skip(
            f"cannot build the package: {', '.join(missing)} missing "
            "(make unit installs them as root: dpkg-dev debhelper dh-python "
            "pybuild-plugin-pyproject)"
        )
    out = tmp_path_factory.mktemp("deb")
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            "deb",
            f"DEB_DIR={out / 'build'}",
            f"DIST_DIR={out / 'dist'}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    path = out / "dist" / DEB_NAME
    assert path.is_file(), proc.stdout[-2000:]
    yield path


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


@pytest.fixture(scope="module")
def control(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ctl = tmp_path_factory.mktemp("control")
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctl)], check=True)
    return ctl


def _field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def _listing(deb: Path) -> set[str]:
    """Files and symlinks in the archive (dpkg-deb -c), without the leading ./"""
    out = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    files = set()
    for line in out.splitlines():
        perms, name = line.split()[0], line.split()[5]
        if not perms.startswith("d"):
            files.add(name.removeprefix("./"))
    return files


def test_file_list(deb: Path) -> None:
    files = _listing(deb)
    # every file of the source package, subpackages and data files included
    modules = {
        f"{PY_PACKAGE}/{p.relative_to(REPO / 'bridge').as_posix()}"
        for p in (REPO / "bridge").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    }
    dist_info = {f for f in files if ".dist-info/" in f}
    assert dist_info, "no dist-info: pybuild did not install the distribution"
    expected = set(SYSTEM_FILES) | OTHER_FILES | modules | dist_info
    assert files == expected, (sorted(files - expected), sorted(expected - files))
    # Everything that names a directory of the Python package is the package itself.
    assert {f for f in files if f.startswith(PY_PACKAGE + "/")} == modules


def test_control_fields(deb: Path) -> None:
    assert _field(deb, "Package") == "borescope-bridge"
    assert _field(deb, "Version") == VERSION
    assert _field(deb, "Architecture") == "all"
    depends = {d.strip() for d in _field(deb, "Depends").split(",")}
    assert depends == DEPENDS
    assert _field(deb, "Recommends") == "v4l2loopback-dkms"
    text = _field(deb, "Depends") + _field(deb, "Recommends")
    for pypi_only in ("opencv", "simplejpeg", "pip", "venv"):
        assert pypi_only not in text


def test_system_files_are_the_trees(unpacked: Path) -> None:
    for dest, src in SYSTEM_FILES.items():
        assert (unpacked / dest).read_bytes() == (REPO / src).read_bytes(), dest


def test_man_page_and_completions_are_the_parsers(unpacked: Path, tmp_path: Path) -> None:
    """What `make man` makes from this tree is what the package installs (generated at build
    time, so they cannot lag behind the program)."""
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "man", f"MAN_DIR={tmp_path}"],
        check=True,
        capture_output=True,
    )
    page = subprocess.run(
        ["gzip", "-dc", str(unpacked / "usr/share/man/man1/borescope-bridge.1.gz")],
        capture_output=True,
        check=True,
    ).stdout
    assert page == (tmp_path / "borescope-bridge.1").read_bytes()
    bash = unpacked / "usr/share/bash-completion/completions/borescope-bridge"
    assert bash.read_bytes() == (tmp_path / "borescope-bridge").read_bytes()
    zsh = unpacked / "usr/share/zsh/vendor-completions/_borescope-bridge"
    assert zsh.read_bytes() == (tmp_path / "_borescope-bridge").read_bytes()


def test_postinst_and_readme_debian_give_the_next_steps(control: Path, unpacked: Path) -> None:
    postinst = (control / "postinst").read_text()
    # The first install's block (after debhelper's part); an upgrade's note comes before it.
    first_install = postinst.rpartition("# First install only")[2]
    steps = [line for line in first_install.splitlines() if 'echo "borescope-bridge: ' in line]
    assert len(steps) == 3, steps
    assert "modprobe v4l2loopback" in steps[0] and "usermod -aG borescope-bridge" in steps[1]
    assert "man borescope-bridge" in steps[2]
    readme = (unpacked / "usr/share/doc/borescope-bridge/README.Debian").read_text()
    assert "sudo modprobe v4l2loopback" in readme and "borescope-bridge doctor" in readme


def test_unit_runs_the_packaged_command(unpacked: Path) -> None:
    unit = (unpacked / "lib/systemd/system/borescope-bridge.service").read_text()
    source = (REPO / "systemd/borescope-bridge.service").read_text()
    assert "\nExecStart=/usr/bin/borescope-bridge run\n" in unit
    assert unit == source.replace(
        "\nExecStart=/usr/local/bin/borescope-bridge run\n",
        "\nExecStart=/usr/bin/borescope-bridge run\n",
    )


def test_the_licence_reaches_the_metadata(unpacked: Path) -> None:
    """pyproject's SPDX string, given to bookworm's setuptools 66 in its older form."""
    [meta] = (unpacked / "usr/lib/python3/dist-packages").glob("*.dist-info/METADATA")
    assert "\nLicense: GPL-3.0-or-later\n" in meta.read_text()
    assert (REPO / "pyproject.toml").read_text().count('license = "GPL-3.0-or-later"') == 1


def test_template_runs_the_packaged_command_and_the_dispatcher_runs(unpacked: Path) -> None:
    unit = (unpacked / "lib/systemd/system/borescope-bridge@.service").read_text()
    source = (REPO / "systemd/borescope-bridge@.service").read_text()
    assert unit == source.replace(
        "\nExecStart=/usr/local/bin/borescope-bridge run --interface %i\n",
        "\nExecStart=/usr/bin/borescope-bridge run --interface %i\n",
    )
    assert "\nExecStart=/usr/bin/borescope-bridge run --interface %i\n" in unit
    for hook in (
        "usr/lib/NetworkManager/dispatcher.d/90-borescope-bridge",
        *(f"usr/lib/networkd-dispatcher/{s}.d/90-borescope-bridge" for s in ("routable", "off")),
    ):
        assert (unpacked / hook).stat().st_mode & 0o777 == 0o755, hook


def test_conffile_is_the_config_only(control: Path) -> None:
    assert (control / "conffiles").read_text().split() == ["/etc/borescope-bridge/config.toml"]


def test_command_runs_with_debians_python_and_no_pypi(unpacked: Path, tmp_path: Path) -> None:
    """The entry point uses /usr/bin/python3; with Debian's numpy it imports everything and
    chooses the numpy and libturbojpeg paths (no cv2, no simplejpeg anywhere)."""
    script = (unpacked / "usr/bin/borescope-bridge").read_text()
    assert script.startswith("#!/usr/bin/python3\n")
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import numpy, systemd.daemon, aiohttp, segno"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            "python3-numpy, python3-systemd, python3-aiohttp and python3-segno are not "
            "installed (make unit installs them)"
        )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(unpacked / "usr/lib/python3/dist-packages"),
        "PYTHONNOUSERSITE": "1",
        "HOME": str(tmp_path),
    }
    code = (
        "import sys; sys.modules['cv2'] = None; sys.modules['simplejpeg'] = None\n"
        "import bridge, bridge.app.daemon, bridge.sim.server, bridge.web.server, segno\n"
        "from bridge.pixels import optional, yuv\n"
        "from bridge.pixels.decode import Decoder\n"
        "from bridge.sim.scene import make_loop\n"
        "assert bridge.__file__.startswith(sys.argv[1]), bridge.__file__\n"
        "print(yuv.backend(), Decoder().backend, Decoder().decode(make_loop(64, 48, 1)[0]).shape)\n"
    )
    proc = subprocess.run(
        ["/usr/bin/python3", "-c", code, str(unpacked)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["numpy", "turbojpeg", "(72,", "64)"]
    helped = subprocess.run(
        ["/usr/bin/python3", str(unpacked / "usr/bin/borescope-bridge"), "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert "borescope-bridge" in helped.stdout


def test_lintian_is_clean(deb: Path) -> None:
    """No errors, and every warning explained by an override in debian/."""
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (make unit installs it as root)")
    proc = subprocess.run(
        ["lintian", "--fail-on", "error,warning", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr


# ---- maintainer scripts --------------------------------------------------------------------


def test_maintainer_scripts_read_right(control: Path) -> None:
    """What each script may do, read from the scripts themselves (dh snippets included)."""
    for name in ("postinst", "prerm", "postrm"):
        script = control / name
        assert os.access(script, os.X_OK), name
        subprocess.run(["sh", "-n", str(script)], check=True)
    postinst = (control / "postinst").read_text()
    assert 'systemd-sysusers ${DPKG_ROOT:+--root="$DPKG_ROOT"} borescope-bridge.conf' in postinst
    assert "udevadm control --reload" in postinst
    assert "try-restart 'borescope-bridge.service'" in postinst
    # Never enabled or started by the package: udev starts it (as after make install).
    assert not re.search(r"deb-systemd-invoke (start|restart) ", postinst)
    assert "deb-systemd-helper enable" not in postinst.replace(
        "was-enabled 'borescope-bridge.service'; then\n\t\t\t# Create new symlinks, if any.\n"
        "\t\t\tdeb-systemd-helper enable",
        "",
    )
    # sysctl only through a tool that exists: procps is not in a minimal system.
    assert re.search(r"command -v sysctl >/dev/null 2>&1; then\n\s+sysctl -q -p", postinst)
    assert not (control / "preinst").exists() or "stop" not in (control / "preinst").read_text()
    postrm = (control / "postrm").read_text()
    assert "/var/lib/borescope-bridge" not in postrm.split("set -e", 1)[1]  # snapshots stay
    assert "userdel" not in postrm and "deluser" not in postrm


STUBS = ("udevadm", "systemd-sysusers", "systemctl", "deb-systemd-helper", "deb-systemd-invoke",
         "py3compile", "py3clean", "sysctl")  # fmt: skip


def _run_script(control: Path, tmp_path: Path, script: str, *args: str) -> list[str]:
    """Run a maintainer script as dpkg would, in a private mount namespace where /run looks
    like a booted systemd with udev, /etc/borescope-bridge is scratch, and every command it
    may call is a stub that records its arguments. Returns the recorded calls."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("running maintainer scripts in a mount namespace needs root and unshare")
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    calls.write_text("")
    for name in STUBS:
        stub = stubs / name
        # deb-systemd-helper's queries answer "no": the admin never enabled the unit.
        query = 'case "$1" in debian-installed|--quiet) exit 1;; esac\n'
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n' + query)
        stub.chmod(0o755)
    etc = tmp_path / "etc-borescope-bridge"
    etc.mkdir(exist_ok=True)
    for leftover in ("config.toml.dpkg-old", "config.toml.dpkg-dist"):
        (etc / leftover).write_text("x")
    sysctl_stub = stubs / "systemd-sysctl"
    sysctl_stub.write_text(f'#!/bin/sh\necho "systemd-sysctl $*" >> {calls}\n')
    sysctl_stub.chmod(0o755)
    inner = f"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /run/udev
mkdir -p /etc/borescope-bridge
mount --bind {etc} /etc/borescope-bridge
s=/lib/systemd/systemd-sysctl
if [ -e $s ]; then mount --bind {sysctl_stub} $s; fi
PATH={stubs}:/usr/sbin:/usr/bin:/sbin:/bin exec {control / script} "$@"
"""
    created_etc = not os.path.exists("/etc/borescope-bridge")
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "sh", "-c", inner, script, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "DPKG_ROOT"},
        )
    finally:
        if created_etc:  # the mount point the namespace needed; nothing was written into it
            with_contents = os.path.isdir("/etc/borescope-bridge") and os.listdir(
                "/etc/borescope-bridge"
            )
            if not with_contents:
                os.rmdir("/etc/borescope-bridge")
    if proc.returncode != 0 and "unshare failed" in proc.stderr + proc.stdout:
        pytest.skip(f"cannot create a mount namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [c for c in calls.read_text().splitlines() if not c.startswith(("py3compile", "py3cl"))]


def test_postinst_first_install(control: Path, tmp_path: Path) -> None:
    calls = _run_script(control, tmp_path, "postinst", "configure", "")
    sysctl = (
        "systemd-sysctl /usr/lib/sysctl.d/60-borescope-bridge.conf"
        if os.path.exists("/lib/systemd/systemd-sysctl")
        else "sysctl -q -p /usr/lib/sysctl.d/60-borescope-bridge.conf"
    )
    assert calls == [
        "udevadm control --reload",
        sysctl,
        "systemd-sysusers borescope-bridge.conf",
        "deb-systemd-helper debian-installed borescope-bridge.service",
        "deb-systemd-helper update-state borescope-bridge.service",
        "systemctl --system daemon-reload",
    ]


def test_postinst_upgrade_restarts_a_running_service(control: Path, tmp_path: Path) -> None:
    calls = _run_script(control, tmp_path, "postinst", "configure", VERSION)
    assert calls[-2:] == [
        "systemctl --system daemon-reload",
        "deb-systemd-invoke try-restart borescope-bridge.service",
    ]
    assert not any(" start " in f" {c} " for c in calls)


def test_prerm_stops_on_remove_only(control: Path, tmp_path: Path) -> None:
    assert _run_script(control, tmp_path, "prerm", "remove") == [
        "deb-systemd-invoke stop borescope-bridge.service",
        "deb-systemd-invoke stop borescope-bridge@*.service",
    ]
    assert _run_script(control, tmp_path, "prerm", "upgrade", VERSION) == []


def test_postrm_remove_and_purge(control: Path, tmp_path: Path) -> None:
    assert _run_script(control, tmp_path, "postrm", "remove") == [
        "udevadm control --reload",
        "systemctl --system daemon-reload",
    ]
    etc = tmp_path / "etc-borescope-bridge"
    (etc / "config.toml").write_text("# the user's, dpkg removes it on purge itself\n")
    calls = _run_script(control, tmp_path, "postrm", "purge")
    assert calls == ["deb-systemd-helper purge borescope-bridge.service"]
    assert sorted(os.listdir(etc)) == ["config.toml"]  # dpkg's leftovers gone, nothing else


def test_builds_as_a_normal_user(deb: Path) -> None:
    """Rules-Requires-Root: no: the same package from an unprivileged user, files owned by root."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root to switch to an unprivileged user (runuser)")
    # pytest's own temporary directories are private to root: one that nobody may enter
    with tempfile.TemporaryDirectory(prefix="borescope-deb-user-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist"))
        subprocess.run(["chown", "-R", "nobody:", tmp], check=True)
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", "env", f"HOME={tmp}", "make", "-C", str(src), "deb"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        built = src / "dist" / DEB_NAME
        assert _listing(built) == _listing(deb)
        listing = subprocess.run(
            ["dpkg-deb", "-c", str(built)], capture_output=True, text=True, check=True
        ).stdout
    assert {line.split()[1] for line in listing.splitlines()} == {"root/root"}
