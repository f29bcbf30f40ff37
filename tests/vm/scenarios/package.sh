#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317  # helpers are called through wait_for
# In-guest, systemd as PID 1 and a QEMU USB NIC (run --systemd --usb-net):
# the Debian package as a user meets it. `apt install ./borescope-bridge_*.deb`
# on a system without our files (the guest has no network: its dependencies are
# installed on the host root the guest boots from, by tests/vm/setup), then the
# same results as make install: the modules-load.d/modprobe.d files give the
# Borescope camera, the NIC appearing starts the service (through a test copy
# of the rule that matches QEMU's NIC, as in system.sh), the camera shows the
# simulator's picture. An upgrade to the same version rebuilt keeps an edited
# config and restarts the running service; `apt remove` stops it, removes our
# files but the config, and the real rule no longer fires (udevadm test on the
# NIC made to look like the borescope: MATCHED before, no match after); purge
# removes the config. The host built both .debs into $OUT/deb1 and $OUT/deb2.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/scenarios/lib.sh
. "$HERE/lib.sh"
trap stop_all EXIT

SPORT=18030 EPORT=15000 SIZE=640x480
PKGRULE=/lib/udev/rules.d/90-borescope-bridge.rules
TESTRULE=/etc/udev/rules.d/90-borescope-bridge.rules  # same name in /etc overrides /lib
CONF=/etc/borescope-bridge/config.toml
DEB1=$(ls "$OUT"/deb1/borescope-bridge_*_all.deb 2>/dev/null | head -n1)
DEB2=$(ls "$OUT"/deb2/borescope-bridge_*_all.deb 2>/dev/null | head -n1)
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o Dpkg::Use-Pty=0)  # (--no-download breaks installing a local .deb)
[ "$(cat /proc/1/comm)" = systemd ] || { bad "systemd is PID 1" "PID 1 is $(cat /proc/1/comm)"; exit 1; }
[ -f "$DEB1" ] && [ -f "$DEB2" ] || { bad "package: the host built two .debs" "missing in $OUT/deb1, $OUT/deb2"; exit 1; }

replug() { echo 0 > $usbdev/authorized; udevadm settle --timeout=30; echo 1 > $usbdev/authorized; }
ours=(/usr/bin/borescope-bridge /lib/systemd/system/$UNIT $PKGRULE /lib/modprobe.d/borescope-bridge.conf
      /usr/lib/modules-load.d/borescope-bridge.conf /usr/lib/sysctl.d/60-borescope-bridge.conf
      /usr/lib/sysusers.d/borescope-bridge.conf /usr/lib/python3/dist-packages/bridge/app/daemon.py)
present() { local f out=(); for f in "${ours[@]}"; do [ -e "$f" ] && out+=("$f"); done; echo "${out[*]}"; }

# The guest boots the host's root: a container host may carry Docker's policy-rc.d, which makes
# every maintainer script's deb-systemd-invoke a no-op ("exit 101"). A user's system has none;
# move it aside (the guest's writes go to its tmpfs overlay, never to the host).
if [ -e /usr/sbin/policy-rc.d ]; then
  note "moving the host's /usr/sbin/policy-rc.d aside in the guest (it denies every service action)"
  mv /usr/sbin/policy-rc.d /tmp/policy-rc.d.host
fi

# ---- a system without our files
before=$(present)
if [ -z "$before" ] && ! dpkg-query -W borescope-bridge >/dev/null 2>&1 && [ ! -e "$CONF" ]; then
  ok "package: the guest starts without our files" "none of ${#ours[@]} paths, no package, no config"
else
  bad "package: the guest starts without our files" "present: ${before:-none}; $(dpkg-query -W borescope-bridge 2>&1)"
fi

