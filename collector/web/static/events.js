// The events page: drop empty filters from the URL, the count chart (drag to narrow the time
// range), live tail over server-sent events with pause/resume, and adding a note.
// Log content is only ever set with textContent: it is never parsed as markup.
"use strict";

const LEVELS = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];
const SVG = "http://www.w3.org/2000/svg";

function filterQuery() {
  return document.getElementById("chart").dataset.query || "";
}

// -- filters: a shareable URL without empty parameters -------------------------------------
document.getElementById("filters").addEventListener("submit", () => {
  // More columns on demand: the ticked columns, in the table's order; none when the default.
  const choices = document.querySelector(".column-choices");
  const picked = [...document.querySelectorAll(".column-choice:checked")].map((box) => box.value);
  const ordered = choices.dataset.default.split(",").filter((c) => picked.includes(c))
    .concat(picked.filter((c) => !choices.dataset.default.split(",").includes(c)));
  document.getElementById("columns-input").value =
    ordered.join(",") === choices.dataset.default || !ordered.length ? "" : ordered.join(",");
  for (const input of document.querySelectorAll("[form=filters]")) {
    if (input.name && !input.value) input.disabled = true;
  }
});
for (const input of document.querySelectorAll("input[form=filters]")) {
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); document.getElementById("filters").requestSubmit(); }
  });
}

// -- the table ---------------------------------------------------------------------------------
const table = document.getElementById("events");
const columns = table.dataset.columns.split(",");

