// The workspace's small behaviours: play a proxy (from a gap: a few seconds before it),
// and the htmx settings. Everything works without it except playback.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      // Pages carry the session's CSRF token; htmx requests send it like the upload does.
      document.body.addEventListener("htmx:configRequest", function (e) {
        const meta = document.querySelector('meta[name="csrf-token"]');
        if (meta) e.detail.headers["X-CSRF-Token"] = meta.content;
      });
      // The evidence table refreshes itself (uploads, processing): its heading's count with it,
      // and the custody table, since that work writes custody entries.
      document.body.addEventListener("htmx:afterSettle", function (e) {
        const settled = e.detail && e.detail.target;
        const custody = document.getElementById("custody-table");
        if (settled && settled.id === "items" && custody) htmx.trigger(custody, "refresh");
        const rows = document.getElementById("items");
        const title = document.getElementById("items-title");
        if (rows && title && rows.dataset.total !== undefined) {
          title.textContent = title.textContent.replace(/\d+/, rows.dataset.total);
        }
      });
    }
  });
  // An error page's way back to the form it refused: the browser's history returns to the
  // form with what was typed in it (the link itself would load the form empty).
  document.addEventListener("click", function (e) {
    const back = e.target.closest("a[data-back]");
    if (back && window.history.length > 1) {
      e.preventDefault();
      window.history.back();
    }
  });
  // Event delegation: buttons in rows htmx replaced keep working.
  document.addEventListener("click", function (e) {
    const button = e.target.closest("button.play");
    if (!button) return;
    const player = document.getElementById("player");
    if (!player) return;
    const at = parseFloat(button.dataset.at || "0");
    const start = function () {
      player.currentTime = at;
      player.play().catch(function () { /* autoplay refused: the controls are there */ });
    };
    if (player.dataset.src !== button.dataset.src) {
      player.dataset.src = button.dataset.src;
      player.src = button.dataset.src;
      player.addEventListener("loadedmetadata", start, { once: true });
      player.load();
    } else {
      start();
    }
    const now = document.getElementById("player-now");
    if (now) now.textContent = button.textContent.trim();
    player.focus();
  });
})();
