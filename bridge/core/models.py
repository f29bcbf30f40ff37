# SPDX-License-Identifier: GPL-3.0-or-later
"""The known scopes of the Molink family, as data: one row per model, nothing else here.

Everything that differs between them is a column: the framing of the video (A, B or C), the
address and ports, the GetRemoteKey payload length, what the button reply means (the J103's
press counter or SDK 2.x key codes) and how the RETCMD looks. The session, the probe, the
simulator and ``borescope-bridge models`` all read this table, so a new model is one row.

``confirmed`` says whether a model was run against real hardware by this project (only the J103,
through the seed document's captures); the others are built from the public descriptions named
in ``sources`` and may need a correction when someone tries one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

J103_IP = "192.168.10.123"
AIRLOOK_IP = "192.168.0.10"
EVENT_PORT = 50000
TCP_PORT = 7060


class Framing(enum.StrEnum):
    """How the JPEGs travel: see bridge.core.reassembly (A), framing_b and framing_c."""

    A = "A"
    B = "B"
    C = "C"


class Buttons(enum.StrEnum):
    """What the value in a GetRemoteKey reply means."""

    COUNTER = "counter"  # J103: goes up by one on each snapshot press
    KEYS = "keys"  # SDK 2.x: 1 photo, 2 video, 3 zoom in, 4 zoom out, 0 none


class ReplyForm(enum.StrEnum):
    """How the scope's RETCMD to GetRemoteKey looks (the simulator answers in this form)."""

    J103 = "j103"  # 20 bytes, length field 04 00, value in bytes 18-19
    ZERO_LENGTH = "zero-length"  # 20 bytes, length field 00 00 (the Nidage; the Spade, whose
    # public client reads a 14-byte reply and then `length` more bytes)
    SHORT = "short"  # 15 bytes: length 1 and a one-byte value (1-byte polls)


@dataclass(frozen=True, slots=True)
class Model:
    """One row of the table; see the module docstring."""

    name: str
    framing: Framing
    address: str
    video_port: int  # UDP for A and B, TCP for C
    event_port: int
    key_payload: int  # GetRemoteKey payload bytes: 4 or 1
    buttons: Buttons
    reply: ReplyForm
    control_9999: bool  # also answers the 24-byte 0x9999 commands on the event port
    inverted: bool  # the scope inverts a byte of each JPEG (B: one per frame; C: always)
    app: str
    products: str
    confirmed: bool
    sources: tuple[str, ...]
    chunk_size: int = 1400
    # Answers get-resolutions (SETCMD 0x09): only where a capture or the model's own app says so.
    resolutions: bool = False

    @property
    def ports(self) -> str:
        """The ports as the models table prints them."""
        video = f"TCP {self.video_port}" if self.framing == Framing.C else f"UDP {self.video_port}"
        return f"{video}, UDP {self.event_port}"


