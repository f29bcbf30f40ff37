# SPDX-License-Identifier: GPL-3.0-or-later
"""`run --interface IF`: the defaults that keep instances for several scopes apart."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.app import config as config_mod
from bridge.app.paths import default_control_socket
from bridge.app.ports import FIRST_PORT, INSTANCE_PORTS, choose, derived_port, instance_port
from bridge.capture.names import SNAPSHOT_NAME, snapshot_name

IFACE = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=15)


@given(st.dictionaries(IFACE, st.sampled_from(list(INSTANCE_PORTS)), max_size=30), IFACE)
def test_a_chosen_port_is_stable_and_nobody_elses(taken: dict[str, int], interface: str) -> None:
    port = choose(interface, taken)
    if not taken:
        assert port == FIRST_PORT  # one scope keeps the single daemon's address
        return
    assert port in INSTANCE_PORTS
    if interface in taken:
        assert port == taken[interface]
    else:
        assert port not in taken.values()
        if derived_port(interface) not in taken.values():
            assert port == derived_port(interface)


def test_the_registry_remembers_and_resolves_collisions(tmp_path: Path) -> None:
    assert instance_port("usb0", str(tmp_path)) == FIRST_PORT
    a = instance_port("enx001", str(tmp_path))
    assert a == derived_port("enx001")
    # An interface whose derived port is already enx001's gets another one, and keeps it.
    clash = next(
        f"usb{k}" for k in range(10000) if derived_port(f"usb{k}") == a and f"usb{k}" != "enx001"
    )
    b = instance_port(clash, str(tmp_path))
    assert b != a
    assert instance_port(clash, str(tmp_path)) == b
    assert instance_port("enx001", str(tmp_path)) == a
    assert json.loads((tmp_path / "web-ports.json").read_text()) == {
        "usb0": FIRST_PORT,
        "enx001": a,
        clash: b,
    }


def test_instances_starting_together_get_different_ports(tmp_path: Path) -> None:
    names = [f"enx{k:03d}" for k in range(12)]
    ports: dict[str, int] = {}
    go = threading.Barrier(len(names))

    def pick(name: str) -> None:
        go.wait()
        ports[name] = instance_port(name, str(tmp_path))

    threads = [threading.Thread(target=pick, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ports.values())) == len(names)


def test_an_unwritable_state_dir_still_gives_the_derived_port(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert instance_port("enx9", str(tmp_path / "file" / "sub")) == derived_port("enx9")


def test_an_instance_gets_its_own_socket_port_and_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    (tmp_path / "none.toml").write_text("")
    single = config_mod.load(str(tmp_path / "none.toml"), {})
    a = config_mod.load(str(tmp_path / "none.toml"), {"interface": "usb0"})
    b = config_mod.load(str(tmp_path / "none.toml"), {"interface": "usb1"})
    assert single.http == a.http == "127.0.0.1:8031"  # the first instance ever: as one daemon
    assert b.http != a.http
    assert len({single.control_socket, a.control_socket, b.control_socket}) == 3
    assert a.control_socket == default_control_socket("usb0")
    assert Path(a.control_socket).parent.name == "usb0"
    # Stable: the next start reads the same port.
    assert config_mod.load(str(tmp_path / "none.toml"), {"interface": "usb0"}).http == a.http
    # Flags and the config file still win.
    given_ = config_mod.load(str(tmp_path / "none.toml"), {"interface": "usb0", "http": "off"})
    assert given_.http == "off"


def test_runtime_directory_of_the_template_unit_is_the_instances_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/borescope-bridge/enx00e04c680001")
    assert default_control_socket("enx00e04c680001") == (
        "/run/borescope-bridge/enx00e04c680001/control.sock"
    )


def test_snapshot_names_say_which_scope() -> None:
    plain = snapshot_name(1_700_000_000.25)
    named = snapshot_name(1_700_000_000.25, "enx00e04c680001")
    assert named == plain.replace("borescope-", "borescope-enx00e04c680001-")
    assert SNAPSHOT_NAME.fullmatch(named) and SNAPSHOT_NAME.fullmatch(plain)
    odd = snapshot_name(1_700_000_000.25, "wl/an:0 ..x")
    assert SNAPSHOT_NAME.fullmatch(odd) and "/" not in odd