# ---- apt install ./borescope-bridge_*.deb, offline
t=$SECONDS
if "${APT[@]}" install "$DEB1" > "$LOGS/apt-install.log" 2>&1; then
  missing=()
  for f in "${ours[@]}"; do [ -e "$f" ] || missing+=("$f"); done
  exec_start=$(systemctl show -p ExecStart --value $UNIT | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
  if [ ${#missing[@]} = 0 ] && id borescope-bridge >/dev/null 2>&1 && [ "$exec_start" = /usr/bin/borescope-bridge ] \
     && [ "$(cat /proc/sys/net/core/rmem_max)" = 16777216 ] && [ -f "$CONF" ]; then
    ok "package: apt install ./$(basename "$DEB1") (offline)" \
      "$((SECONDS - t)) s; files in place, user $(id -u borescope-bridge), ExecStart=$exec_start, rmem_max=$(cat /proc/sys/net/core/rmem_max), service $(systemctl is-active $UNIT) (udev starts it)"
  else
    bad "package: apt install ./$(basename "$DEB1") (offline)" "missing: ${missing[*]:-none}; user: $(id borescope-bridge 2>&1); ExecStart=$exec_start; rmem_max=$(cat /proc/sys/net/core/rmem_max)"
  fi
else
  bad "package: apt install ./$(basename "$DEB1") (offline)" "failed after $((SECONDS - t)) s: $(tail -n4 "$LOGS/apt-install.log" | tr '\n' ' ')"
  exit 1
fi

# ---- what the package gives a user to read: the man page and tab completion, as installed
page=$(man -w borescope-bridge 2>&1)
manual=$(MANWIDTH=100 man borescope-bridge 2>/dev/null | col -b 2>/dev/null)
comp=/usr/share/bash-completion/completions/borescope-bridge
offered=$(bash -c 'source "$1"
fn=$(complete -p borescope-bridge | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
COMP_LINE="borescope-bridge re"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(borescope-bridge re); COMP_CWORD=1
"$fn" borescope-bridge re borescope-bridge; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" 2>&1 | sort | paste -sd' ')
if [ "$page" = /usr/share/man/man1/borescope-bridge.1.gz ] && grep -q "record" <<< "$manual" \
   && grep -q -- "--interface" <<< "$manual" && [ "$offered" = "record" ]; then
  ok "package: man borescope-bridge and tab completion after install" "$page; 'borescope-bridge re<TAB>' -> $offered"
else
  bad "package: man borescope-bridge and tab completion after install" "man -w: $page; completion: ${offered:-nothing}; manual: $(head -c 200 <<< "$manual" | tr '\n' ' ')"
fi

# The user's edit, as after installing: the simulator on loopback, never linger out.
cat >> "$CONF" <<TOML

# e2e: the simulator on loopback
device_ip = "127.0.0.1"
stream_port = $SPORT
event_port = $EPORT
wait = 300
linger = 0
TOML
cp "$CONF" /tmp/config.edited

# The package's own simulator (numpy picture, libturbojpeg encoder: no OpenCV here).
bg simulator /usr/bin/borescope-bridge simulate --bind 127.0.0.1 --stream-port $SPORT --event-port $EPORT --resolution $SIZE
SIM=$BG

load_installed_module "package: its modules-load.d + modprobe.d files load v4l2loopback"
wait_sim_ready 180

# ---- the NIC appears -> the service (test copy of the rule: only the match line widened)
# The simulator is on loopback, where an instance (it accepts only what arrives on its NIC)
# cannot hear it: the copy wants the single daemon, the unit kept for scopes udev does not start.
# One instance per NIC (borescope-bridge@IF) is proven in namespaces (tests/integration/test_multi.py).
sed -e 's/^ENV{ID_NET_DRIVER}=="r8152".*GOTO="borescope_bridge_match"$/ENV{ID_NET_DRIVER}=="cdc_ether|cdc_subset", GOTO="borescope_bridge_match"/' \
  -e 's/borescope-bridge@\$name\.service/borescope-bridge.service/' \
  "$PKGRULE" > "$TESTRULE"
udevadm control --reload
t=$SECONDS
replug
if wait_for 60 nic_renamed && wait_for 120 active; then
  ok "package: the NIC appears -> $UNIT active" "$(nic), active after $((SECONDS - t)) s, MainPID $(prop MainPID)"
else
  bad "package: the NIC appears -> $UNIT active" "iface=$(nic || echo none) state=$(systemctl is-active $UNIT) $(journalctl -b -u $UNIT --no-pager -o cat | tail -n3 | tr '\n' ' ')"
  systemctl start $UNIT; wait_for 60 active
fi
wait_for 60 sh -c "systemctl show -p StatusText --value $UNIT | grep -q streaming"
if read_frames "$OUT/package.rgb" 10 package; then
  directive FRAMES "package: the service's camera shows the simulator's picture" "$OUT/package.rgb" rgb24 $SIZE
else
  bad "package: the service's camera shows the simulator's picture" "$(tail -n2 "$LOGS/package-ffmpeg.log" | tr '\n' ' ')"
fi

# ---- upgrade to the same version rebuilt: the edited config stays, the service restarts
pid=$(prop MainPID)
t=$SECONDS
if "${APT[@]}" install --reinstall "$DEB2" > "$LOGS/apt-upgrade.log" 2>&1 && wait_for 60 active; then
  if cmp -s "$CONF" /tmp/config.edited && [ "$(prop MainPID)" != "$pid" ] && [ ! -e "$CONF.dpkg-dist" ]; then
    ok "package: upgrade to the same version rebuilt keeps the edited config" \
      "$((SECONDS - t)) s; config unchanged, service restarted (PID $pid -> $(prop MainPID)), no .dpkg-dist"
  else
    bad "package: upgrade to the same version rebuilt keeps the edited config" \
      "config kept: $(cmp -s "$CONF" /tmp/config.edited && echo yes || echo no); PID $pid -> $(prop MainPID); $(ls /etc/borescope-bridge)"
  fi
else
  bad "package: upgrade to the same version rebuilt keeps the edited config" "$(tail -n4 "$LOGS/apt-upgrade.log" | tr '\n' ' ') state $(systemctl is-active $UNIT)"
fi

# ---- the real rule, before and after removal (udevadm test on the NIC made to look like
# the borescope: USB ids through bind mounts, the driver name through a test rule)
rm -f "$TESTRULE"
fake=/etc/udev/rules.d/89-e2e-fake-r8152.rules
real_rule_fires() {
  local n rc; n=$(nic) || return 2
  echo 0bda > /tmp/idVendor; echo 8152 > /tmp/idProduct
  mount --bind /tmp/idVendor "$(readlink -f $usbdev)/idVendor"
  mount --bind /tmp/idProduct "$(readlink -f $usbdev)/idProduct"
  echo 'SUBSYSTEM=="net", ACTION!="remove", ENV{ID_NET_DRIVER}="r8152"' > "$fake"
  udevadm control --reload
  udevadm test --action=add "/sys/class/net/$n" 2>/dev/null | grep -q '^SYSTEMD_WANTS=.*borescope-bridge@[^ ]*\.service'
  rc=$?
  umount "$(readlink -f $usbdev)/idVendor" "$(readlink -f $usbdev)/idProduct"
  rm -f "$fake"; udevadm control --reload
  return $rc
}
if real_rule_fires; then fires_before=MATCHED; else fires_before="no match"; fi

# ---- apt remove: stopped, our files gone but the config and the snapshots
mkdir -p /var/lib/borescope-bridge/snapshots && touch /var/lib/borescope-bridge/snapshots/e2e-keep.jpg
stops=$(grep -c 'sent stop' "$LOGS/simulator.log")
t=$SECONDS
if "${APT[@]}" remove borescope-bridge > "$LOGS/apt-remove.log" 2>&1; then
  left=$(present)
  state=$(systemctl is-active $UNIT)
  if [ "$state" != active ] && [ -z "$left" ] && cmp -s "$CONF" /tmp/config.edited \
     && [ -e /var/lib/borescope-bridge/snapshots/e2e-keep.jpg ] \
     && [ "$(grep -c 'sent stop' "$LOGS/simulator.log")" -gt "$stops" ]; then
    ok "package: apt remove stops the service and removes it" \
      "$((SECONDS - t)) s; service $state (stop packet sent), ${#ours[@]} paths gone, config and snapshots kept"
  else
    bad "package: apt remove stops the service and removes it" "state $state; left: ${left:-none}; config kept: $(cmp -s "$CONF" /tmp/config.edited && echo yes || echo no); stop packets: $stops -> $(grep -c 'sent stop' "$LOGS/simulator.log")"
  fi
else
  bad "package: apt remove stops the service and removes it" "$(tail -n4 "$LOGS/apt-remove.log" | tr '\n' ' ')"
fi
if real_rule_fires; then fires_after=MATCHED; else fires_after="no match"; fi
replug
wait_for 60 nic_renamed
sleep 5
if [ "$fires_before" = MATCHED ] && [ "$fires_after" = "no match" ] && [ "$(systemctl is-active $UNIT)" != active ]; then
  ok "package: after apt remove the udev rule no longer fires" "udevadm test as an RTL8152: before $fires_before, after $fires_after; replugged NIC: service $(systemctl is-active $UNIT)"
else
  bad "package: after apt remove the udev rule no longer fires" "before: $fires_before, after: $fires_after; service $(systemctl is-active $UNIT)"
fi

# ---- purge: the config goes too; snapshots and the user stay (README says why)
if "${APT[@]}" purge borescope-bridge > "$LOGS/apt-purge.log" 2>&1 && [ ! -e /etc/borescope-bridge ] \
   && [ -e /var/lib/borescope-bridge/snapshots/e2e-keep.jpg ] && id borescope-bridge >/dev/null 2>&1; then
  ok "package: apt purge removes the config, keeps snapshots and the user" "/etc/borescope-bridge gone"
else
  bad "package: apt purge removes the config, keeps snapshots and the user" "$(ls -la /etc/borescope-bridge 2>&1 | tr '\n' ' ') $(tail -n2 "$LOGS/apt-purge.log" | tr '\n' ' ')"
fi
exit 0
