// The status page refreshes itself from /api/v1/status every 5 s (text only, no markup).
"use strict";

function cell(tr, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

function sizeText(bytes) {
  const units = ["Bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${bytes} Bytes`;
}

function render(s) {
  const values = {
    collector: s.collector, version: s.version, uptime_seconds: `${s.uptime_seconds} s`,
    next_purge: s.next_purge || "none scheduled",
  };
  if (!s.scoped) {   // a namespace role gets no store-wide figures
    values.storage_bytes = sizeText(s.storage_bytes);
    values.event_count = String(s.event_count);
    values.chain_head = `seq ${s.chain_head.seq} · ${s.chain_head.link.slice(0, 16)}`;
    values.last_checkpoint = s.last_checkpoint ? `seq ${s.last_checkpoint.seq} at ${s.last_checkpoint.time_rfc3339}` : "none yet";
  }
  for (const td of document.querySelectorAll("#collector td[data-key]")) td.textContent = values[td.dataset.key];
  const nodes = document.querySelector("#nodes tbody");
  if (s.nodes.length) {
    nodes.textContent = "";
    for (const n of s.nodes) {
      const tr = document.createElement("tr");
      if (n.clock_warning) tr.className = "warn";
      const name = document.createElement("a");
      name.href = "/events?host=" + encodeURIComponent(n.name);
      name.textContent = n.name;
      cell(tr, "").appendChild(name);
      cell(tr, n.ip);
      cell(tr, n.connected ? "yes" : "no");
      cell(tr, n.last_seen || "");
      cell(tr, String(n.events), "num");
      cell(tr, `${n.lag_seconds} s`, "num");
      const skew = (n.clock_skew_seconds >= 0 ? "+" : "") + n.clock_skew_seconds.toFixed(3) + " s";
      cell(tr, n.clock_warning ? skew + " clock off by more than 1 s" : skew, "num");
      nodes.appendChild(tr);
    }
  }
  const forwarders = document.querySelector("#forwarders tbody");
  if (s.forwarders.length) {
    forwarders.textContent = "";
    for (const f of s.forwarders) {
      const tr = document.createElement("tr");
      cell(tr, f.name);
      cell(tr, f.state);
      cell(tr, String(f.lag_events), "num");
      cell(tr, f.last_error ? f.last_error_at + ": " + f.last_error : "none");
      forwarders.appendChild(tr);
    }
  }
}

setInterval(() => {
  fetch("/api/v1/status", { credentials: "same-origin" }).then((r) => r.ok && r.json()).then((s) => s && render(s));
}, 5000);
