// Browser uploads of evidence: several files (chosen or dropped), each described (kind,
// device, start time), hashed with SHA-256 in the browser (hash-wasm, read in slices, never
// whole in memory), then sent with tus (tus-js-client) declaring that hash, which the server
// checks. tus-js-client remembers each upload's URL in localStorage under the file's
// fingerprint (name, type, size, modification time, endpoint): after a dropped connection it
// retries, and after a page reload choosing the same file again resumes where it stopped.
"use strict";
(function () {
  const HASH_SLICE = 4 * 1024 * 1024;
  const CHUNK = function () { return window.EVIDENCE_UPLOAD_CHUNK || 16 * 1024 * 1024; };
  let texts = {};
  let queue = [];

  function guessKind(file) {
    if (file.type.startsWith("video/") || /\.(mp4|mov|mkv|avi|ts)$/i.test(file.name)) return "bodycam_video";
    if (file.type === "application/pdf" || /\.(pdf|ofd|docx?)$/i.test(file.name)) return "document";
    if (/\.(wacz|warc)$/i.test(file.name)) return "remote_capture";
    return "other";
  }

  async function sha256(file, onProgress) {
    const hasher = await hashwasm.createSHA256();
    hasher.init();
    for (let at = 0; at < file.size; at += HASH_SLICE) {
      const slice = file.slice(at, Math.min(file.size, at + HASH_SLICE));
      hasher.update(new Uint8Array(await slice.arrayBuffer()));
      onProgress(Math.min(file.size, at + HASH_SLICE) / file.size);
    }
    return hasher.digest("hex");
  }

  function addFiles(form, files) {
    const kindChoice = form.querySelector("#upload-kind").value;
    const device = form.querySelector("#upload-device").value.trim();
    // <input type=datetime-local> gives wall time; it is the corps' zone's (label says so).
    const start = zonedIso(form.querySelector("#upload-start").value, form.dataset.zone);
    const body = form.querySelector("#upload-queue");
    if (files.length) form.querySelector("#upload-nothing").hidden = true;
    for (const file of files) {
      const row = document.createElement("tr");
      row.dataset.testid = "upload-row";
      row.setAttribute("data-testid", "upload-row");
      row.dataset.filename = file.name;
      row.dataset.state = "waiting";
      const kind = kindChoice || guessKind(file);
      // The kind as the page's own list names it (in the page's language), not its code.
      const option = Array.from(form.querySelector("#upload-kind").options).find((o) => o.value === kind);
      const cells = [file.name, option ? option.textContent : kind, device || "—"];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        row.appendChild(td);
      }
      const progressCell = document.createElement("td");
      const bar = document.createElement("progress");
      bar.max = 1; bar.value = 0;
      bar.setAttribute("data-testid", "upload-progress");
      bar.setAttribute("aria-label", file.name);
      progressCell.appendChild(bar);
      row.appendChild(progressCell);
      const state = document.createElement("td");
      state.setAttribute("role", "status");
      state.textContent = texts.waiting || "";
      row.appendChild(state);
      body.appendChild(row);
      queue.push({ file: file, kind: kind, device: device, start: start, row: row, bar: bar, state: state });
    }
  }

  // Why the server refused an upload, in the page's language: the explanation of its error code
  // when the page has one, else the server's own message (the reply's body when it is not ours).
  function refusal(error) {
    const res = error.originalResponse;
    const body = res ? res.getBody() || "" : "";
    try {
      const said = JSON.parse(body).error;
      if (said && said.code) return (texts.errors || {})[said.code] || said.message || said.code;
    } catch (e) { /* not our error shape: shown as it came */ }
    return body || error.message;
  }

  // Whether a failed request may succeed if sent again: no answer (the link), a server error,
  // a timeout (408), another request holding the upload (423), too many requests (429), or an
  // offset out of step (409 offset_mismatch: tus asks where it stands and goes on). Any other
  // refusal is final: a closed case (409 case_closed), a wrong declared hash, no right (403),
  // no such case or upload (404), too large (413), invalid (422)... Sending it six times over
  // 20 s only delayed saying so.
  const RETRY_STATUSES = [408, 423, 429];
  function retryable(res) {
    const status = res ? res.getStatus() : 0;
    if (status < 400 || status >= 500 || RETRY_STATUSES.indexOf(status) >= 0) return true;
    if (status !== 409) return false;
    let code = null;
    try { code = (JSON.parse(res.getBody() || "").error || {}).code; } catch (e) { /* not our error shape */ }
    return code === "offset_mismatch";
  }

  function show(entry, key, fraction) {
    entry.row.dataset.state = key;
    entry.state.textContent = texts[key] || key;
    if (fraction !== undefined) entry.bar.value = fraction;
  }

  async function send(form, entry) {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    show(entry, "hashing", 0);
    const digest = await sha256(entry.file, function (f) { entry.bar.value = f; });
    entry.row.dataset.sha256 = digest;
    const metadata = { case_id: form.dataset.caseId, kind: entry.kind, filename: entry.file.name, sha256: digest };
    if (entry.device) metadata.device_id = entry.device;
    if (entry.start) metadata.recorded_start = entry.start;
    return new Promise(function (resolve) {
      const upload = new tus.Upload(entry.file, {
        endpoint: form.dataset.endpoint,
        chunkSize: CHUNK(),
        retryDelays: [0, 1000, 3000, 5000, 10000],
        headers: { "X-CSRF-Token": csrf },
        metadata: metadata,
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        onShouldRetry: function (err, attempt, options) {
          return retryable(err.originalResponse) && navigator.onLine;
        },
        onProgress: function (sent, total) {
          show(entry, entry.row.dataset.resumed ? "resumed" : "uploading", total ? sent / total : 1);
        },
        onAfterResponse: function (req, res) {
          const item = res.getHeader("Evidence-Item-Id");
          if (item) entry.row.dataset.itemId = item;
        },
        onSuccess: function () { show(entry, "done", 1); resolve(true); },
        onError: function (error) {
          if (!navigator.onLine) {
            // tus-js-client does not retry while the browser is offline: go on when it is back
            // (start() asks the server where the upload stands and resumes from there).
            show(entry, "offline");
            window.addEventListener("online", function () { upload.start(); }, { once: true });
            return;
          }
          show(entry, "failed");
          entry.state.textContent += ": " + refusal(error);
          resolve(false);
        },
      });
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) {
          entry.row.dataset.resumed = "true";
          upload.resumeFromPreviousUpload(previous[0]);
        }
        // The bar showed the hashing; it starts again for the sending (onProgress moves it).
        show(entry, entry.row.dataset.resumed ? "resumed" : "uploading", 0);
        upload.start();
      });
    });
  }

  // Evidence on its way means a continuity analysis will be owed: the continuity section stops
  // saying "complete" or "no gaps" at once (its next refresh says what the server knows).
  function continuityOwed() {
    const gaps = document.getElementById("gaps");
    if (!gaps) return;
    gaps.querySelectorAll("[data-settled]").forEach(function (e) { e.hidden = true; });
    gaps.querySelectorAll("[data-owed]").forEach(function (e) { e.hidden = false; });
  }

  // While files are still being sent, a refresh of the continuity section tells only what the
  // server has of the files sent so far: one recording analysed alone reads "complete" while
  // the next, still on its way, may open a gap. The section says owed until the last is sent.
  let sending = false;
  document.addEventListener("htmx:afterSwap", function (e) {
    const swapped = e.detail && e.detail.target;
    if (sending && swapped && swapped.id === "gaps") continuityOwed();
  });

  async function sendAll(form) {
    // Each file is taken by one press of the button: pressed again while the first file was
    // being sent, the files still waiting were sent twice, side by side.
    const waiting = queue.filter(function (e) { return e.row.dataset.state === "waiting" && !e.taken; });
    waiting.forEach(function (e) { e.taken = true; });
    // Pressed with nothing chosen, the button did nothing at all: it says why, and the keyboard
    // goes to the file chooser.
    const idle = !waiting.length && !queue.some(function (e) { return e.taken && UNDER_WAY.indexOf(e.row.dataset.state) >= 0; });
    form.querySelector("#upload-nothing").hidden = !idle;
    if (idle) form.querySelector("#upload-input").focus();
    if (waiting.length) continuityOwed();
    sending = waiting.length > 0;
    try {
      for (const entry of waiting) {
        await send(form, entry);
        if (entry === waiting[waiting.length - 1]) sending = false;
        const items = document.getElementById("items");
        if (window.htmx && items) htmx.trigger(items, "refresh");
      }
    } finally {
      sending = false;
    }
  }

  // Leaving the page (a link, another form, closing the tab) stopped the uploads under way
  // without a word; they went on only when the same files were chosen again. The browser asks
  // first while a file taken by the button is not yet received or refused.
  const UNDER_WAY = ["waiting", "hashing", "uploading", "resumed", "offline"];
  window.addEventListener("beforeunload", function (e) {
    const busy = queue.some(function (q) { return q.taken && UNDER_WAY.indexOf(q.row.dataset.state) >= 0; });
    if (!busy) return;
    e.preventDefault();
    e.returnValue = "";
  });

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("upload");
    if (!form || !window.tus || !window.hashwasm) return;
    texts = JSON.parse(document.getElementById("upload-texts").innerHTML);
    const input = form.querySelector("#upload-input");
    const zone = form.querySelector("#dropzone");
    input.addEventListener("change", function () { addFiles(form, input.files); input.value = ""; });
    zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("over");
      addFiles(form, e.dataTransfer.files);
    });
    form.querySelector("#upload-start-button").addEventListener("click", function () { sendAll(form); });
    // Unfinished uploads of an earlier visit: say that choosing the same file resumes them.
    tus.defaultOptions.urlStorage.findAllUploads().then(function (all) {
      if (all.length) form.querySelector("#upload-resumable").hidden = false;
    });
  });
})();
