// SPDX-License-Identifier: GPL-3.0-or-later
// borescope-bridge live view: the MJPEG stream in an <img> (polling /frame.jpg where a browser
// does not paint it, as Safari on iPhone sometimes does not), snapshots with a flash and a strip,
// rotate/mirror for this viewer only (kept in localStorage), a status line, a Record button
// (the elapsed time while recording) and recordings in the strip as downloads. No dependencies.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const token = document.querySelector('meta[name="borescope-token"]').content;
  const img = $("live"), view = $("view"), flash = $("flash");
  const statusEl = $("status"), strip = $("strip"), snap = $("snap"), recBtn = $("record");
  const params = new URLSearchParams(location.search);
  const VIEW_KEY = "borescope-bridge.view";
  const STRIP_MAX = 30;
  const PAINT_CHECK_MS = 4000;
  let mode = params.has("poll") ? "poll" : "stream";
  let state = { state: "starting", streaming: false };
  let status = null;
  let notice = null;
  let pollRunning = false;
  let flashes = 0;
  const shown = new Set();

  // ---- this viewer's rotate / mirror -------------------------------------------------------
  let look = { rotate: 0, mirror: false };
  try { Object.assign(look, JSON.parse(localStorage.getItem(VIEW_KEY) || "{}")); } catch (e) { /* private mode */ }
  function saveLook() {
    try { localStorage.setItem(VIEW_KEY, JSON.stringify(look)); } catch (e) { /* private mode */ }
  }
  function layout() {
    const w = img.naturalWidth || 16, h = img.naturalHeight || 9;
    const turned = look.rotate % 180 !== 0;
    const s = Math.min(view.clientWidth / (turned ? h : w), view.clientHeight / (turned ? w : h));
    img.style.width = `${w * s}px`;
    img.style.height = `${h * s}px`;
    // Mirror last, so it flips left and right as the viewer sees it, whatever the rotation.
    img.style.transform =
      `translate(-50%, -50%) scaleX(${look.mirror ? -1 : 1}) rotate(${look.rotate}deg)`;
  }
  $("rotate").addEventListener("click", () => { look.rotate = (look.rotate + 90) % 360; saveLook(); layout(); });
  $("mirror").addEventListener("click", () => { look.mirror = !look.mirror; saveLook(); layout(); });
  // The view changes size when the strip appears or the phone turns; the picture's size
  // changes with the borescope's resolution (multipart parts fire no load event everywhere).
  if (window.ResizeObserver) new ResizeObserver(layout).observe(view);
  else window.addEventListener("resize", layout);
  img.addEventListener("load", layout);
  let laidOut = "";
  setInterval(() => {
    const key = `${img.naturalWidth}x${img.naturalHeight}`;
    if (key !== laidOut) { laidOut = key; layout(); }
  }, 250);

  // ---- the picture ----------------------------------------------------------------------
  function setMode(m) { mode = m; document.body.dataset.mode = m; }
  function sample() {
    // A few pixels of what the <img> shows now: equal samples seconds apart while the
    // bridge streams mean the stream does not paint.
    try {
      const c = document.createElement("canvas");
      c.width = 16; c.height = 9;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0, 16, 9);
      return Array.from(g.getImageData(0, 0, 16, 9).data).join(",");
    } catch (e) { return null; }
  }
  function startStream() {
    if (mode !== "stream" || document.hidden) return;
    img.src = `/stream.mjpeg?t=${Date.now()}`;
    const started = img.src;
    setTimeout(() => {
      if (img.src !== started || mode !== "stream") return;
      if (!img.naturalWidth) { fallBack("the stream did not paint"); return; }
      const first = sample();
      setTimeout(() => {
        if (img.src !== started || mode !== "stream" || !state.streaming) return;
        if (first !== null && first === sample() && status && status.fps > 1) fallBack("the stream froze");
      }, 3000);
    }, PAINT_CHECK_MS);
  }
  function fallBack(why) {
    console.log(`borescope-bridge: ${why}; fetching single pictures instead`);
    setMode("poll");
    img.removeAttribute("src");
    poll();
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  async function poll() {
    if (pollRunning) return;
    pollRunning = true;
    try {
      while (mode === "poll" && !document.hidden) {
        const t0 = performance.now();
        try {
          const r = await fetch("/frame.jpg", { cache: "no-store" });
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          const url = URL.createObjectURL(await r.blob());
          const old = img.src;
          img.src = url;
          await img.decode().catch(() => {});
          if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        } catch (e) {
          await sleep(1000);
        }
        await sleep(Math.max(0, 33 - (performance.now() - t0)));
      }
    } finally { pollRunning = false; }
  }
  img.addEventListener("error", () => {
    if (mode === "stream" && img.getAttribute("src")) setTimeout(startStream, 2000);
  });
  function show() {
    if (document.hidden) { img.removeAttribute("src"); return; } // a hidden page holds no stream
    if (mode === "stream") startStream(); else poll();
  }
  document.addEventListener("visibilitychange", show);
  window.addEventListener("pagehide", () => img.removeAttribute("src"));

  // ---- status line -------------------------------------------------------------------------
  function describe() {
    if (notice) return notice;
    if (!status) return "connecting…";
    const s = state.state || status.state;
    if (s === "streaming") {
      const parts = ["streaming"];
      if (status.resolution) parts.push(status.resolution);
      if (status.fps) parts.push(`${Number(status.fps).toFixed(1)} fps`);
      return parts.join(" · ");
    }
    if (s === "stalled") return "no signal: the borescope sends no pictures";
    return "waiting for the borescope (no signal)";
  }
  function render() {
    statusEl.textContent = describe();
    statusEl.classList.toggle("bad", !state.streaming);
    document.body.dataset.state = state.state;
  }
  async function refreshStatus() {
    try {
      const r = await fetch("/api/status", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      status = await r.json();
      recordState(status.recording);
      if (!events) state = { state: status.state, streaming: status.state === "streaming" };
    } catch (e) {
      status = null;
      notice = "lost the connection to borescope-bridge; retrying…";
      render();
      return;
    }
    if (notice && notice.startsWith("lost")) notice = null;
    render();
  }
  function say(text, ms) {
    notice = text; render();
    setTimeout(() => { if (notice === text) { notice = null; render(); } }, ms);
  }

  // ---- snapshots ---------------------------------------------------------------------------
  function addThumb(name, fresh) {
    if (shown.has(name)) return;
    shown.add(name);
    const a = document.createElement("a");
    a.href = `/snapshots/${encodeURIComponent(name)}`;
    a.target = "_blank";
    a.rel = "noopener";
    a.title = name;
    a.dataset.name = name;
    if (fresh) a.className = "new";
    const t = document.createElement("img");
    t.src = a.href; t.alt = name; t.loading = "lazy";
    a.appendChild(t);
    if (fresh) strip.prepend(a); else strip.append(a);
    while (strip.children.length > STRIP_MAX) strip.lastElementChild.remove();
  }
  function flashNow() {
    flash.classList.remove("on");
    void flash.offsetWidth; // restart the animation
    flash.classList.add("on");
    flashes += 1;
    document.body.dataset.flashes = String(flashes);
  }
  async function list(url) {
    try {
      const r = await fetch(url, { cache: "no-store" });
      return r.ok ? await r.json() : [];
    } catch (e) { return []; }
  }
  async function loadStrip() {
    // Snapshots and recordings together, newest first (the strip also fills from events).
    const [snaps, videos] = await Promise.all([list("/api/snapshots"), list("/api/recordings")]);
    const all = snaps.map((f) => ({ ...f, video: false }))
      .concat(videos.map((f) => ({ ...f, video: true })));
    all.sort((a, b) => b.time - a.time);
    all.slice(0, STRIP_MAX).forEach((f) => (f.video ? addVideo(f.name, f.duration, false) : addThumb(f.name, false)));
  }
  snap.addEventListener("click", async () => {
    snap.disabled = true;
    try {
      const r = await fetch("/api/snapshot", { method: "POST", headers: { "X-Borescope-Token": token } });
      const reply = await r.json().catch(() => ({ ok: false, error: `HTTP ${r.status}` }));
      if (reply.ok) { if (!events) { flashNow(); addThumb(reply.name, true); } }
      else say(`snapshot failed: ${reply.error}`, 6000);
    } catch (e) {
      say("snapshot failed: no connection to borescope-bridge", 6000);
    } finally { snap.disabled = false; }
  });

  // ---- recording -------------------------------------------------------------------------
  // The button shows "Record", or "● M:SS" while a recording runs (any origin: this page,
  // another viewer, `borescope-bridge record`, the scope's video key).
  let rec = { running: false, since: 0 };
  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  function renderRecord() {
    recBtn.classList.toggle("on", rec.running);
    recBtn.textContent = rec.running ? `● ${clock((Date.now() - rec.since) / 1000)}` : "Record";
  }
  function recordState(r) {
    if (!r) return;
    const running = !!r.running;
    if (running && !rec.running) rec.since = Date.now() - 1000 * (r.duration_s || 0);
    rec.running = running;
    renderRecord();
  }
  function addVideo(name, duration, fresh) {
    if (shown.has(name)) return;
    shown.add(name);
    const a = document.createElement("a");
    a.href = `/recordings/${encodeURIComponent(name)}`;
    a.download = name;
    a.className = fresh ? "video new" : "video";
    a.title = `${name} (download)`;
    a.dataset.name = name;
    a.textContent = `▶ ${duration == null ? "video" : clock(duration)}`;
    if (fresh) strip.prepend(a); else strip.append(a);
    while (strip.children.length > STRIP_MAX) strip.lastElementChild.remove();
  }
  recBtn.addEventListener("click", async () => {
    recBtn.disabled = true;
    const action = rec.running ? "stop" : "start";
    try {
      const r = await fetch(`/api/record/${action}`, { method: "POST", headers: { "X-Borescope-Token": token } });
      const reply = await r.json().catch(() => ({ ok: false, error: `HTTP ${r.status}` }));
      if (reply.ok) {
        if (action === "start") { rec = { running: true, since: Date.now() }; }
        else { rec.running = false; addVideo(reply.name, reply.duration_s, true); }
        renderRecord();
      } else {
        say(`recording: ${reply.error}`, 6000);
        refreshStatus();
      }
    } catch (e) {
      say("recording: no connection to borescope-bridge", 6000);
    } finally { recBtn.disabled = false; }
  });
  setInterval(() => { if (rec.running) renderRecord(); }, 500);

  // ---- events ------------------------------------------------------------------------------
  let events = null;
  function listen() {
    events = new EventSource("/api/events");
    events.addEventListener("snapshot", (e) => { flashNow(); addThumb(JSON.parse(e.data).name, true); });
    events.addEventListener("recording", (e) => {
      const r = JSON.parse(e.data);
      if (r.state === "started") recordState({ running: true, duration_s: 0 });
      else {
        recordState({ running: false });
        if (r.reason) say(`recording stopped: ${r.reason}`, 8000);
        refreshStatus();
        list("/api/recordings").then((files) => {
          const f = files.find((x) => x.name === r.name);
          if (f) addVideo(f.name, f.duration, true);
        });
      }
    });
    events.addEventListener("state", (e) => {
      const was = state.streaming;
      state = JSON.parse(e.data);
      render();
      refreshStatus();
      if (state.streaming && !was && mode === "stream" && !img.naturalWidth) startStream();
    });
  }

  setMode(mode);
  layout();
  listen();
  refreshStatus();
  setInterval(refreshStatus, 2000);
  loadStrip();
  show();
})();
