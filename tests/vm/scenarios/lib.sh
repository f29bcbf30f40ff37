# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck shell=bash
# Helpers shared by the in-guest scenarios. Each scenario writes one line per
# check to $OUT/results:
#   PASS|FAIL|NOTRUN <check>: <figures>
# and, for pictures the host compares (tests/vm/evaluate.py), directives:
#   FRAMES <check> <file> <pixfmt> <W>x<H>          every frame must be a live frame
#   UNPLUG <check> <file> <pixfmt> <W>x<H> <a> <b> <c>   frames a..b-1 "no signal", c.. live
#   MJPEG <check> <file>...                          each JPEG byte-identical to a sent one
# The guest does no picture maths: Python is ~20x slower under emulation.

REPO=${REPO:?REPO (the checkout) must be set}
OUT=${OUT:?OUT (the shared result directory) must be set}
# shellcheck disable=SC2034  # used by the scenarios
BB=("$REPO/.venv/bin/python" -m bridge)
LOGS=$OUT/logs
mkdir -p "$LOGS"
PIDS=()

# Every check names the module release it ran on (MODULE_TAG, set by tests/vm/e2e).
TAG=${MODULE_TAG:+[$MODULE_TAG] }
result() {  # PASS|FAIL|NOTRUN, check name, figures
  printf '%s %s%s: %s\n' "$1" "$TAG" "$2" "$3" >> "$OUT/results"
  printf '[guest %s] %s %s%s: %s\n' "$(date +%T)" "$1" "$TAG" "$2" "$3"
}
ok() { result PASS "$1" "$2"; }
bad() { result FAIL "$1" "$2"; }
directive() { local kind=$1 name=$2; shift 2; echo "$kind \"$TAG$name\" $*" >> "$OUT/results"; }
note() { printf '[guest %s] %s\n' "$(date +%T)" "$*"; }

wait_for() {  # seconds, command...: poll until the command succeeds
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge "$end" ] && return 1
    sleep 0.2
  done
}

bg() {  # log-name, command...: start in the background, remember the pid in $BG
  "${@:2}" >> "$LOGS/$1.log" 2>&1 &
  BG=$!
  PIDS+=("$BG")
}

stop_pid() {  # pid [seconds]: SIGTERM, wait, then SIGKILL; the exit status in $STOPPED
  local pid=$1 n=$(( ${2:-5} * 5 ))
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.2; n=$((n - 1)); done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  # shellcheck disable=SC2034  # read by the scenarios
  STOPPED=$?
}

stop_all() {
  local p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill -KILL "$p" 2>/dev/null; done
}

# The loopback device labelled "Borescope" (our modprobe file's card_label).
find_borescope_dev() {
  local d
  for d in /sys/class/video4linux/video*; do
    [ "$(cat "$d/name" 2>/dev/null)" = Borescope ] && { echo "/dev/${d##*/}"; return 0; }
  done
  return 1
}

# With exclusive_caps=1 the device offers capture only while a producer writes.
is_capture() { v4l2-ctl -d "$1" -D 2>/dev/null | grep -q 'Video Capture$'; }
dev_size() { v4l2-ctl -d "$1" -V 2>/dev/null | sed -n 's|.*Width/Height *: *\([0-9]*\)/\([0-9]*\).*|\1x\2|p'; }
dev_fourcc() { v4l2-ctl -d "$1" -V 2>/dev/null | sed -n "s|.*Pixel Format *: *'\([^']*\)'.*|\1|p"; }
dev_fps() { v4l2-ctl -d "$1" --get-parm 2>/dev/null | sed -n 's|.*Frames per second: *\([0-9.]*\).*|\1|p'; }

# Our control socket, with the system Python: one JSON line each way. A tiny
# client because `borescope-bridge status` would import the whole package
# (seconds under emulation).
ctl_status() {  # socket -> the status JSON on stdout
  /usr/bin/python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(b"{\"cmd\": \"status\"}\n"); buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk: break
    buf += chunk
sys.stdout.write(buf.decode())' "$1"
}
json_get() {  # key: a value from the JSON on stdin (top level or one level down)
  /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin); k = sys.argv[1]
v = d.get(k, next((x[k] for x in d.values() if isinstance(x, dict) and k in x), None))
print(v)' "$1"
}

