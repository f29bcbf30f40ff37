#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317  # helpers are called through wait_for
# In-guest, systemd as PID 1: a WiFi scope. mac80211_hwsim gives the guest two radios; one
# moves into the namespace "wscope" and becomes the scope: hostapd makes it an access point
# (WPA2, passphrase 12345678, as DEPSTECH and Nidage scopes ship), busybox udhcpd hands out
# 192.168.10.100 as the scope's own DHCP server does (server 192.168.10.123, no gateway: the
# dispatcher must recognise the network by its DHCP server alone), and the simulator plays a
# Nidage (framing B) at 192.168.10.123. NetworkManager joins it on the other radio; our
# dispatcher script (nm/90-borescope-bridge, where the package puts it) must start
# borescope-bridge@IF by itself, its camera must show the scope's picture, and leaving the
# network must stop it. Then the same scope on a headless box: systemd-networkd and wpa_supplicant
# join it, networkd-dispatcher runs the same hook, which finds the DHCP server in networkd's
# lease. Runs alone (tests/vm/e2e wifi) or after multi.sh in the same boot.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/scenarios/lib.sh
. "$HERE/lib.sh"
cleanup() { stop_all; ip netns del wscope 2>/dev/null; }
trap cleanup EXIT

SSID=NIDAGE-5A1F2C PSK=12345678 SIZE=640x480 MODEL=nidage
NMCONF=/etc/NetworkManager/conf.d/90-bsvm-wifi.conf
DISPATCHER=/etc/NetworkManager/dispatcher.d/90-borescope-bridge
[ "$(cat /proc/1/comm)" = systemd ] || { bad "systemd is PID 1" "PID 1 is $(cat /proc/1/comm)"; exit 1; }
# The packages this machine lacks, downloaded by tests/vm/setup: installed in this guest's
# overlay only, none of their services started by the install (policy-rc.d says no).
debs=("${VM_STATE_DIR:-/var/tmp/borescope-vm}"/wifi-debs/*.deb)
if [ -e "${debs[0]}" ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  rm -f /var/lib/man-db/auto-update  # man-db's trigger would index every man page (minutes here)
  t=$SECONDS
  if DEBIAN_FRONTEND=noninteractive dpkg --force-unsafe-io -i "${debs[@]}" > "$LOGS/wifi-dpkg.log" 2>&1; then
    note "installed ${#debs[@]} packages for the WiFi test in $((SECONDS - t)) s"
  else
    bad "WiFi test packages" "dpkg -i failed: $(tail -n3 "$LOGS/wifi-dpkg.log" | tr '\n' ' ')"
  fi
  rm -f /usr/sbin/policy-rc.d
fi
# Enabled (in this overlay only) for their D-Bus activation names: NetworkManager asks for
# wpa_supplicant and its dispatcher that way.
systemctl enable --quiet NetworkManager wpa_supplicant networkd-dispatcher 2>/dev/null
systemctl daemon-reload
for tool in hostapd iw nmcli busybox networkd-dispatcher wpa_supplicant; do
  command -v "$tool" >/dev/null || { bad "WiFi tools" "$tool missing: run tests/vm/setup"; exit 1; }
done

wlans() {  # the WiFi interfaces in this namespace, sorted
  local n
  for n in /sys/class/net/*; do [ -e "$n/phy80211" ] && echo "${n##*/}"; done | sort
}
two_radios() { [ "$(wlans | wc -l)" -ge 2 ]; }

# ---- two radios: the PC's and the scope's
if modprobe mac80211_hwsim radios=2 && wait_for 30 two_radios; then
  PC_IF=$(wlans | sed -n 1p) AP_IF=$(wlans | sed -n 2p)
  note "radios: PC $PC_IF, scope $AP_IF"
else
  bad "two simulated radios (mac80211_hwsim)" "radios: $(wlans | tr '\n' ' ')"
  exit 1
fi

