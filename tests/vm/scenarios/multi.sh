#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317  # helpers are called through wait_for
# In-guest, systemd as PID 1 and two scopes (run --systemd --scopes 2): each USB NIC is wired
# through its own QEMU hub to a virtio NIC that this script moves into a namespace of its own,
# where a simulator plays the borescope at 192.168.10.123. Both USB links carry
# 192.168.10.100/24, as two real scopes' would. The template unit from this checkout and a test
# copy of our udev rule (its device match widened to QEMU's NIC driver) start one instance per
# NIC; each camera ("Borescope", "Borescope 2") must show its own scope's picture (640x480 and
# 1280x720: the host compares each with that simulator's loop); unplugging one NIC stops its
# instance after linger and the other streams on.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/scenarios/lib.sh
. "$HERE/lib.sh"
cleanup() { stop_all; ip netns del scope0 2>/dev/null; ip netns del scope1 2>/dev/null; }
trap cleanup EXIT

SIZES=(640x480 1280x720)
RULE=/etc/udev/rules.d/90-borescope-bridge.rules
[ "$(cat /proc/1/comm)" = systemd ] || { bad "systemd is PID 1" "PID 1 is $(cat /proc/1/comm)"; exit 1; }

iface_by_mac() {  # mac -> interface name
  local n
  for n in /sys/class/net/*; do
    [ "$(cat "$n/address" 2>/dev/null)" = "$1" ] && { echo "${n##*/}"; return 0; }
  done
  return 1
}

# ---- the scopes: a namespace each behind its virtio NIC, a simulator at 192.168.10.123
for k in 0 1; do
  wait_for 60 iface_by_mac "52:54:00:12:36:1$k"
  s=$(iface_by_mac "52:54:00:12:36:1$k") || { bad "scope $k's NIC" "no 52:54:00:12:36:1$k: run with --scopes 2"; exit 1; }
  ip netns add "scope$k"
  ip link set "$s" netns "scope$k"
  ip -n "scope$k" addr add 192.168.10.123/24 dev "$s"
  ip -n "scope$k" link set "$s" up
  ip -n "scope$k" link set lo up
  bg "simulator$k" ip netns exec "scope$k" "${BB[@]}" simulate --bind 192.168.10.123 \
    --resolution "${SIZES[$k]}" --fps 10
done

# ---- the service as installed, running this checkout: the user, the template, the config;
# the cameras from our modprobe file as the package installs it, unchanged.
install_template 5  # an unplugged scope's instance leaves soon
if load_our_cameras && [ "$(borescope_cameras | wc -l)" -ge 2 ]; then
  ok "our modprobe file gives two scopes a camera each" "$(borescope_cameras | tr '\n' ' ')"
else
  bad "our modprobe file gives two scopes a camera each" "cameras: $(cat /sys/class/video4linux/video*/name 2>/dev/null | tr '\n' ',')"
fi
sed 's/^ENV{ID_NET_DRIVER}=="r8152".*GOTO="borescope_bridge_match"$/ENV{ID_NET_DRIVER}=="cdc_ether|cdc_subset", GOTO="borescope_bridge_match"/' \
  "$REPO/udev/90-borescope-bridge.rules" > "$RULE"
udevadm control --reload

for k in 0 1; do
  wait_for 300 grep -q 'simulated borescope.* listening on' "$LOGS/simulator$k.log" \
    || note "simulator $k is not listening yet: $(tail -n2 "$LOGS/simulator$k.log")"
done

# ---- plug both USB NICs in again (they were coldplugged before the rule existed)
declare -a USB PC
for k in 0 1; do
  wait_for 300 iface_by_mac "52:54:00:12:35:1$k"  # USB enumeration is slow under emulation
  n=$(iface_by_mac "52:54:00:12:35:1$k") || {
    bad "USB NIC $k" "no 52:54:00:12:35:1$k; kernel: $(dmesg | grep -i -E 'usb|xhci|rndis|cdc' | tail -n 12 | tr '\n' ' ')"
    exit 1
  }
  USB[k]=$(readlink -f "/sys/class/net/$n/device/..")
  echo 0 > "${USB[k]}/authorized"
