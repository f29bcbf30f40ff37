# SPDX-License-Identifier: GPL-3.0-or-later
"""Doctor's camera checks: the v4l2loopback module, its release, and the device apps open."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bridge.camera.loopback import CARD_LABEL, DEV_ROOT, SYSFS_ROOT, list_loopback_devices
from bridge.cli.doctor.context import FAIL, OK, WARN, Context, Finding
from bridge.cli.doctor.context import read_text as _read


def check_module(ctx: Context) -> list[Finding]:
    """v4l2loopback loaded, else installed, else why not for this kernel, else how to get it."""
    if ctx.path("sys/module/v4l2loopback").is_dir():
        version = _read(ctx.path("sys/module/v4l2loopback/version"))
        return [
            Finding(
                "v4l2loopback", OK, "module loaded" + (f" (version {version})" if version else "")
            )
        ]
    rc, _ = ctx.run(["modinfo", "-F", "version", "v4l2loopback"])
    if rc == 0:
        fix = (
            "sudo modprobe v4l2loopback (loaded at boot by "
            "/etc/modules-load.d/borescope-bridge.conf)"
        )
        if _secure_boot(ctx):
            fix += "; if modprobe says 'Key was rejected by service': " + _mok_advice(ctx)
        return [Finding("v4l2loopback", FAIL, "module installed but not loaded", fix)]
    if _dkms_installed(ctx):
        return [_no_module_for_this_kernel(ctx)]
    return [
        Finding(
            "v4l2loopback",
            FAIL,
            "kernel module not installed",
            f"sudo apt install {DKMS_PACKAGE} (Fedora: dnf install v4l2loopback; "
            "Arch: pacman -S v4l2loopback-dkms), then sudo modprobe v4l2loopback",
        )
    ]


# ---- the package is there but the module is not: the usual state after a kernel update ----

DKMS_PACKAGE = "v4l2loopback-dkms"
NO_CAMERA = (
    "meanwhile the bridge runs without a virtual camera: the web page and snapshots work "
    "(borescope-bridge run --camera none)"
)


def _dkms_installed(ctx: Context) -> bool:
    rc, out = ctx.run(["dpkg-query", "-W", "-f=${Status}", DKMS_PACKAGE])
    return rc == 0 and "install ok installed" in out


def _kernel_release(ctx: Context) -> str:
    rc, out = ctx.run(["uname", "-r"])
    return out.strip() if rc == 0 and out.strip() else os.uname().release


def _dkms_built_for(ctx: Context) -> list[str]:
    """Kernels dkms has built v4l2loopback for (`dkms status`: "v4l2loopback/0.12.7, KVER,
    x86_64: installed")."""
    rc, out = ctx.run(["dkms", "status", "v4l2loopback"])
    if rc != 0:
        return []
    kernels = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].startswith("v4l2loopback") and "installed" in line:
            kernels.append(parts[1])
    return kernels


def _kernel_has_video(ctx: Context, kver: str) -> bool | None:
    """Whether the kernel has video4linux (videodev), which v4l2loopback needs; None: unknown.

    Cloud and minimal kernels leave it out: no module can make a camera there."""
    config = _read(ctx.path(f"boot/config-{kver}"))
    if config is not None:
        return "CONFIG_VIDEO_DEV=" in config
    moddir = ctx.path(f"lib/modules/{kver}")
    texts = [_read(moddir / name) for name in ("modules.dep", "modules.builtin")]
    if all(t is None for t in texts):
        return None
    return any("videodev.ko" in (t or "") for t in texts)


def _apt_candidate(ctx: Context, package: str) -> bool:
    rc, out = ctx.run(["apt-cache", "policy", package])
    for line in out.splitlines() if rc == 0 else []:
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            return value.strip() not in ("", "(none)")
    return False


def _standard_kernel(ctx: Context) -> str:
    """Debian's metapackages of the standard kernel and its headers for this architecture."""
    rc, out = ctx.run(["dpkg", "--print-architecture"])
    arch = out.strip() if rc == 0 and out.strip() else "amd64"
    return f"sudo apt install linux-image-{arch} linux-headers-{arch}"


def _secure_boot(ctx: Context) -> bool:
    rc, out = ctx.run(["mokutil", "--sb-state"])
    return rc == 0 and "SecureBoot enabled" in out


def _mok_advice(ctx: Context) -> str:
    """How to make the firmware trust the key dkms signs the module with."""
    if ctx.path("var/lib/shim-signed/mok/MOK.der").is_file():  # Ubuntu's dkms key
        key = "/var/lib/shim-signed/mok/MOK.der"
    else:
        key = "/var/lib/dkms/mok.pub"  # Debian 12's dkms key
    return (
        f"Secure Boot is on, so the module must be signed by a key the firmware trusts: enrol "
        f"dkms's key once with sudo mokutil --import {key}, reboot, and confirm it in the blue "
        "MOK screen with the password you chose"
    )


def _no_module_for_this_kernel(ctx: Context) -> Finding:
    kver = _kernel_release(ctx)
    built = [k for k in _dkms_built_for(ctx) if k != kver]
    message = (
        f"{DKMS_PACKAGE} is installed, but there is no v4l2loopback module for the running "
        f"kernel {kver}" + (f" (dkms built it for {', '.join(built)})" if built else "")
    )
    boot_built = f"boot a kernel it was built for ({', '.join(built)}), or " if built else ""
    if _kernel_has_video(ctx, kver) is False:
        return Finding(
            "v4l2loopback",
            FAIL,
            f"{message}: this kernel has no video4linux support (a cloud or minimal kernel), "
            "so no v4l2loopback can be built or loaded for it",
            f"{boot_built}install and boot the distribution's standard kernel (Debian: "
            f"{_standard_kernel(ctx)}); {NO_CAMERA}",
        )
    headers_pkg = f"linux-headers-{kver}"
    if ctx.path(f"lib/modules/{kver}/build").exists():
        fix = (
            f"sudo dkms autoinstall -k {kver} && sudo modprobe v4l2loopback (this kernel's "
            "headers are installed; if the build fails, its log is "
            "/var/lib/dkms/v4l2loopback/*/build/make.log)"
        )
    elif _apt_candidate(ctx, headers_pkg):
        message += f": dkms builds it with the kernel's headers, and {headers_pkg} is missing"
        fix = (
            f"sudo apt install {headers_pkg} && sudo dkms autoinstall -k {kver} && "
            "sudo modprobe v4l2loopback"
        )
    else:
        return Finding(
            "v4l2loopback",
            FAIL,
            f"{message}: dkms builds it with the kernel's headers, and there is no package "
            f"{headers_pkg}: this kernel did not come from the distribution (a cloud, VM, "
            "vendor or self-built kernel), so its headers cannot be installed with apt",
            f"sudo apt update, then apt-cache policy {headers_pkg}; if there is still none, "
            f"{boot_built}install and boot the distribution's kernel with its headers (Debian: "
            f"{_standard_kernel(ctx)}); {NO_CAMERA}",
        )
    if _secure_boot(ctx):
        fix += "; then " + _mok_advice(ctx)
    return Finding("v4l2loopback", FAIL, message, fix)


def _loopback_devices(ctx: Context) -> list[tuple[int, str]]:
    """(number, card label) of every v4l2loopback video device, sorted by number.

    The same recognition as the daemon's ``--camera auto`` (bridge.camera.loopback), so doctor
    reports on the device the daemon will pick.
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
