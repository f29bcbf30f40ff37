# SPDX-License-Identifier: GPL-3.0-or-later
"""Doctor's service checks: the systemd units, the udev rule, the WiFi hook, the config file,
snapshot access."""

from __future__ import annotations

import os

from bridge.cli.doctor.context import FAIL, OK, WARN, Context, Finding

UDEV_RULE = "90-borescope-bridge.rules"
UDEV_RULE_DIRS = (
    "etc/udev/rules.d",
    "run/udev/rules.d",
    "usr/lib/udev/rules.d",
    "lib/udev/rules.d",
)
SERVICE = "borescope-bridge"
SNAPSHOT_DIR = "/var/lib/borescope-bridge/snapshots"


def _state(ctx: Context, unit: str) -> str:
    rc, out = ctx.run(["systemctl", "is-active", unit])
    return out.strip() or ("unknown" if rc else "active")


def check_service(ctx: Context) -> list[Finding]:
    """The systemd units' states: the single daemon, and the instance each borescope link up
    should have (udev starts borescope-bridge@IF); tolerates machines without systemd."""
    if not ctx.path("run/systemd/system").is_dir():
        return [
            Finding(
                "service",
                WARN,
                "systemd is not running here: nothing starts the bridge on plug-in",
                "borescope-bridge run",
            )
        ]
    running = ("active", "reloading", "activating")
    findings: list[Finding] = []
    plain = _state(ctx, SERVICE)
    if plain == "failed":
        findings.append(_failed(SERVICE))
    for iface in sorted(ctx.borescope_ifaces):
        unit = f"{SERVICE}@{iface}"
        state = _state(ctx, unit)
        if state in running:
            findings.append(Finding("service", OK, f"{unit}.service is {state}"))
        elif plain in running:
            findings.append(Finding("service", OK, f"{SERVICE}.service is {plain} ({iface})"))
        elif state == "failed":
            findings.append(_failed(unit))
        else:
            findings.append(
                Finding(
                    "service",
                    WARN,
                    f"{unit}.service is {state} although the borescope link {iface} is up",
                    f"sudo systemctl start {unit}",
                )
            )
    if not findings:
        findings.append(
            Finding(
                "service",
                OK,
                f"{SERVICE}.service is {plain}; udev starts {SERVICE}@IF.service on plug-in",
            )
        )
    return findings


def _failed(unit: str) -> Finding:
    return Finding(
        "service",
        FAIL,
        f"{unit}.service failed",
        f"journalctl -b -u {unit}; then sudo systemctl reset-failed {unit} && "
        f"sudo systemctl start {unit}",
    )


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
            INSTALL_FIX,
        )
    ]


WIFI_HOOK = "90-borescope-bridge"
NM_HOOK_DIRS = ("etc/NetworkManager/dispatcher.d", "usr/lib/NetworkManager/dispatcher.d")
NETWORKD_HOOK_DIRS = (
    "etc/networkd-dispatcher/routable.d",
    "usr/lib/networkd-dispatcher/routable.d",
)
INSTALL_FIX = (
    "sudo apt install ./borescope-bridge_VERSION_all.deb (make deb builds it), "
    "or sudo make install (from the source tree)"
)


def _hook_finding(ctx: Context, runner: str, dirs: tuple[str, ...]) -> Finding:
    """Whether `runner` finds our hook, executable, in one of the directories it reads."""
    for d in dirs:
        if os.access(ctx.path(f"{d}/{WIFI_HOOK}"), os.X_OK):
            return Finding("WiFi scopes", OK, f"{runner} runs /{d}/{WIFI_HOOK}")
    return Finding(
        "WiFi scopes",
        WARN,
        f"{runner} runs no borescope-bridge hook: joining a WiFi scope's network will not "
        "start its instance",
        INSTALL_FIX,
    )


def check_wifi_hook(ctx: Context) -> list[Finding]:
    """Whether joining a WiFi scope's network starts its instance: the hook must be where the
    running network manager (NetworkManager, or systemd-networkd's dispatcher) looks for it."""
    if not ctx.path("run/systemd/system").is_dir():
        return []
    if _state(ctx, "NetworkManager") == "active":
        return [_hook_finding(ctx, "NetworkManager", NM_HOOK_DIRS)]
    if _state(ctx, "systemd-networkd") == "active":
        if _state(ctx, "networkd-dispatcher") != "active":
            return [
                Finding(
                    "WiFi scopes",
                    WARN,
                    "systemd-networkd runs without networkd-dispatcher: joining a WiFi scope's "
                    "network will not start its instance",
                    "sudo apt install networkd-dispatcher && "
                    "sudo systemctl enable --now networkd-dispatcher",
                )
            ]
        return [_hook_finding(ctx, "networkd-dispatcher", NETWORKD_HOOK_DIRS)]
    return [
        Finding(
            "WiFi scopes",
            OK,
            "neither NetworkManager nor systemd-networkd runs: start a WiFi scope's instance "
            "with sudo systemctl start borescope-bridge@IF",
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
