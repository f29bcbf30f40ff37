# SPDX-License-Identifier: GPL-3.0-or-later
"""`borescope-bridge url`: which address a phone uses, the advice when there is none, the QR code.

Runs in the client, not the daemon: the daemon says where it listens; which of this machine's
addresses a phone can reach is asked of the kernel here (SIOCGIFADDR per interface).
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915
# The borescope's own USB link: no phone is ever on it.
BORESCOPE_NET = ipaddress.IPv4Network("192.168.10.0/24")


def interface_addresses() -> list[tuple[str, str]]:
    """(interface, IPv4 address) for every interface that has one."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _index, name in socket.if_nameindex():
            try:
                reply = fcntl.ioctl(
                    s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15])
                )
            except OSError:
                continue
            out.append((name, socket.inet_ntoa(reply[20:24])))
    return out


def lan_urls(host: str, port: int, query: str) -> list[str]:
    """Addresses other devices may use, the likeliest first (private LAN ranges); `query` is
    what follows the ``?`` (``token=...`` or ``code=...``)."""
    if host != "0.0.0.0":
        return [f"http://{host}:{port}/?{query}"]
    candidates = []
    for _name, addr in interface_addresses():
        ip = ipaddress.IPv4Address(addr)
        if ip.is_loopback or ip.is_link_local or ip in BORESCOPE_NET:
            continue
        candidates.append((not ip.is_private, addr))
    return [f"http://{addr}:{port}/?{query}" for _public, addr in sorted(candidates)]


def loopback_only_advice(port: int) -> str:
    return (
        f"the web page listens on 127.0.0.1 only, so other devices cannot reach it. To allow "
        f'the network: set http = "0.0.0.0:{port}" in /etc/borescope-bridge/config.toml (or '
        f"run --http 0.0.0.0:{port}); for the service also let the network through its "
        "firewall: `sudo systemctl edit borescope-bridge@.service` (every scope's instance; "
        "`borescope-bridge.service` if you enabled that one), add the lines [Service] and "
        "IPAddressAllow=192.168.1.0/24 (your network), then `sudo systemctl restart "
        "'borescope-bridge*'` (README: Phones and the network). The page is plain HTTP: anyone "
        "on that network who sees one request to it can take the access token"
    )


def cleartext_warning(host: str, port: int, token_file: str | None) -> str:
    """What listening beyond loopback means: plain HTTP, so the token travels readable."""
    if token_file:
        change = (
            "to change the token, run `borescope-bridge url --new-token`: it makes a new one "
            f"(kept in {token_file}), and every old address, open page and script token "
            "stops working"
        )
    else:
        change = (
            "this run's token is kept nowhere: a restart makes a new one, and so does "
            "`borescope-bridge url --new-token`"
        )
    return (
        f"the web page on {host}:{port} is unencrypted HTTP: anyone on that network who sees "
        "one request to it (a shared or open Wi-Fi, a hostile device on the LAN) can read "
        "the access token and watch the borescope and take snapshots with it. Open it only "
        f"on a network you trust; {change}"
    )


def qr_text(data: str, border: int = 2) -> str:
    """A QR code of `data` in terminal characters, two modules per character cell.

    Light modules are drawn as blocks, dark ones as blanks, as `qrencode -t UTF8` does: on the
    usual dark terminal that gives dark modules on a light field, and phone cameras read it.
    """
    import segno

    matrix = [list(row) for row in segno.make_qr(data, error="m").matrix]
    size = len(matrix) + 2 * border
    rows = [[0] * size for _ in range(border)]
    rows += [[0] * border + [1 if m else 0 for m in row] + [0] * border for row in matrix]
    rows += [[0] * size for _ in range(border + 1)]  # +1: an even number of rows
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=False):
        cells = []
        for t, b in zip(top, bottom, strict=True):
            cells.append(
                {(0, 0): "\u2588", (1, 0): "\u2584", (0, 1): "\u2580", (1, 1): " "}[(t, b)]
            )
        lines.append("".join(cells))
    return "\n".join(lines) + "\n"
