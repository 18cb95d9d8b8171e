// A wall time typed in the corps' zone (an IANA name from the server, not the browser's own
// zone) as ISO 8601 with the offset that zone had AT that moment: a recording made in a
// Berlin winter is sent with +01:00 even when it is uploaded in summer (+02:00).
//
// A wall time a zone skips (spring forward: 02:30 in Berlin on the last Sunday of March) gets
// the offset from before the change (02:30+01:00, which is 03:30+02:00); one that happens
// twice (fall back: 02:30 on the last Sunday of October) is the first of the two (+02:00).
// Python's zoneinfo (fold=0) and Temporal's "compatible" choice read such times the same way.
"use strict";
(function () {
  const DAY = 24 * 3600 * 1000;
  const WALL = /^(\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;
  const OFFSET = /^GMT(?:([+-])(\d{2}):(\d{2})(?::(\d{2}))?)?$/;

  // The zone's offset at the instant ``ms``: its text (+01:00) and its seconds east of UTC.
  function offsetAt(format, ms) {
    const name = format.formatToParts(new Date(ms)).find(function (p) { return p.type === "timeZoneName"; }).value;
    const m = OFFSET.exec(name);  // "GMT+01:00", "GMT-03:30", "GMT" for UTC itself
    if (!m) throw new Error("unexpected zone offset " + name);
    if (!m[1]) return { text: "+00:00", seconds: 0 };
    const seconds = (m[1] === "-" ? -1 : 1) * (+m[2] * 3600 + +m[3] * 60 + +(m[4] || 0));
    return { text: m[1] + m[2] + ":" + m[3] + (m[4] ? ":" + m[4] : ""), seconds: seconds };
  }

  // ``local`` as <input type=datetime-local> gives it (YYYY-MM-DDTHH:MM[:SS]) in ``zone``,
  // with seconds and that zone's offset then; "" for no time. Text of another shape is sent
  // as it is (without an offset), so the server refuses it rather than guessing.
  function zonedIso(local, zone) {
    if (!local) return "";
    const m = WALL.exec(local);
    if (!m) return local;
    const wall = local.length === 16 ? local + ":00" : local;
    const asUtc = new Date(0);  // setUTCFullYear, unlike Date.UTC, keeps years below 100
    asUtc.setUTCFullYear(+m[1], +m[2] - 1, +m[3]);
    asUtc.setUTCHours(+m[4], +m[5], +(m[6] || 0), 0);
    const format = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" });
    // The offsets a day either side cover both sides of any change near this time; an offset
    // fits when the instant it gives has that offset itself.
    const before = offsetAt(format, asUtc.getTime() - DAY);
    const after = offsetAt(format, asUtc.getTime() + DAY);
    const fits = [before, after].filter(function (o) {
      return offsetAt(format, asUtc.getTime() - o.seconds * 1000).seconds === o.seconds;
    });
    return wall + (fits.length ? fits[0] : before).text;
  }

  window.zonedIso = zonedIso;
})();
