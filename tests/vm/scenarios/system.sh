#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317  # helpers are called through wait_for
# In-guest, systemd as PID 1 and a QEMU USB NIC (run --systemd --usb-net):
# `make install` as a user would run it, then udev and the service as installed.
# QEMU cannot emulate the borescope's RTL8152, so a test copy of our udev rule
# matches the NIC's driver (cdc_ether/cdc_subset) instead; the real rule is then
# checked with `udevadm test` on the same NIC (must not match) and on the NIC
# made to look like an RTL8152 (must match). The simulator runs on 127.0.0.1
# and /etc/borescope-bridge/config.toml points the service at it.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/scenarios/lib.sh
. "$HERE/lib.sh"
trap stop_all EXIT

SPORT=18030 EPORT=15000 SIZE=640x480 WAIT=6
DROPIN=/etc/systemd/system/borescope-bridge.service.d/e2e-wait.conf
RULE=/etc/udev/rules.d/90-borescope-bridge.rules
CONF=/etc/borescope-bridge/config.toml
[ "$(cat /proc/1/comm)" = systemd ] || { bad "systemd is PID 1" "PID 1 is $(cat /proc/1/comm)"; exit 1; }

start_sim() {
  bg simulator "${BB[@]}" simulate --bind 127.0.0.1 --stream-port $SPORT --event-port $EPORT --resolution $SIZE
  SIM=$BG
}

# The simulator encodes its loop first (~40 s under TCG): meanwhile, make install.
start_sim

# ---- a machine without us: the guest's root is the host's under a throw-away overlay, so a
# host that has our files installed (make install, the .deb) would hand them to this guest and
# the checks below would pass on them. Remove them from the guest's view (the host keeps them).
leftover=()
for f in /usr/local/bin/borescope-bridge /usr/local/lib/borescope-bridge /usr/local/share/borescope-bridge \
         /usr/bin/borescope-bridge /usr/lib/python3/dist-packages/bridge \
         /etc/systemd/system/$UNIT /etc/systemd/system/$UNIT.d /lib/systemd/system/$UNIT \
         $RULE /lib/udev/rules.d/90-borescope-bridge.rules /etc/borescope-bridge /var/lib/borescope-bridge \
         /etc/modprobe.d/borescope-bridge.conf /etc/modules-load.d/borescope-bridge.conf \
         /etc/sysctl.d/60-borescope-bridge.conf /etc/sysusers.d/borescope-bridge.conf; do
  if [ -e "$f" ] || [ -L "$f" ]; then leftover+=("$f"); rm -rf "$f"; fi
done
if id borescope-bridge >/dev/null 2>&1; then
  leftover+=("user borescope-bridge")
  userdel borescope-bridge 2>/dev/null; groupdel borescope-bridge 2>/dev/null