done
udevadm settle --timeout=30
t=$SECONDS
for k in 0 1; do echo 1 > "${USB[k]}/authorized"; done
udevadm settle --timeout=60
for k in 0 1; do
  wait_for 60 iface_by_mac "52:54:00:12:35:1$k"
  PC[k]=$(iface_by_mac "52:54:00:12:35:1$k")
  ip addr add 192.168.10.100/24 dev "${PC[k]}"
  ip link set "${PC[k]}" up
done
if wait_for 120 instance_active "${PC[0]}" && wait_for 60 instance_active "${PC[1]}"; then
  ok "udev: two NICs -> two instances" "$(instance_of "${PC[0]}") and $(instance_of "${PC[1]}") active after $((SECONDS - t)) s"
else
  bad "udev: two NICs -> two instances" "$(systemctl is-active "$(instance_of "${PC[0]}")") / $(systemctl is-active "$(instance_of "${PC[1]}")"); $(journalctl -b -u 'borescope-bridge@*' --no-pager -o cat | tail -n4 | tr '\n' ' ')"
fi

declare -a DEVS
for k in 0 1; do
  if wait_for 180 streaming "${PC[k]}"; then
    DEVS[k]=$(status_of "${PC[k]}" | json_get camera)
    ok "instance $k streams from its own scope" "${PC[k]}: camera ${DEVS[k]}, $(status_of "${PC[k]}" | json_get resolution)"
  else
    bad "instance $k streams from its own scope" "${PC[k]}: $(status_of "${PC[k]}" | json_get state); $(journalctl -b -u "$(instance_of "${PC[k]}")" --no-pager -o cat | tail -n3 | tr '\n' ' ')"
  fi
done

read_camera() {  # k file log: 10 frames of instance k's camera as rgb24, a FRAMES directive
  if [ -n "${DEVS[$1]:-}" ] && DEV=${DEVS[$1]} read_frames "$2" 10 "$3"; then
    directive FRAMES "$4" "$2" rgb24 "${SIZES[$1]}"
  else
    bad "$4" "no frames from ${DEVS[$1]:-no camera}: $(tail -n2 "$LOGS/$3-ffmpeg.log" 2>/dev/null | tr '\n' ' ')"
  fi
}
read_camera 0 "$OUT/multi0.rgb" multi0 "camera of instance 0 shows scope 0's picture"
read_camera 1 "$OUT/multi1.rgb" multi1 "camera of instance 1 shows scope 1's picture"

# ---- scope 0's NIC unplugged: its instance stops after linger (5 s here), the other streams on
before=$(status_of "${PC[1]}" | json_get frames_received)
echo 0 > "${USB[0]}/authorized"
if wait_for 60 instance_gone "${PC[0]}" && instance_active "${PC[1]}"; then
  sleep 3
  after=$(status_of "${PC[1]}" | json_get frames_received)
  if [ "${after:-0}" -gt "${before:-0}" ] && streaming "${PC[1]}"; then
    ok "one NIC unplugged: its instance stops, the other streams on" "$(instance_of "${PC[0]}") $(systemctl is-active "$(instance_of "${PC[0]}")"); instance 1 frames $before -> $after"
  else
    bad "one NIC unplugged: its instance stops, the other streams on" "instance 1 frames $before -> $after, state $(status_of "${PC[1]}" | json_get state)"
  fi
else
  bad "one NIC unplugged: its instance stops, the other streams on" "instance 0 $(systemctl is-active "$(instance_of "${PC[0]}")"), instance 1 $(systemctl is-active "$(instance_of "${PC[1]}")")"
fi
read_camera 1 "$OUT/multi1-after.rgb" multi1-after "after the unplug, instance 1's camera still shows scope 1's picture"
exit 0