MODELS: tuple[Model, ...] = (
    Model(
        name="j103",
        framing=Framing.A,
        address=J103_IP,
        video_port=8030,
        event_port=EVENT_PORT,
        key_payload=4,
        buttons=Buttons.COUNTER,
        reply=ReplyForm.J103,
        control_9999=False,
        inverted=False,
        app="USB-VIEW (com.molink.john.drview)",
        products="J103/J106/J108-OTG USB borescopes",
        confirmed=True,
        sources=("framenic/freed-borescope",),
        chunk_size=1400,
    ),
    Model(
        name="itimo",
        framing=Framing.A,
        address=J103_IP,
        video_port=8031,
        event_port=EVENT_PORT,
        key_payload=4,
        buttons=Buttons.KEYS,
        reply=ReplyForm.J103,
        control_9999=True,
        inverted=False,
        app="iTiMO (com.molink.john.itimo)",
        products="iTiMO and jetion_ WiFi ear cleaners",
        confirmed=False,
        sources=("raunak51299/Endoscope-Hacking", "rbeilvert/otoscope"),
        chunk_size=1400,
    ),
    Model(
        name="airlook",
        framing=Framing.A,
        address=AIRLOOK_IP,
        video_port=8032,
        event_port=EVENT_PORT,
        key_payload=4,
        buttons=Buttons.KEYS,
        reply=ReplyForm.J103,
        control_9999=True,
        inverted=False,
        app="AIR-Look (com.air.airlook)",
        products="JesHome P6X, Wudaopu/Xylla Enjoy-/JesHome- WiFi otoscopes",
        confirmed=False,
        sources=("tiktock/unofficial-airlook-web", "rbeilvert/otoscope"),
        chunk_size=1436,
        resolutions=True,  # tiktock's opcode list names it (analysis/opcodes.md)
    ),
    Model(
        name="spade",
        framing=Framing.B,
        address=J103_IP,
        video_port=8030,
        event_port=EVENT_PORT,
        key_payload=4,
        buttons=Buttons.KEYS,
        reply=ReplyForm.ZERO_LENGTH,
        control_9999=True,
        inverted=False,
        app="Spade (com.molink.john.spade)",
        products="Axel Glade Spade Mini WiFi ear cleaner",
        confirmed=False,
        sources=("SeanPesce/Spade-Web-Viewer",),
        chunk_size=1390,
    ),
    Model(
        name="wf070",
        framing=Framing.B,
        address=J103_IP,
        video_port=8030,
        event_port=EVENT_PORT,
        key_payload=1,
        buttons=Buttons.KEYS,
        reply=ReplyForm.SHORT,
        control_9999=False,
        inverted=True,
        app="DEPSTECH (Molink SDK)",
        products="DEPSTECH WF070 WiFi endoscope",
        confirmed=False,
        sources=("jagheterfredrik/depstech-wf070-stream",),
        chunk_size=1390,
        resolutions=True,  # the reply captured in depstech_settings.py
    ),
    Model(
        name="nidage",
        framing=Framing.B,
        address=J103_IP,
        video_port=8031,
        event_port=EVENT_PORT,
        key_payload=4,
        buttons=Buttons.KEYS,
        reply=ReplyForm.ZERO_LENGTH,
        control_9999=False,
        inverted=False,
        app="HD WIFI (com.molink.john.hdwifi)",
        products="Nidage WiFi borescope",
        confirmed=False,
        sources=("mentalburden/Nidage-Borescope-Reversing",),
        chunk_size=1390,
        resolutions=True,  # its app's CmdSocket.smali sends it
    ),
    Model(
        name="wf028",
        framing=Framing.C,
        address=J103_IP,
        video_port=TCP_PORT,
        event_port=EVENT_PORT,
        key_payload=1,
        buttons=Buttons.KEYS,
        reply=ReplyForm.SHORT,
        control_9999=False,
        inverted=True,
        app="DEPSTECH / Jetion (SDK 'ML Series5')",
        products="DEPSTECH WF028, other DEPSTECH and Jetion WiFi endoscopes",
        confirmed=False,
        sources=(
            "mplough/borescope_stream",
            "mkarr/boroscope_stream_fixer",
            "https://n8henrie.com/2019/02/reverse-engineering-my-wifi-endoscope-part-3/",
        ),
        chunk_size=0,
    ),
)

NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
AUTO = "auto"


def find(name: str) -> Model | None:
    """The row called ``name`` (case-insensitive), or None."""
    key = name.strip().lower()
    for model in MODELS:
        if model.name == key:
            return model
    return None


def identify(framing: Framing, address: str, port: int, inverted: bool | None) -> Model | None:
    """The one model that answers like this, or None when several could (or none).

    ``inverted`` is what a framing-B stream says about byte inversion (None: not known yet).
    """
    candidates = [
        m
        for m in MODELS
        if m.framing == framing
        and m.address == address
        and m.video_port == port
        and (inverted is None or framing != Framing.B or m.inverted == inverted)
    ]
    return candidates[0] if len(candidates) == 1 else None


def probe_targets(addresses: tuple[str, ...]) -> list[tuple[Framing, str, int]]:
    """Every (framing kind, address, port) to try at these addresses, without repeats.

    A and B answer the same start packet on the same ports, so one UDP target covers both; the
    framing is told by the first reply. C is a TCP connect.
    """
    seen: list[tuple[Framing, str, int]] = []
    for model in MODELS:
        kind = Framing.C if model.framing == Framing.C else Framing.A
        target = (kind, model.address, model.video_port)
        if model.address in addresses and target not in seen:
            seen.append(target)
    return seen
