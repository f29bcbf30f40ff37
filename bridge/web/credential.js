// SPDX-License-Identifier: GPL-3.0-or-later
// borescope-bridge: everything the page knows about authentication (docs/web-credentials.md).
//
// The access token comes from the address (?token=, from `borescope-bridge url`), from a
// one-time code (?code=, from `borescope-bridge open`) or from this origin's storage; the
// address is cleaned at once. The token itself is never sent again: while the daemon is down
// another program may listen on its port and receive what this tab sends. Instead the page
// proves it knows the token (HMAC-SHA256 of a nonce the daemon signed, bound to the port) and
// gets a session that dies with the daemon; after a restart it proves again, by itself.
// URLs that cannot carry a header get a one-use ticket for their path.
//
//   bbAuth.ready()            credential established (or known missing); address cleaned
//   bbAuth.fetch(url, init)   same-origin fetch with the session header
//   bbAuth.url(path)          path + a fresh ticket, for <img src>, EventSource, links
//   bbAuth.onLost(callback)   the token is missing or refused: open the address again
"use strict";
(() => {
  const STORE_KEY = "borescope-bridge.token";
  const SESSION_HEADER = "X-Borescope-Session";
  const CONTEXT = "borescope-bridge session v1";
  const REFUSED_PAUSE_MS = 5000; // after the token was refused, ask again this much later

  // ---- SHA-256 and HMAC (FIPS 180-4, RFC 2104): Web Crypto exists only in secure contexts,
  // and a phone on the LAN opens the page over plain HTTP.
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  function sha256(bytes) {
    // Pad: a 1 bit, zeros, the length in bits as 64 bits big-endian, to a multiple of 64 bytes.
    const padded = new Uint8Array(Math.ceil((bytes.length + 9) / 64) * 64);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(bytes.length / 0x20000000));
    view.setUint32(padded.length - 4, (bytes.length * 8) >>> 0);
    const h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const w = new Uint32Array(64);
    for (let block = 0; block < padded.length; block += 64) {
      for (let t = 0; t < 16; t++) w[t] = view.getUint32(block + 4 * t);
      for (let t = 16; t < 64; t++) {
        const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let t = 0; t < 64; t++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0;
        d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      [a, b, c, d, e, f, g, hh].forEach((v, i) => { h[i] = (h[i] + v) >>> 0; });
    }
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    h.forEach((v, i) => outView.setUint32(4 * i, v));
    return out;
  }
  function hmacSha256(key, message) {
    const block = new Uint8Array(64);
    block.set(key.length > 64 ? sha256(key) : key);
    const inner = new Uint8Array(64 + message.length);
    const outer = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) { inner[i] = block[i] ^ 0x36; outer[i] = block[i] ^ 0x5c; }
    inner.set(message, 64);
    outer.set(sha256(inner), 64);
    return sha256(outer);
  }
  const utf8 = (text) => new TextEncoder().encode(text);
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

  // ---- the token: from the address (cleaned at once), a code, or storage ---------------------
  let token = null;
  let session = null;
  let login = null; // the proof in flight, shared by every caller
  let refusedAt = -Infinity;
  let lost = false;
  const lostCallbacks = [];

  function stored() {
    try { return localStorage.getItem(STORE_KEY); } catch (e) { return null; }
  }
  function keep(value) {
    try { localStorage.setItem(STORE_KEY, value); } catch (e) { /* private mode: this tab only */ }
  }
  function loseAccess(why) {
    console.log(`borescope-bridge: ${why}`);
    if (lost) return;
    lost = true;
    lostCallbacks.forEach((cb) => setTimeout(cb, 0));
  }

  const address = new URL(location.href);
  const fromUrl = address.searchParams.get("token");
  const code = address.searchParams.get("code");
  if (fromUrl !== null || code !== null) {
    address.searchParams.delete("token");
    address.searchParams.delete("code");
    history.replaceState(history.state, "", address.pathname + address.search + address.hash);
  }

  async function redeem(oneTime) {
    try {
      const r = await fetch("/api/code", {
        method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: oneTime }),
      });
      const reply = await r.json();
      if (r.ok && reply.token) return reply.token;
      console.log(`borescope-bridge: the one-time code was refused: ${reply.error}`);
    } catch (e) {
      console.log(`borescope-bridge: could not redeem the one-time code: ${e}`);
    }
    return null;
  }

  const readyPromise = (async () => {
    if (fromUrl) token = fromUrl;
    else if (code) token = (await redeem(code)) || stored();
    else token = stored();
    if (token) keep(token);
    else loseAccess("no access token: open the address that `borescope-bridge url` prints");
  })();

  // ---- the session ------------------------------------------------------------------------------
  const port = () => location.port || (location.protocol === "https:" ? "443" : "80");

  async function prove() {
    const c = await fetch("/api/challenge", { cache: "no-store" });
    if (!c.ok) throw new Error(`challenge: HTTP ${c.status}`);
    const { nonce } = await c.json();
    const proof = hex(hmacSha256(utf8(token), utf8(`${CONTEXT}\n${port()}\n${nonce}`)));
    const r = await fetch("/api/session", {
      method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ nonce, proof }),
    });
    if (r.status === 401) {
      refusedAt = performance.now();
      loseAccess("the access token was refused (a new one was made?)");
      return null;
    }
    if (!r.ok) throw new Error(`session: HTTP ${r.status}`);
    const reply = await r.json();
    lost = false;
    session = reply.session;
    return session;
  }

  function ensureSession() {
    if (session) return Promise.resolve(session);
    if (!token || performance.now() - refusedAt < REFUSED_PAUSE_MS) return Promise.resolve(null);
    if (!login) login = prove().finally(() => { login = null; });
    return login;
  }

  function sameOrigin(url) {
    const u = new URL(url, location.href);
    if (u.origin !== location.origin) throw new Error(`not this page's origin: ${u.origin}`);
    return u;
  }

  const refused = () => new Response(
    JSON.stringify({ ok: false, error: "no access: open the address that `borescope-bridge url` prints" }),
    { status: 401, headers: { "Content-Type": "application/json" } });

  async function authFetch(url, init = {}) {
    await readyPromise;
    sameOrigin(url);
    for (let attempt = 0; ; attempt++) {
      const s = await ensureSession();
      if (!s) return refused();
      const headers = new Headers(init.headers || {});
      headers.set(SESSION_HEADER, s);
      const r = await fetch(url, { ...init, headers, credentials: "omit" });
      if (r.status !== 401 || attempt > 0) return r;
      if (session === s) session = null; // the daemon restarted or forgot it: prove again
    }
  }

  async function ticketUrl(path) {
    const u = sameOrigin(path);
    const r = await authFetch("/api/ticket", {
      method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: u.pathname }),
    });
    if (!r.ok) throw new Error(`ticket: HTTP ${r.status}`);
    u.searchParams.set("ticket", (await r.json()).ticket);
    return u.pathname + u.search;
  }

  window.bbAuth = Object.freeze({
    ready: () => readyPromise,
    fetch: authFetch,
    url: ticketUrl,
    onLost(callback) {
      lostCallbacks.push(callback);
      if (lost) setTimeout(callback, 0);
    },
  });
})();
