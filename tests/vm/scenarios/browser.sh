#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# In-guest: headless Chromium (as root, so no sandbox) opens the camera through
# getUserMedia, the path of browser video calls. cam.html logs one CAMRESULT
# line on stderr; the host checks the label and compares the picture.
# Needs DEV, SIZE, REPO, OUT; the daemon must be streaming.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/scenarios/lib.sh
. "$HERE/lib.sh"
name="Chromium getUserMedia reads the camera labelled Borescope"
command -v chromium >/dev/null || { bad "$name" "chromium is not installed (tests/vm/setup installs it)"; exit 0; }
profile=$(mktemp -d)
log=$LOGS/chromium.log
t0=$SECONDS
# Above the daemon and simulator, which keep both emulated CPUs busy.
# --headless does not wait for getUserMedia with --dump-dom: poll the console line instead.
nice -n -15 setsid chromium --headless --no-sandbox --disable-gpu --use-fake-ui-for-media-stream \
  --disable-background-networking --disable-component-update --disable-sync --no-first-run \
  --user-data-dir="$profile" --enable-logging=stderr --v=0 "file://$HERE/cam.html" >"$log" 2>&1 &
pid=$!
wait_for 180 grep -q CAMRESULT "$log"
found=$?
kill -TERM -- "-$pid" 2>/dev/null; sleep 0.5; kill -KILL -- "-$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ $found = 0 ]; then
  grep -o 'CAMRESULT {.*}' "$log" | head -n1 | cut -d' ' -f2- > "$OUT/chromium.json"
  directive BROWSER "$name" "$OUT/chromium.json" "$SIZE" "$((SECONDS - t0))"
else
  bad "$name" "no CAMRESULT line within 180 s; log tail: $(grep -v -i dbus "$log" | tail -n3 | tr '\n' ' ')"
fi
rm -rf "$profile"
