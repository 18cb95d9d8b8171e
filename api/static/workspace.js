// The workspace's small behaviours: play a proxy (from a gap: a few seconds before it),
// and the htmx settings. Everything works without it except playback.
"use strict";
(function () {
  // A box that scrolls sideways (a table's .wide box on a phone, the court page's commands) is
  // reached by the keyboard, so the arrow keys scroll it: while it overflows it is a named region
  // in the tab order (the element data-name-from names, else its table's caption or heading, and
  // that it scrolls); when it fits again it
  // leaves the tab order.
  const markScrollBoxes = function () {
    const template = document.body.dataset.scrollLabel || "{name}";
    document.querySelectorAll(".wide, pre.commands").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        if (box.dataset.scrolls) return;
        const table = box.querySelector("table");
        const caption = table && table.caption;
        const labelledBy = table && table.getAttribute("aria-labelledby");
        const heading = labelledBy ? document.getElementById(labelledBy) : null;
        const own = box.dataset.nameFrom ? document.getElementById(box.dataset.nameFrom) : null;
        let name = (own || caption || heading || {}).textContent || "";
        if (!name.trim()) {
          let before = box.previousElementSibling;
          while (before && !/^H[1-6]$/.test(before.tagName)) before = before.previousElementSibling;
          name = before ? before.textContent : "";
        }
        // (A box the page made a tab stop itself stays one when it fits.)
        box.dataset.scrolls = box.hasAttribute("tabindex") ? "kept" : "true";
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", template.replace("{name}", name.trim().replace(/\s+/g, " ")));
      } else if (box.dataset.scrolls) {
        if (box.dataset.scrolls === "true") box.removeAttribute("tabindex");
        delete box.dataset.scrolls;
        ["role", "aria-label"].forEach(function (a) { box.removeAttribute(a); });
      }
    });
  };
  let resizing = false;
  window.addEventListener("resize", function () {
    if (resizing) return;
    resizing = true;
    window.requestAnimationFrame(function () { resizing = false; markScrollBoxes(); });
  });
  document.addEventListener("DOMContentLoaded", function () {
    markScrollBoxes();
    // After a form's action (the page says so in its notice), the keyboard carries on where the
    // action was done: the part of the page the address names (a gap's row, a section), else the
    // notice itself; not at the top of the page.
    const notice = document.querySelector("[data-testid=notice]");
    if (notice) {
      const named = window.location.hash ? document.getElementById(decodeURIComponent(window.location.hash.slice(1))) : null;
      const focus = named || notice;
      if (!focus.hasAttribute("tabindex")) focus.setAttribute("tabindex", "-1");
      focus.focus({ preventScroll: named !== null });
    }
    // A page answering a form that must not be sent twice (a user's one-time token) names the
    // address a refresh should load instead: the browser then reloads that, not the form.
    const replace = document.querySelector('meta[name="replace-url"]');
    if (replace) window.history.replaceState(null, "", replace.content);
    if (window.htmx) {
      // Pages carry the session's CSRF token; htmx requests send it like the upload does.
      document.body.addEventListener("htmx:configRequest", function (e) {
        const meta = document.querySelector('meta[name="csrf-token"]');
        if (meta) e.detail.headers["X-CSRF-Token"] = meta.content;
      });
      // The evidence table refreshes itself (uploads, processing): its heading's count with it,
      // the custody table, since that work writes custody entries, the continuity section (a
      // new recording means an analysis is owed: it then polls while pending) and the closing
      // gates (an item sealed). When the continuity section settles on a state the timeline or
      // the closing gates were not drawn from, they are drawn again (the timeline once the
      // analysis is done; until then it says it may be out of date).
      const refresh = function (id, unless) {
        const elt = document.getElementById(id);
        if (elt && (unless === undefined || elt.dataset.drawn !== unless)) htmx.trigger(elt, "refresh");
        return elt;
      };
      document.body.addEventListener("htmx:afterSettle", function (e) {
        markScrollBoxes();  // a list drawn again may now overflow, or fit
        const settled = e.detail && e.detail.target;
        if (settled && settled.id === "items") {
          refresh("custody-table");
          refresh("gaps");
          refresh("closing");
        }
        // (An outerHTML swap settles with the replaced element as its target: read the new one.)
        const gaps = document.getElementById("gaps");
        if (settled && settled.id === "gaps" && gaps) {
          const pending = gaps.dataset.pending === "true";
          refresh("closing", gaps.dataset.state);
          const timeline = pending ? document.getElementById("timeline") : refresh("timeline", gaps.dataset.state);
          const stale = timeline && timeline.querySelector("[data-testid=timeline-stale]");
          if (stale) stale.hidden = !pending;
        }
        const rows = document.getElementById("items");
        const title = document.getElementById("items-title");
        if (rows && title && rows.dataset.total !== undefined) {
          title.textContent = title.textContent.replace(/\d+/, rows.dataset.total);
        }
      });
      // A refresh never throws away an explanation, comment or reason being typed in the
      // continuity section or a list marked data-keep-typing: it waits for the next one (the
      // form's own post redraws the page).
      document.body.addEventListener("htmx:beforeRequest", function (e) {
        const elt = e.detail && e.detail.elt;
        if (!elt || (elt.id !== "gaps" && !elt.hasAttribute("data-keep-typing"))) return;
        const typing = Array.from(elt.querySelectorAll("textarea, input[type=text], input:not([type])")).some(function (t) {
          return t.value.trim() !== "" || t === document.activeElement;
        });
        if (typing) e.preventDefault();
      });
    }
  });
  // A form that changes something is sent once: pressed again while its first request is on
  // its way (a legal review being sealed, a slow link), the browser sent it again, and the
  // archive recorded two reviews, two export requests, two explanations. The submitter is not
  // disabled (its name and value would leave the request); the second submission is dropped.
  document.addEventListener("submit", function (e) {
    const form = e.target;
    if (e.defaultPrevented || !(form instanceof HTMLFormElement) || form.method !== "post") return;
    if (form.dataset.sent === "true") {
      e.preventDefault();
      return;
    }
    form.dataset.sent = "true";
    form.setAttribute("aria-busy", "true");
  });
  // Back at the form from the browser's history (an error page's way back): it may be sent again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
    });
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
  // A court request chosen for an export names its recipient: the court user who asked (the
  // archive refuses any other), so the recipient field follows the choice.
  document.addEventListener("change", function (e) {
    const select = e.target;
    if (!(select instanceof HTMLSelectElement) || !select.dataset.recipient) return;
    const requester = select.selectedOptions.length ? select.selectedOptions[0].dataset.requester : undefined;
    const field = document.getElementById(select.dataset.recipient);
    if (field && requester) field.value = requester;
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