# ---- the service and the emulated USB NIC (system.sh, package.sh) ----
UNIT=borescope-bridge.service
usbdev=/sys/bus/usb/devices/1-1  # QEMU's usb-net NIC (tests/vm/run --usb-net)
prop() { systemctl show -p "$1" --value "$UNIT"; }
active() { [ "$(systemctl is-active "$UNIT")" = active ]; }
inactive() { [ "$(systemctl is-active "$UNIT")" = inactive ]; }
nic() {  # the USB NIC's interface name (after udev's rename)
  local n
  for n in /sys/class/net/*; do
    [[ $(readlink -f "$n/device") == "$(readlink -f $usbdev)"/* ]] && { echo "${n##*/}"; return 0; }
  done
  return 1
}
nic_renamed() { local n; n=$(nic) && [[ $n != usb* && $n != eth* ]]; }
read_frames() {  # file count log-name: frames from the service's camera ($DEV), as rgb24
  timeout 60 ffmpeg -nostdin -hide_banner -loglevel error -f v4l2 -i "$DEV" -frames:v "$2" \
    -f rawvideo -pix_fmt rgb24 -y "$1" 2>>"$LOGS/$3-ffmpeg.log"
}
load_installed_module() {  # check name: our modules-load.d + modprobe.d files load the module; sets DEV
  systemctl restart systemd-modules-load.service
  udevadm settle --timeout=30
  if DEV=$(find_borescope_dev); then
    ok "$1" "$DEV labelled Borescope"
  else
    bad "$1" "no Borescope device: $(journalctl -b -u systemd-modules-load --no-pager -o cat | tail -n2 | tr '\n' ' ')"
    DEV=/dev/video42
  fi
}
sim_ready() { grep -q 'simulated borescope.* listening on' "$LOGS/simulator.log"; }
wait_sim_ready() {  # seconds: the simulator encodes its loop first (slow under TCG)
  wait_for "$1" sim_ready || note "the simulator is not listening yet: $(tail -n2 "$LOGS/simulator.log")"
}

# ---- instances of the template unit (multi.sh, wifi.sh) ----
instance_of() { echo "borescope-bridge@$1.service"; }
instance_active() { [ "$(systemctl is-active "$(instance_of "$1")")" = active ]; }
instance_gone() { ! instance_active "$1"; }
instance_stopped() { [ "$(systemctl is-active "$(instance_of "$1")")" = inactive ]; }
status_of() { ctl_status "/run/borescope-bridge/$1/control.sock"; }
streaming() { status_of "$1" | json_get state | grep -qx streaming; }
install_template() {  # linger: the template unit, its user and a config for the slow guest
  # Debian's python3 and its packages (as the .deb runs), not the checkout's venv, and a copy
  # of the checkout's package under /usr/local: the unit's ProtectHome= and PrivateTmp= hide
  # /root and /tmp, where the checkout and its venv may live (CI clones into /tmp).
  local lib=/usr/local/lib/borescope-bridge-e2e
  rm -rf "$lib"; mkdir -p "$lib"
  cp -r "$REPO/bridge" "$lib/"
  systemd-sysusers "$REPO/systemd/borescope-bridge.sysusers.conf"
  sed "s|^ExecStart=/usr/local/bin/borescope-bridge |ExecStart=/usr/bin/env PYTHONPATH=$lib /usr/bin/python3 -m bridge |" \
    "$REPO/systemd/borescope-bridge@.service" > /etc/systemd/system/borescope-bridge@.service
  mkdir -p /etc/borescope-bridge
  printf '# e2e: wait for the slow simulators\nwait = 300\nlinger = %s\n' "$1" > /etc/borescope-bridge/config.toml
  systemctl daemon-reload
}
borescope_cameras() {  # the loopback devices an instance may take ("Borescope", "Borescope N")
  local d
  for d in /sys/class/video4linux/video*; do
    grep -qx 'Borescope\( [0-9]*\)\{0,1\}' "$d/name" 2>/dev/null && echo "/dev/${d##*/} $(cat "$d/name")"
  done
}
load_our_cameras() {  # v4l2loopback with our modprobe file's options, as the package loads it
  install -D -m 0644 "$REPO/systemd/borescope-bridge.modprobe.conf" /etc/modprobe.d/borescope-bridge.conf
  modprobe -r v4l2loopback 2>/dev/null
  modprobe v4l2loopback && udevadm settle --timeout=30
}