fi
if [ ${#leftover[@]} -gt 0 ]; then
  systemctl daemon-reload; udevadm control --reload
  note "removed what the host had installed from this guest's view: ${leftover[*]}"
fi

# ---- make install, as README says (pip from the host-built wheelhouse: no network here)
mkdir -p /etc/borescope-bridge
cat > "$CONF" <<TOML
# e2e: the simulator on loopback; never linger out
device_ip = "127.0.0.1"
stream_port = $SPORT
event_port = $EPORT
wait = 300
linger = 0
TOML
cp "$CONF" /tmp/config.ours
t=$SECONDS
if make -C "$REPO" install PIP_INSTALL_ARGS="--no-index --find-links $VM_STATE_DIR/wheels" \
     > "$LOGS/make-install.log" 2>&1; then
  missing=()
  for f in /usr/local/bin/borescope-bridge /etc/systemd/system/$UNIT $RULE \
           /etc/modprobe.d/borescope-bridge.conf /etc/modules-load.d/borescope-bridge.conf; do
    [ -e "$f" ] || missing+=("$f")
  done
  kept=$(cmp -s "$CONF" /tmp/config.ours && echo "kept our config.toml" || echo "OVERWROTE our config.toml")
  if [ ${#missing[@]} = 0 ] && cmp -s "$CONF" /tmp/config.ours && id borescope-bridge >/dev/null 2>&1; then
    ok "make install in the guest" "$((SECONDS - t)) s; unit, rule, modprobe files, command and user in place; $kept"
  else
    bad "make install in the guest" "missing: ${missing[*]:-none}; $kept; user: $(id borescope-bridge 2>&1)"
  fi
else
  bad "make install in the guest" "failed after $((SECONDS - t)) s: $(tail -n3 "$LOGS/make-install.log" | tr '\n' ' ')"
  for c in udev-start status journal web-page reload stop unplug no-borescope udevadm-test; do
    result NOTRUN "systemd/udev: $c" "make install failed"
  done
  exit 1
fi

# the module, through the installed modules-load.d and modprobe.d files
load_installed_module "installed modules-load.d + modprobe.d files load v4l2loopback"

wait_sim_ready 120

# ---- the test copy of our rule: only the device-match line changes
cp "$RULE" /tmp/real.rules
# The simulator is on loopback, where an instance (it accepts only what arrives on its NIC)
# cannot hear it: the copy wants the single daemon, the unit kept for scopes udev does not start.
# One instance per NIC (borescope-bridge@IF) is proven in namespaces (tests/integration/test_multi.py).
sed -e 's/^ENV{ID_NET_DRIVER}=="r8152".*GOTO="borescope_bridge_match"$/ENV{ID_NET_DRIVER}=="cdc_ether|cdc_subset", GOTO="borescope_bridge_match"/' \
  -e 's/borescope-bridge@\$name\.service/borescope-bridge.service/' \
  /tmp/real.rules > "$RULE"
if cmp -s /tmp/real.rules "$RULE"; then
  bad "udev: a test copy of the rule matching QEMU's NIC" "could not find the r8152 match line to widen in $RULE"
fi
udevadm control --reload
# The NIC was coldplugged before the rule existed: unplug it and plug it back in.
echo 0 > $usbdev/authorized; udevadm settle --timeout=30
t=$SECONDS
echo 1 > $usbdev/authorized
if wait_for 60 nic_renamed && wait_for 90 active; then
  iface=$(nic)
  ok "udev: the NIC appears -> $UNIT active (READY=1)" \
    "$iface (driver $(udevadm info -q property -p "/sys/class/net/$iface" | sed -n 's/^ID_NET_DRIVER=//p')), active after $((SECONDS - t)) s, Type=$(prop Type), SYSTEMD_WANTS=$(udevadm info -q property -p "/sys/class/net/$iface" | sed -n 's/^SYSTEMD_WANTS=//p')"
else
  bad "udev: the NIC appears -> $UNIT active (READY=1)" "iface=$(nic || echo none) state=$(systemctl is-active $UNIT) $(journalctl -b -u $UNIT --no-pager -o cat | tail -n3 | tr '\n' ' ')"
  systemctl start $UNIT; wait_for 60 active
fi
pid=$(prop MainPID)

# ---- status line and journal fields
wait_for 60 sh -c "systemctl show -p StatusText --value $UNIT | grep -q streaming"
# (the fps figure in the line changes as it runs: compare what status prints with the unit's
# StatusText by their stable beginning)
st=$(prop StatusText)
shown=$(systemctl status $UNIT --no-pager 2>&1 | sed -n 's/^ *Status: "\(.*\)"$/\1/p' | head -n1)
if [[ $st == streaming* && $shown == streaming* ]]; then
  ok "systemctl status shows our STATUS line" "Status: \"$shown\""
else
  bad "systemctl status shows our STATUS line" "StatusText='$st'; systemctl status: '${shown:-no Status: line}'"
fi
fields=$(journalctl -b -u $UNIT -o verbose --no-pager | grep -o '^ *BORESCOPE_[A-Z_]*=.*' | sed 's/^ *//' | sort -u | tr '\n' ' ')
if [[ $fields == *BORESCOPE_STATE=streaming* ]]; then
  ok "journalctl -o verbose shows our structured fields" "$fields"
else
  bad "journalctl -o verbose shows our structured fields" "found: ${fields:-none}"
fi
# ---- the web page: served by the installed service under its sandbox on 127.0.0.1:8031;
# `borescope-bridge url` as a member of the group borescope-bridge prints a working address.
useradd -M -N -G borescope-bridge e2eweb 2>/dev/null || usermod -aG borescope-bridge e2eweb
url=$(runuser -u e2eweb -- /usr/local/bin/borescope-bridge url 2>&1)
tok=/var/lib/borescope-bridge/http-token
tokmode=$(stat -c '%a %U:%G' "$tok" 2>&1)
web=$(runuser -u e2eweb -- /usr/bin/python3 - "$url" /var/lib/borescope-bridge/snapshots 2>&1 <<'PY'
import json, sys, urllib.request
url, snapdir = sys.argv[1], sys.argv[2]
base, _, token = url.partition("?token=")
auth = {"X-Borescope-Token": token}  # as a script does; the page proves it for a session
op = urllib.request.build_opener()
page = op.open(url, timeout=60).read()
frame = op.open(urllib.request.Request(base + "frame.jpg", headers=auth), timeout=60)
data = frame.read()
req = urllib.request.Request(base + "api/snapshot", method="POST", headers=auth)
name = json.load(op.open(req, timeout=60))["name"]
served = op.open(urllib.request.Request(base + "snapshots/" + name, headers=auth), timeout=60).read()
same = served == open(f"{snapdir}/{name}", "rb").read()
ok = b"<title>Borescope" in page and data[:2] == b"\xff\xd8" and same
print(("OK " if ok else "WRONG ") + f"page {len(page)} bytes; /frame.jpg {frame.headers['Content-Type']} {len(data)} bytes; "
      f"POST /api/snapshot -> {name}, served {'byte-identical to' if same else 'DIFFERENT from'} the file")
PY
)
if [[ $url == http://127.0.0.1:8031/?token=* && $web == OK* && $tokmode == "640 borescope-bridge:borescope-bridge" ]]; then
  ok "the service serves the web page on 127.0.0.1:8031; url works for the group" \
    "url as e2eweb (group borescope-bridge): ${url%%token=*}token=...; ${web#OK }; token file $tokmode"
else
  bad "the service serves the web page on 127.0.0.1:8031; url works for the group" \
    "url: $url; check: $web; token file: $tokmode; $(journalctl -b -u $UNIT --no-pager -o cat | grep -i 'web' | tail -n2 | tr '\n' ' ')"
fi

if read_frames "$OUT/service.rgb" 10 system; then
  directive FRAMES "the service's camera shows the simulator's picture" "$OUT/service.rgb" rgb24 $SIZE
else
  bad "the service's camera shows the simulator's picture" "$(tail -n2 "$LOGS/system-ffmpeg.log" | tr '\n' ' ')"
fi

# ---- reload: rotate = 180 in the config, applied without a restart
echo "rotate = 180" >> "$CONF"
systemctl reload $UNIT
sleep 2
applied=$(journalctl -b -u $UNIT --no-pager -o cat | grep -c 'reload: applied rotate = 180')
if [ "$(prop MainPID)" = "$pid" ] && [ "$applied" -ge 1 ] && read_frames "$OUT/reloaded.rgb" 5 system; then
  ok "systemctl reload re-reads the config" "same PID $pid, journal: reload: applied rotate = 180"
  directive FRAMES "after reload the camera shows the picture rotated by 180" "$OUT/reloaded.rgb" rgb24 $SIZE 0 rot180
else
  bad "systemctl reload re-reads the config" "PID $pid -> $(prop MainPID), applied lines: $applied; $(journalctl -b -u $UNIT --no-pager -o cat | grep -i reload | tail -n2 | tr '\n' ' ')"
fi

# ---- unplug and replug: the service and its camera live on
echo 0 > $usbdev/authorized
sleep 3
gone=$(nic || echo none)
during=$(systemctl is-active $UNIT)
echo 1 > $usbdev/authorized
wait_for 60 nic_renamed
sleep 2
if [ "$gone" = none ] && [ "$during" = active ] && active && [ "$(prop MainPID)" = "$pid" ] \
   && is_capture "$DEV" && read_frames "$OUT/replugged.rgb" 5 system; then
  ok "unplug + replug keep the service and its camera" "NIC gone for 3 s, service active throughout (PID $pid), camera still capture, back as $(nic)"
  directive FRAMES "after replug the camera still shows the picture" "$OUT/replugged.rgb" rgb24 $SIZE 0 rot180
else
  bad "unplug + replug keep the service and its camera" "NIC during unplug: $gone; service during: $during, after: $(systemctl is-active $UNIT), PID $pid -> $(prop MainPID); capture: $(is_capture "$DEV" && echo yes || echo no)"
fi

# ---- stop: the stop packet reaches the device, exit 0
systemctl stop $UNIT
sleep 1
if grep -q 'sent stop' "$LOGS/simulator.log" && [ "$(prop ExecMainStatus)" = 0 ] && [ "$(prop Result)" = success ]; then
  ok "systemctl stop sends the stop packet and exits 0" "simulator: $(grep 'sent stop' "$LOGS/simulator.log" | tail -n1 | sed 's/.*INFO: //'); ExecMainStatus=0"
else
  bad "systemctl stop sends the stop packet and exits 0" "simulator saw: $(grep -c 'sent stop' "$LOGS/simulator.log") stop lines; ExecMainStatus=$(prop ExecMainStatus) Result=$(prop Result)"
fi

# ---- another model of the family through the installed service: an AIR-Look otoscope at its
# real address (192.168.0.10, UDP 8032; the address lives on lo here, a direct link), found by
# `auto` with nothing about the scope in the config, through the unit's IPAddressAllow=.
ip addr add 192.168.0.10/32 dev lo
bg simulator-airlook "${BB[@]}" simulate --model airlook --resolution $SIZE
SIM2=$BG
cp "$CONF" /tmp/config.before-airlook
printf '# e2e: no model, address or port: the service finds the scope\nwait = 300\nlinger = 0\n' > "$CONF"
wait_for 180 grep -q 'simulated borescope' "$LOGS/simulator-airlook.log" \
  || note "the AIR-Look simulator is not listening yet: $(tail -n2 "$LOGS/simulator-airlook.log")"
t=$SECONDS
systemctl start $UNIT
found_airlook() { journalctl -b -u $UNIT --no-pager -o cat | grep -q 'found airlook at 192.168.0.10:8032'; }
streaming_airlook() { [ "$(ctl_status /run/borescope-bridge/control.sock | json_get frames_received)" -ge 10 ] 2>/dev/null; }
if wait_for 120 found_airlook && wait_for 60 streaming_airlook; then
  st=$(ctl_status /run/borescope-bridge/control.sock)
  m=$(echo "$st" | json_get model); fr=$(echo "$st" | json_get framing)
  ip_=$(echo "$st" | json_get device_ip); n=$(echo "$st" | json_get frames_received)
  if [ "$m" = airlook ] && [ "$fr" = A ] && [ "$ip_" = 192.168.0.10 ]; then
    ok "the service finds an AIR-Look at 192.168.0.10:8032 by itself (auto, IPAddressAllow)" \
      "after $((SECONDS - t)) s: model $m, framing $fr, device $ip_, $n frames; $(journalctl -b -u $UNIT --no-pager -o cat | grep 'found airlook' | tail -n1)"
  else
    bad "the service finds an AIR-Look at 192.168.0.10:8032 by itself (auto, IPAddressAllow)" "status: model=$m framing=$fr device_ip=$ip_ frames=$n"
  fi
else
  bad "the service finds an AIR-Look at 192.168.0.10:8032 by itself (auto, IPAddressAllow)" \
    "state $(systemctl is-active $UNIT); $(journalctl -b -u $UNIT --no-pager -o cat | tail -n4 | tr '\n' ' ')"
fi
systemctl stop $UNIT
stop_pid "$SIM2" 5
ip addr del 192.168.0.10/32 dev lo
cp /tmp/config.before-airlook "$CONF"

# ---- no borescope answering: exit 0 after --wait, no restart. A unit drop-in
# gives it a short --wait (a flag, so it also shows flags beat config.toml).
stop_pid "$SIM" 5
mkdir -p "${DROPIN%/*}"
printf '[Service]\nExecStart=\nExecStart=/usr/local/bin/borescope-bridge run --wait %s\n' "$WAIT" > "$DROPIN"
systemctl daemon-reload
t=$SECONDS
systemctl start $UNIT
if wait_for $((WAIT + 60)) inactive; then
  took=$((SECONDS - t))
  sleep 6   # longer than RestartSec=3s: a restart would show now
  if inactive && [ "$(prop ExecMainStatus)" = 0 ] && [ "$(prop NRestarts)" = 0 ]; then
    ok "no borescope: the service exits 0 after --wait $WAIT and is not restarted" \
      "inactive after $took s, ExecMainStatus=0, NRestarts=0; $(journalctl -b -u $UNIT --no-pager -o cat | grep -i 'no borescope' | tail -n1)"
  else
    bad "no borescope: the service exits 0 after --wait $WAIT and is not restarted" \
      "state $(systemctl is-active $UNIT), ExecMainStatus=$(prop ExecMainStatus), NRestarts=$(prop NRestarts)"
  fi
else
  bad "no borescope: the service exits 0 after --wait $WAIT and is not restarted" "still $(systemctl is-active $UNIT) after $((SECONDS - t)) s"
fi

# ---- the real rule under udevadm test
cp /tmp/real.rules "$RULE"
udevadm control --reload
wants() {  # does `udevadm test` give this NIC our SYSTEMD_WANTS?
  local n; n=$(nic) || return 2
  udevadm test --action=add "/sys/class/net/$n" 2>/dev/null | grep -q '^SYSTEMD_WANTS=.*borescope-bridge@[^ ]*\.service'
}
fake=/etc/udev/rules.d/89-e2e-fake-r8152.rules
if wants; then r_plain=MATCHED; else r_plain="no match"; fi
# Make the NIC look like the borescope: the USB ids through bind mounts over its
# sysfs attributes, the driver name (which udev asks the kernel for, via ethtool)
# through a test rule that runs just before ours.
echo 0bda > /tmp/idVendor; echo 8152 > /tmp/idProduct
mount --bind /tmp/idVendor "$(readlink -f $usbdev)/idVendor"
mount --bind /tmp/idProduct "$(readlink -f $usbdev)/idProduct"
if wants; then r_ids=MATCHED; else r_ids="no match"; fi
echo 'SUBSYSTEM=="net", ACTION!="remove", ENV{ID_NET_DRIVER}="r8152"' > "$fake"
udevadm control --reload
if wants; then r_all=MATCHED; else r_all="no match"; fi
umount "$(readlink -f $usbdev)/idVendor" "$(readlink -f $usbdev)/idProduct"
if wants; then r_drv=MATCHED; else r_drv="no match"; fi
rm -f "$fake" "$DROPIN"; udevadm control --reload
fig="QEMU NIC ($(cat $usbdev/idVendor):$(cat $usbdev/idProduct), cdc_ether): $r_plain; with ids 0bda:8152 only: $r_ids; driver r8152 only: $r_drv; ids and driver r8152: $r_all"
if [ "$r_plain" = "no match" ] && [ "$r_ids" = "no match" ] && [ "$r_drv" = "no match" ] && [ "$r_all" = MATCHED ]; then
  ok "the real udev rule under udevadm test (must not / must match)" "$fig"
else
  bad "the real udev rule under udevadm test (must not / must match)" "$fig"
fi
exit 0