function filterLink(name, value) {
  const params = new URLSearchParams(window.location.search);
  params.delete("_next");
  params.set(name, value);
  return "/events?" + params.toString();
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function eventRow(e) {
  const tr = document.createElement("tr");
  tr.className = "level-" + e.level + " live-new";
  tr.dataset.seq = e.seq;
  for (const c of columns) {
    const td = document.createElement("td");
    const value = e[c];
    if (c === "level") {
      const span = document.createElement("span");
      span.className = "level";
      span.textContent = e.level;
      td.appendChild(span);
    } else if (c === "request_id") {
      td.className = "rid";
      if (value) td.appendChild(link("/trace/" + encodeURIComponent(value), value));
    } else if (c === "user" || c === "host") {
      td.className = c;
      if (value) td.appendChild(link(filterLink(c, value), value));
    } else if (c === "message" || c === "fields") {
      td.className = "msg";
      td.textContent = c === "fields" ? JSON.stringify(value) : value;
    } else {
      if (c === "time") td.className = "time";
      td.textContent = value === null || value === undefined ? "" : String(value);
    }
    tr.appendChild(td);
  }
  return tr;
}

// -- live tail ---------------------------------------------------------------------------------
let source = null;
// The follow cursor past the last event shown (JSON, chain -> seq): a resume continues there.
let cursor = "";
const followButton = document.getElementById("follow");
const pauseButton = document.getElementById("pause");
const resumeButton = document.getElementById("resume");
const liveState = document.getElementById("live-state");

function connect() {
  const params = new URLSearchParams(filterQuery());
  if (cursor) params.set("cursor", cursor);
  source = new EventSource("/api/v1/follow?" + params.toString());
  source.addEventListener("start", (msg) => {
    const start = JSON.parse(msg.data);
    if (!cursor) cursor = JSON.stringify(start.cursor);
    liveState.textContent = "following new events…";
  });
  source.onmessage = (msg) => {
    const e = JSON.parse(msg.data);
    cursor = msg.lastEventId;
    const body = document.getElementById("rows");
    const empty = body.querySelector(".empty-row");
    if (empty) empty.remove();
    body.insertBefore(eventRow(e), body.firstChild);
  };
  source.onerror = () => { liveState.textContent = "reconnecting…"; };
}

followButton.addEventListener("click", () => {
  followButton.hidden = true;
  pauseButton.hidden = false;
  connect();
});
pauseButton.addEventListener("click", () => {
  if (source) source.close();
  source = null;
  pauseButton.hidden = true;
  resumeButton.hidden = false;
  liveState.textContent = "paused (resuming shows what arrived meanwhile)";
});
resumeButton.addEventListener("click", () => {
  resumeButton.hidden = true;
  pauseButton.hidden = false;
  connect();
});

// -- the chart ---------------------------------------------------------------------------------
function drawChart(data) {
  const area = document.getElementById("chart-area");
  area.textContent = "";
  if (!data.buckets.length) {
    area.textContent = "No events in range.";
    return;
  }
  const width = area.clientWidth || 800, height = 110, bottom = 14;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const totals = data.buckets.map((b) => LEVELS.reduce((sum, l) => sum + b.counts[l], 0));
  const max = Math.max(1, ...totals);
  const barWidth = width / data.buckets.length;
  data.buckets.forEach((bucket, i) => {
    let y = height - bottom;
    for (const level of LEVELS.slice().reverse()) {
      const n = bucket.counts[level];
      if (!n) continue;
      const h = (n / max) * (height - bottom - 4);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(i * barWidth + 1));
      rect.setAttribute("y", String(y - h));
      rect.setAttribute("width", String(Math.max(1, barWidth - 2)));
      rect.setAttribute("height", String(h));
      rect.setAttribute("class", "lv-" + level);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${bucket.start}: ${n} ${level}`;
      rect.appendChild(title);
      svg.appendChild(rect);
      y -= h;
    }
  });
  for (const [x, anchor, text] of [[2, "start", data.start], [width - 2, "end", data.end]]) {
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", String(x));
    label.setAttribute("y", String(height - 2));
    label.setAttribute("text-anchor", anchor);
    label.setAttribute("class", "axis");
    label.textContent = text;
    svg.appendChild(label);
  }
  const selection = document.createElementNS(SVG, "rect");
  selection.setAttribute("class", "selection");
  selection.setAttribute("y", "0");
  selection.setAttribute("height", String(height - bottom));
  selection.setAttribute("width", "0");
  svg.appendChild(selection);
  area.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const level of LEVELS) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch lv-" + level;
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(level));
    legend.appendChild(item);
  }
  area.appendChild(legend);

  // Drag across the chart: since/until become the dragged range.
  const start = Date.parse(data.start), end = Date.parse(data.end);
  const toTime = (px) => new Date(start + (Math.min(Math.max(px, 0), width) / width) * (end - start));
  let from = null;
  const xOf = (event) => (event.clientX - svg.getBoundingClientRect().left) * (width / svg.getBoundingClientRect().width);
  svg.addEventListener("mousedown", (event) => {
    from = xOf(event);
    selection.setAttribute("x", String(from));
    selection.setAttribute("width", "0");
  });
  svg.addEventListener("mousemove", (event) => {
    if (from === null) return;
    const x = xOf(event);
    selection.setAttribute("x", String(Math.min(from, x)));
    selection.setAttribute("width", String(Math.abs(x - from)));
  });
  window.addEventListener("mouseup", (event) => {
    if (from === null) return;
    const to = xOf(event);
    const a = Math.min(from, to), b = Math.max(from, to);
    from = null;
    if (b - a < 3) { selection.setAttribute("width", "0"); return; }
    const params = new URLSearchParams(window.location.search);
    params.delete("_next");
    params.set("since", toTime(a).toISOString());
    params.set("until", toTime(b).toISOString());
    window.location.search = params.toString();
  });
}

fetch("/api/v1/histogram?" + filterQuery(), { credentials: "same-origin" })
  .then((r) => r.ok ? r.json() : r.json().then((body) => { throw new Error(body.error); }))
  .then(drawChart)
  .catch((err) => { document.getElementById("chart-area").textContent = "chart unavailable: " + err.message; });

// -- notes -------------------------------------------------------------------------------------
const noteForm = document.getElementById("note-form");
if (noteForm) {
  noteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = document.getElementById("note-result");
    const response = await fetch("/api/v1/notes", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": noteForm.dataset.csrf },
      body: JSON.stringify({
        text: document.getElementById("note-text").value,
        // A namespace-admin of several namespaces picks the note's; otherwise the collector decides.
        namespace: (document.getElementById("note-namespace") || { value: "" }).value,
      }),
    });
    const body = await response.json();
    if (response.ok) {
      result.textContent = `note stored (seq ${body.seq})`;
      document.getElementById("note-text").value = "";
      if (!source) window.location.reload();
    } else {
      result.textContent = body.error;
    }
  });
}