# ---- the scope: its radio in a namespace, access point, DHCP server, simulator
ip netns add wscope
iw phy "$(cat "/sys/class/net/$AP_IF/phy80211/name")" set netns name wscope
ip -n wscope link set lo up
ip -n wscope addr add 192.168.10.123/24 dev "$AP_IF"
cat > /run/bsvm-hostapd.conf <<CONF
interface=$AP_IF
driver=nl80211
ssid=$SSID
hw_mode=g
channel=6
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=$PSK
CONF
bg hostapd ip netns exec wscope hostapd /run/bsvm-hostapd.conf
ap_up() { grep -q AP-ENABLED "$LOGS/hostapd.log"; }
if wait_for 30 ap_up; then
  ok "the scope's access point is up (hostapd)" "$SSID on $AP_IF in namespace wscope"
else
  bad "the scope's access point is up (hostapd)" "$(tail -n3 "$LOGS/hostapd.log" | tr '\n' ' ')"
  exit 1
fi
: > /run/bsvm-udhcpd.leases
cat > /run/bsvm-udhcpd.conf <<CONF
interface $AP_IF
start 192.168.10.100
end 192.168.10.100
lease_file /run/bsvm-udhcpd.leases
pidfile /run/bsvm-udhcpd.pid
opt subnet 255.255.255.0
opt lease 3600
CONF
bg udhcpd ip netns exec wscope busybox udhcpd -f /run/bsvm-udhcpd.conf
bg wsimulator ip netns exec wscope "${BB[@]}" simulate --model $MODEL --bind 192.168.10.123 \
  --resolution $SIZE --fps 10

# ---- the PC: the template unit, a camera, our dispatcher script, NetworkManager
install_template 600  # the instance must not leave by itself when its scope goes: only the hook
[ -n "$(borescope_cameras)" ] || load_our_cameras
install -D -m 0755 "$REPO/nm/90-borescope-bridge" "$DISPATCHER"
# NetworkManager manages the radio only: the USB links of multi.sh are configured by hand.
mkdir -p "${NMCONF%/*}"
printf '[keyfile]\nunmanaged-devices=except:interface-name:%s\n' "$PC_IF" > "$NMCONF"
systemctl start NetworkManager
nm_ready() { nmcli -t -f DEVICE,STATE device | grep -qx "$PC_IF:disconnected"; }
wait_for 60 nm_ready || note "NetworkManager: $(nmcli -t -f DEVICE,STATE device | tr '\n' ' ')"
wait_for 300 grep -q 'simulated borescope.* listening on' "$LOGS/wsimulator.log" \
  || note "the simulator is not listening yet: $(tail -n2 "$LOGS/wsimulator.log")"
ssid_seen() { nmcli -t -f SSID device wifi list ifname "$PC_IF" --rescan yes | grep -qx "$SSID"; }
wait_for 60 ssid_seen || note "NetworkManager does not list $SSID yet"

t=$SECONDS
if nmcli --wait 90 device wifi connect "$SSID" password "$PSK" ifname "$PC_IF" > "$LOGS/nmcli.log" 2>&1 \
   && ip -4 addr show dev "$PC_IF" | grep -q 'inet 192.168.10.100/24'; then
  ok "NetworkManager joins the scope's access point" \
    "$PC_IF has 192.168.10.100/24 from the scope's DHCP server after $((SECONDS - t)) s; gateway: $(nmcli -g IP4.GATEWAY device show "$PC_IF" | grep . || echo none)"
else
  bad "NetworkManager joins the scope's access point" "$(tr '\n' ' ' < "$LOGS/nmcli.log"); $(ip -4 -br addr show dev "$PC_IF")"
fi

if wait_for 60 instance_active "$PC_IF"; then
  ok "the dispatcher starts $(instance_of "$PC_IF") by itself" \
    "after $((SECONDS - t)) s; $(journalctl -b -t borescope-bridge --no-pager -o cat | grep 'joined' | tail -n1)"
else
  bad "the dispatcher starts $(instance_of "$PC_IF") by itself" \
    "$(systemctl is-active "$(instance_of "$PC_IF")"); $(journalctl -b -u NetworkManager-dispatcher --no-pager -o cat | tail -n3 | tr '\n' ' ')"
fi

DEV=
if wait_for 180 streaming "$PC_IF"; then
  DEV=$(status_of "$PC_IF" | json_get camera)
  ok "the WiFi instance streams from the scope" \
    "model $(status_of "$PC_IF" | json_get model), camera $DEV, $(status_of "$PC_IF" | json_get resolution)"
