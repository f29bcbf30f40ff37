// SPDX-License-Identifier: GPL-3.0-or-later
// How the page proves itself to borescope-bridge, behind one small interface (window.bbAuth), so
// the page never handles the credential itself. Today's mechanism: the token the server puts
// in <meta name="borescope-token"> goes into the X-Borescope-Token header of fetches (POSTs
// need it: a cross-site form cannot set a header), and GETs by address (<img>, EventSource,
// links) are authenticated by the HttpOnly cookie the first visit set, so url(path) is path.
"use strict";
(() => {
  const meta = document.querySelector('meta[name="borescope-token"]');
  const token = meta ? meta.content : "";
  const lost = [];
  let refused = false;
  function tell() {
    for (const cb of lost) {
      try { cb(); } catch (e) { console.error(e); }
    }
  }
  window.bbAuth = {
    ready: () => Promise.resolve(),
    async fetch(url, init = {}) {
      const headers = new Headers(init.headers || {});
      headers.set("X-Borescope-Token", token);
      const r = await fetch(url, { ...init, headers, credentials: "same-origin" });
      if (r.status === 401) {
        if (!refused) { refused = true; tell(); }
      } else refused = false;
      return r;
    },
    url: (path) => Promise.resolve(path),
    onLost(callback) { lost.push(callback); if (refused) callback(); },
  };
})();
