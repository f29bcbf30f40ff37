// SPDX-License-Identifier: GPL-3.0-or-later
// borescope-bridge live view: the MJPEG stream in an <img> (polling /frame.jpg where a browser
// does not paint it, as Safari on iPhone sometimes does not), zoom and pan, rotate/mirror for
// this viewer only (kept in localStorage), snapshots and recordings in a gallery, every failure
// in a banner, a status line. Every request goes through window.bbAuth (credential.js).
// No dependencies.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const auth = window.bbAuth;
  const img = $("live"), view = $("view"), flash = $("flash");
  const statusEl = $("status"), strip = $("strip"), snap = $("snap"), rec = $("record");
  const params = new URLSearchParams(location.search);
  const VIEW_KEY = "borescope-bridge.view";
  const GALLERY_MAX = 40;
  const PAINT_CHECK_MS = 4000;
  const RECONNECT_MS = 2000;
  const ZOOM_MAX = 4;
  const ZOOM_STEP = 1.5;
  const SOURCES = { button: "the borescope's button", page: "the web page", control: "a command" };
  let mode = params.has("poll") ? "poll" : "stream";
  let state = { state: "starting", streaming: false };
  let status = null;
  let notice = null;
  let pollRunning = false;
  let streamGen = 0;
  let flashes = 0;
  let snapBusy = false;
  const shown = new Set();

  // ---- failures: a banner over the picture, whole and readable, until dismissed ------------
  let lastError = { text: "", at: 0 };
  function showError(text) {
    $("error-text").textContent = text;
    $("error").hidden = false;
    lastError = { text, at: Date.now() };
  }
  $("error-close").addEventListener("click", () => { $("error").hidden = true; });
  let denied = false; // the bridge refused this page's credential (a new token): say so until it works
  auth.onLost(() => {
    denied = true;
    notice = "no access: open the address that `borescope-bridge url` prints again";
    showError(
      "borescope-bridge no longer accepts this page: open the address that " +
      "`borescope-bridge url` prints again.");
    render();
  });

  // ---- this viewer's rotate / mirror / zoom ----------------------------------------------
  let look = { rotate: 0, mirror: false };
  try { Object.assign(look, JSON.parse(localStorage.getItem(VIEW_KEY) || "{}")); } catch (e) { /* private mode */ }
  function saveLook() {
    try { localStorage.setItem(VIEW_KEY, JSON.stringify(look)); } catch (e) { /* private mode */ }
  }
  // Zoom factor and pan (CSS pixels of the view, the picture's centre from the view's centre).
  const zoom = { z: 1, x: 0, y: 0 };
  let box = { w: 0, h: 0 }; // the picture's on-screen size at 1x, rotation included
  function layout() {
    const w = img.naturalWidth || 4, h = img.naturalHeight || 3;
    const turned = look.rotate % 180 !== 0;
    // Portrait: the view takes the picture's shape; landscape: the picture fits the view.
    view.style.setProperty("--aspect", String(turned ? h / w : w / h));
    const s = Math.min(view.clientWidth / (turned ? h : w), view.clientHeight / (turned ? w : h));
    img.style.width = `${w * s}px`;
    img.style.height = `${h * s}px`;
    box = { w: (turned ? h : w) * s, h: (turned ? w : h) * s };
    // Panned only as far as the zoomed picture still covers the view.
    const mx = Math.max(0, (box.w * zoom.z - view.clientWidth) / 2);
    const my = Math.max(0, (box.h * zoom.z - view.clientHeight) / 2);
    zoom.x = Math.min(mx, Math.max(-mx, zoom.x));
    zoom.y = Math.min(my, Math.max(-my, zoom.y));
    // Mirror after the rotation, so it flips left and right as the viewer sees them.
    img.style.transform = `translate(-50%, -50%) translate(${zoom.x}px, ${zoom.y}px) ` +
      `scale(${zoom.z}) scaleX(${look.mirror ? -1 : 1}) rotate(${look.rotate}deg)`;
    document.body.dataset.zoom = zoom.z.toFixed(2);
    $("zoom-reset").textContent = zoom.z === 1 ? "1×" : `${zoom.z.toFixed(1)}×`;
    $("zoom-out").disabled = zoom.z <= 1;
    $("zoom-in").disabled = zoom.z >= ZOOM_MAX;
  }
  // Zoom to `z`, keeping the point (cx, cy) (from the view's centre) where it is on screen.
  function zoomTo(z, cx = 0, cy = 0) {
    z = Math.min(ZOOM_MAX, Math.max(1, z));
    if (z < 1.01) z = 1;
    const k = z / zoom.z;
    zoom.x = cx - (cx - zoom.x) * k;
    zoom.y = cy - (cy - zoom.y) * k;
    zoom.z = z;
    layout();
  }
  function fromCentre(x, y) {
    const r = view.getBoundingClientRect();
    return [x - r.left - r.width / 2, y - r.top - r.height / 2];
  }
  $("zoom-in").addEventListener("click", () => zoomTo(zoom.z * ZOOM_STEP));
  $("zoom-out").addEventListener("click", () => zoomTo(zoom.z / ZOOM_STEP));
  $("zoom-reset").addEventListener("click", () => { zoom.x = zoom.y = 0; zoomTo(1); });
  view.addEventListener("wheel", (e) => {
    e.preventDefault();
    const dy = e.deltaY * (e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 400 : 1);
    zoomTo(zoom.z * Math.exp(-dy * 0.0015), ...fromCentre(e.clientX, e.clientY));
  }, { passive: false });
  view.addEventListener("dblclick", (e) => {
    if (e.target.closest("button, #error")) return;
    if (zoom.z > 1) { zoom.x = zoom.y = 0; zoomTo(1); } else zoomTo(2, ...fromCentre(e.clientX, e.clientY));
  });
  // One finger (or the mouse) pans a zoomed picture; two pinch and pan together.
  const pointers = new Map();
  function centroid() {
    let x = 0, y = 0;
    for (const p of pointers.values()) { x += p.x; y += p.y; }
    return { x: x / pointers.size, y: y / pointers.size };
  }
  function spread() {
    const [a, b] = [...pointers.values()];
    return Math.hypot(a.x - b.x, a.y - b.y);
  }
  view.addEventListener("pointerdown", (e) => {
    if (e.target.closest("button, a, #error") || pointers.size >= 2) return;
    view.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
  });
  view.addEventListener("pointermove", (e) => {
    const p = pointers.get(e.pointerId);
    if (!p) return;
    const c0 = centroid(), d0 = pointers.size === 2 ? spread() : 0;
    p.x = e.clientX; p.y = e.clientY;
    const c1 = centroid();
    zoom.x += c1.x - c0.x;
    zoom.y += c1.y - c0.y;
    if (d0 > 0) zoomTo(zoom.z * spread() / d0, ...fromCentre(c1.x, c1.y));
    else layout();
  });
  for (const type of ["pointerup", "pointercancel"]) {
    view.addEventListener(type, (e) => pointers.delete(e.pointerId));
  }
  $("rotate").addEventListener("click", () => { look.rotate = (look.rotate + 90) % 360; saveLook(); layout(); });
  $("mirror").addEventListener("click", () => { look.mirror = !look.mirror; saveLook(); layout(); });
  // The view changes size when the phone turns; the picture's size changes with the
  // borescope's resolution (multipart parts fire no load event everywhere).
  if (window.ResizeObserver) new ResizeObserver(layout).observe(view);
  else window.addEventListener("resize", layout);
  img.addEventListener("load", layout);
  let laidOut = "";
  setInterval(() => {
    const key = `${img.naturalWidth}x${img.naturalHeight}`;
    if (key !== laidOut) { laidOut = key; layout(); }
  }, 250);

  // ---- full screen (where the browser allows it for a page: not on an iPhone) -------------
  const full = $("fullscreen");
  full.hidden = !document.fullscreenEnabled;
  full.addEventListener("click", () => {
    const done = document.fullscreenElement
      ? document.exitFullscreen() : document.documentElement.requestFullscreen();
    done.catch((e) => showError(`Full screen is not available here: ${e.message}`));
  });
  document.addEventListener("fullscreenchange", () => {
    const on = Boolean(document.fullscreenElement);
    full.setAttribute("aria-pressed", String(on));
    full.title = on ? "leave full screen" : "full screen";
  });

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
  async function startStream() {
    if (mode !== "stream" || document.hidden) return;
    const gen = ++streamGen; // a newer start, a fallback or hiding the page cancels this one
    const src = await auth.url(`/stream.mjpeg?t=${Date.now()}`);
    if (gen !== streamGen || mode !== "stream" || document.hidden) return;
    img.src = src;
    const mine = () => gen === streamGen && mode === "stream";
    setTimeout(() => {
      if (!mine()) return;
      if (!img.naturalWidth) { fallBack("the stream did not paint"); return; }
      const first = sample();
      setTimeout(() => {
        if (!mine() || !state.streaming) return;
        if (first !== null && first === sample() && status && status.fps > 1) fallBack("the stream froze");
      }, 3000);
    }, PAINT_CHECK_MS);
  }
  function fallBack(why) {
    console.log(`borescope-bridge: ${why}; fetching single pictures instead`);
    streamGen += 1;
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
          const r = await auth.fetch("/frame.jpg", { cache: "no-store" });
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
    if (mode === "stream" && img.getAttribute("src")) setTimeout(startStream, RECONNECT_MS);
  });
  function show() {
    if (document.hidden) { streamGen += 1; img.removeAttribute("src"); return; } // a hidden page holds no stream
    if (mode === "stream") startStream(); else poll();
  }
  document.addEventListener("visibilitychange", show);
  window.addEventListener("pagehide", () => { streamGen += 1; img.removeAttribute("src"); });

  // ---- header: name, other instances, status line -------------------------------------------
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
    snap.disabled = snapBusy || !state.streaming;
    snap.title = state.streaming ? "save this picture" : "no signal: there is no picture to save";
  }
  async function refreshStatus() {
    try {
      const r = await auth.fetch("/api/status", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      status = await r.json();
      if (!listening()) state = { state: status.state, streaming: status.state === "streaming" };
    } catch (e) {
      status = null;
      if (!listening()) state = { state: "unknown", streaming: false }; // nothing to snapshot
      if (!denied) notice = "lost the connection to borescope-bridge; retrying…";
      render();
      return;
    }
    if (denied) { denied = false; notice = null; }
    if (notice && notice.startsWith("lost")) notice = null;
    const where = status.interface ? ` · ${status.interface}` : "";
    $("name").textContent = `Borescope${where}`;
    document.title = `Borescope${where}`;
    recordingStatus(status.recording);
    render();
  }
  async function loadInstances() {
    try {
      const r = await auth.fetch("/api/instances", { cache: "no-store" });
      if (!r.ok) return; // 404: the only instance
      const nav = $("instances");
      nav.replaceChildren();
      for (const other of await r.json()) {
        const a = document.createElement("a");
        a.href = other.url || `${location.protocol}//${location.hostname}:${other.port}/`;
        a.textContent = other.interface || `port ${other.port}`;
        a.title = `the borescope on ${a.textContent}`;
        nav.append(a);
      }
      nav.hidden = !nav.children.length;
    } catch (e) { /* the header simply shows no others */ }
  }

  // ---- the gallery: snapshots and recordings, newest first ---------------------------------
  const SVG = document.querySelector(".sprite").namespaceURI; // no address in this file
  function icon(id) {
    const svg = document.createElementNS(SVG, "svg");
    const use = document.createElementNS(SVG, "use");
    use.setAttribute("href", `#${id}`);
    svg.append(use);
    return svg;
  }
  // A link whose address comes from auth.url() just before it is used: a ticket may be short-lived.
  function linkTo(a, path) {
    a.href = path;
    let fresh = 0;
    const refresh = async () => { a.href = await auth.url(path); fresh = Date.now(); };
    a.addEventListener("pointerdown", refresh);
    a.addEventListener("focus", refresh);
    a.addEventListener("click", (e) => {
      if (Date.now() - fresh < 20000) return;
      e.preventDefault();
      refresh().then(() => a.click());
    });
  }
  function setImage(el, path) { auth.url(path).then((u) => { el.src = u; }).catch(() => {}); }
  const probe = () => new File([new Uint8Array(1)], "probe.jpg", { type: "image/jpeg" });
  const canShare = Boolean(navigator.share && navigator.canShare && navigator.canShare({ files: [probe()] }));
  async function share(path, name) {
    try {
      const r = await auth.fetch(path);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const blob = await r.blob(); // its type is the one the bridge serves the file with
      await navigator.share({ files: [new File([blob], name, { type: blob.type })], title: name });
    } catch (e) {
      if (e.name !== "AbortError") showError(`Could not share ${name}: ${e.message}`);
    }
  }
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hourCycle: "h23", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const minutes = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  // A snapshot's name is the moment it was taken, to the millisecond (bridge/capture/names.py).
  function nameTime(name) {
    const m = /(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)-(\d{3})/.exec(name);
    return m ? new Date(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]).getTime() / 1000 : null;
  }
  // kind: "snapshot" or "recording"; f: {name, time?, duration?}
  function addItem(kind, f, fresh) {
    const key = `${kind}/${f.name}`;
    if (shown.has(key)) return;
    shown.add(key);
    const path = `/${kind}s/${encodeURIComponent(f.name)}`;
    const time = (kind === "snapshot" && nameTime(f.name)) || f.time || Date.now() / 1000;
    const item = document.createElement("div");
    item.className = fresh ? "item new" : "item";
    item.dataset.name = f.name;
    item.dataset.kind = kind;
    item.dataset.time = String(time);
    const open = document.createElement("a");
    open.className = "open";
    open.target = "_blank";
    open.rel = "noopener";
    open.title = `open ${f.name}`;
    linkTo(open, path);
    if (kind === "snapshot") {
      const t = document.createElement("img");
      t.alt = f.name; // not lazy: a ticket lives for seconds
      setImage(t, path);
      open.append(t);
    } else {
      open.append(icon("i-film"), f.duration ? minutes(f.duration) : "video");
    }
    const acts = document.createElement("div");
    acts.className = "acts";
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = clock(time);
    const save = document.createElement("a");
    save.className = "save";
    save.download = f.name;
    save.title = `download ${f.name}`;
    save.setAttribute("aria-label", `download ${f.name}`);
    save.append(icon("i-download"));
    linkTo(save, path);
    acts.append(when, save);
    if (canShare) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "share";
      b.title = `save or share ${f.name}`;
      b.setAttribute("aria-label", `save or share ${f.name}`);
      b.append(icon("i-share"));
      b.addEventListener("click", () => share(path, f.name));
      acts.append(b);
    }
    item.append(open, acts);
    // Newest first; a fresh one goes before others of the same moment.
    const later = [...strip.children].find((el) => fresh ? Number(el.dataset.time) <= time : Number(el.dataset.time) < time);
    strip.insertBefore(item, later || null);
    while (strip.children.length > GALLERY_MAX) {
      const last = strip.lastElementChild;
      shown.delete(`${last.dataset.kind}/${last.dataset.name}`);
      last.remove();
    }
  }
  function flashNow() {
    flash.classList.remove("on");
    void flash.offsetWidth; // restart the animation
    flash.classList.add("on");
    flashes += 1;
    document.body.dataset.flashes = String(flashes);
  }
  async function loadList(kind) {
    try {
      const r = await auth.fetch(`/api/${kind}s`, { cache: "no-store" });
      if (!r.ok) return; // no recordings on this bridge
      (await r.json()).slice(0, GALLERY_MAX).forEach((f) => addItem(kind, f, false));
    } catch (e) { /* the gallery fills from events */ }
  }
  snap.addEventListener("click", async () => {
    snapBusy = true; render();
    try {
      const r = await auth.fetch("/api/snapshot", { method: "POST" });
      const reply = await r.json().catch(() => ({ ok: false, error: `HTTP ${r.status}` }));
      if (reply.ok) { if (!listening()) { flashNow(); addItem("snapshot", reply, true); } }
      else showError(`Snapshot failed: ${reply.error}`);
    } catch (e) {
      showError("Snapshot failed: no connection to borescope-bridge");
    } finally { snapBusy = false; render(); }
  });

  // ---- recording (where the bridge records: its status has a "recording" object) -----------
  let recording = { running: false, since: 0, stopAsked: 0, error: null };
  function recordingStatus(r) {
    const available = Boolean(r && typeof r === "object" && "running" in r);
    rec.hidden = !available;
    if (!available) return;
    recording.running = Boolean(r.running);
    if (r.running) recording.since = Date.now() - 1000 * (Number(r.duration_s) || 0);
    if (r.last_error && r.last_error !== recording.error) showError(`Recording stopped: ${r.last_error}`);
    recording.error = r.last_error || null;
    renderRecording();
  }
  function renderRecording() {
    rec.classList.toggle("on", recording.running);
    rec.textContent = recording.running ? `● ${minutes((Date.now() - recording.since) / 1000)}` : "Record";
    rec.title = recording.running ? "stop recording" : "record a video";
  }
  setInterval(() => { if (recording.running) renderRecording(); }, 1000);
  rec.addEventListener("click", async () => {
    rec.disabled = true;
    if (recording.running) recording.stopAsked = Date.now();
    try {
      const r = await auth.fetch(`/api/record/${recording.running ? "stop" : "start"}`, { method: "POST" });
      if (r.status === 404) { rec.hidden = true; return; }
      const reply = await r.json().catch(() => ({ ok: r.ok, error: `HTTP ${r.status}` }));
      if (reply.ok === false) showError(`Recording: ${reply.error}`);
      refreshStatus();
    } catch (e) {
      showError("Recording: no connection to borescope-bridge");
    } finally { rec.disabled = false; }
  });

  // ---- events ------------------------------------------------------------------------------
  let events = null;
  const listening = () => events !== null && events.readyState === EventSource.OPEN;
  async function listen() {
    const es = new EventSource(await auth.url("/api/events"));
    events = es;
    const on = (kind, fn) => es.addEventListener(kind, (e) => fn(JSON.parse(e.data)));
    on("snapshot", (d) => { flashNow(); addItem("snapshot", d, true); });
    on("snapshot-failed", (d) => {
      // This page's own failure is on screen already, from its reply.
      if (d.source === "page" && lastError.text.endsWith(d.reason) && Date.now() - lastError.at < 10000) return;
      showError(`Snapshot failed (${SOURCES[d.source] || d.source}): ${d.reason}`);
    });
    on("state", (d) => {
      const was = state.streaming;
      state = d;
      render();
      refreshStatus();
      if (state.streaming && !was && mode === "stream" && !img.naturalWidth) startStream();
    });
    on("zoom", (d) => zoomTo(d.direction === "out" ? zoom.z / ZOOM_STEP : zoom.z * ZOOM_STEP));
    on("recording", (d) => {
      recording.running = d.state === "started";
      if (recording.running) recording.since = Date.now();
      else {
        // A stop this page asked for is no failure, whatever reason the bridge gives.
        if (d.reason && Date.now() - recording.stopAsked > 5000) showError(`Recording stopped: ${d.reason}`);
        loadList("recording");
      }
      renderRecording();
    });
    // Reconnect by hand, not by the browser: each connection needs a fresh auth.url().
    es.onerror = () => {
      es.close();
      if (events === es) events = null;
      setTimeout(listen, RECONNECT_MS);
    };
  }

  setMode(mode);
  layout();
  render();
  auth.ready().then(() => {
    listen();
    refreshStatus();
    setInterval(refreshStatus, 2000);
    loadInstances();
    loadList("snapshot");
    loadList("recording");
    show();
  });
})();