else
  bad "the WiFi instance streams from the scope" \
    "$(status_of "$PC_IF" | json_get state); $(journalctl -b -u "$(instance_of "$PC_IF")" --no-pager -o cat | tail -n3 | tr '\n' ' ')"
fi
if [ -n "$DEV" ] && read_frames "$OUT/wifi.rgb" 10 wifi; then
  directive FRAMES "the WiFi scope's camera shows its picture" "$OUT/wifi.rgb" rgb24 $SIZE
else
  bad "the WiFi scope's camera shows its picture" "no frames from ${DEV:-no camera}: $(tail -n2 "$LOGS/wifi-ffmpeg.log" 2>/dev/null | tr '\n' ' ')"
fi

# ---- the PC leaves the scope's network: the dispatcher stops the instance
t=$SECONDS
nmcli connection down id "$SSID" >> "$LOGS/nmcli.log" 2>&1
if wait_for 60 instance_stopped "$PC_IF"; then
  ok "leaving the scope's network stops the instance" "$(instance_of "$PC_IF") $(systemctl is-active "$(instance_of "$PC_IF")") after $((SECONDS - t)) s"
else
  bad "leaving the scope's network stops the instance" "$(systemctl is-active "$(instance_of "$PC_IF")") after $((SECONDS - t)) s"
fi

# ---- a headless box: systemd-networkd and wpa_supplicant join the same scope, networkd-dispatcher
# runs the same hook (where make install puts it), which reads the DHCP server from networkd's lease
systemctl stop NetworkManager wpa_supplicant
ip addr flush dev "$PC_IF"
for state in routable no-carrier off; do
  install -D -m 0755 "$REPO/nm/90-borescope-bridge" "/etc/networkd-dispatcher/$state.d/90-borescope-bridge"
done
printf '[Match]\nName=%s\n[Network]\nDHCP=ipv4\n' "$PC_IF" > /etc/systemd/network/60-bsvm-wifi.network
printf 'ctrl_interface=/run/wpa_supplicant\nnetwork={\n  ssid="%s"\n  psk="%s"\n}\n' "$SSID" "$PSK" \
  > "/etc/wpa_supplicant/wpa_supplicant-$PC_IF.conf"
systemctl start systemd-networkd networkd-dispatcher
t=$SECONDS
systemctl start "wpa_supplicant@$PC_IF"
lease() { sed -n "s/^$1=//p" "/run/systemd/netif/leases/$(cat "/sys/class/net/$PC_IF/ifindex")" 2>/dev/null; }
if wait_for 120 instance_active "$PC_IF"; then
  ok "networkd-dispatcher starts $(instance_of "$PC_IF") by itself" \
    "after $((SECONDS - t)) s; networkd's lease: address $(lease ADDRESS), DHCP server $(lease SERVER_ADDRESS), router $(lease ROUTER | grep . || echo none)"
else
  bad "networkd-dispatcher starts $(instance_of "$PC_IF") by itself" \
    "$(networkctl status "$PC_IF" --no-pager 2>&1 | grep -i -E 'state|address' | tr '\n' ' '); $(journalctl -b -u networkd-dispatcher --no-pager -o cat | tail -n3 | tr '\n' ' ')"
fi
if wait_for 180 streaming "$PC_IF"; then
  ok "the instance networkd started streams" "$(status_of "$PC_IF" | json_get frames_received) frames, model $(status_of "$PC_IF" | json_get model)"
else
  bad "the instance networkd started streams" "$(status_of "$PC_IF" | json_get state)"
fi
t=$SECONDS
systemctl stop "wpa_supplicant@$PC_IF"
if wait_for 60 instance_stopped "$PC_IF"; then
  ok "losing the scope's network under networkd stops the instance" "$(networkctl list --no-legend --no-pager "$PC_IF" | tr -s ' '); after $((SECONDS - t)) s"
else
  bad "losing the scope's network under networkd stops the instance" "$(systemctl is-active "$(instance_of "$PC_IF")"); $(networkctl list --no-legend --no-pager "$PC_IF" | tr -s ' ')"
fi
exit 0
