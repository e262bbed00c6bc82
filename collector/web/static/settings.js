// The settings page: four tabs filled from /api/v1/settings/... and forms that send JSON
// bodies with collector.toml's key names. Every value (names a user typed included) is set with
// textContent, never parsed as markup; every change carries the session's CSRF token. The API
// decides what a role sees and may change; its one-line errors are shown as they come.
"use strict";

const root = document.getElementById("settings");
const API = "/api/v1/settings/";
const MAY_CHANGE = root.dataset.mayChange === "yes";
const MAY_MANAGE_TOKENS = root.dataset.mayManageTokens === "yes";

// -- small helpers -----------------------------------------------------------------------------
async function call(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { "X-CSRF-Token": root.dataset.csrf } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response, data = null;
  try {
    response = await fetch(path, options);
  } catch (exc) {
    return { ok: false, status: 0, data: { error: "the collector did not answer: " + exc.message } };
  }
  try { data = await response.json(); } catch (exc) { data = null; }
  if (!response.ok && !(data && data.error)) data = { error: `HTTP ${response.status}` };
  return { ok: response.ok, status: response.status, data };
}

function show(id, text) {
  const element = document.getElementById(id);
  if (!element) return;
  element.textContent = text || "";
  element.hidden = !text;
}

function element(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function cell(tr, text, className) {
  return tr.appendChild(element("td", text, className));
}

function button(text, className, onClick) {
  const b = element("button", text, className);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function listOf(data, key) {
  if (Array.isArray(data)) return data;
  return (data && Array.isArray(data[key])) ? data[key] : [];
}

// Where an entry comes from, when no one changed it here: a file, or (a namespace) the defaults.
const SOURCES = { "collector.toml": "from collector.toml", "tokens_file": "from the tokens file", "default": "the defaults" };

// An RFC 3339 time as a person reads it: to the second, in UTC ("2026-12-03 23:17:28 UTC").
function shownTime(text) {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z$/.exec(text || "");
  return m ? `${m[1]} ${m[2]} UTC` : (text || "");
}

function changedText(item) {
  const c = item.changed;
  if (!c) return SOURCES[item.source] || "";
  return `${c.user || "?"} via ${c.via || "?"}, ${shownTime(c.time)}`.trim();
}

// Entries a file defines (collector.toml, the tokens file) are read-only here.
function fromFile(item) {
  return item.read_only === true;
}

function badgeOf(item) {
  return fromFile(item) ? SOURCES[item.source] || "read-only" : "";
}

function commaList(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s);
}

// An entry's name, with a badge when it comes from a file (read-only here).
function nameCell(tr, text, badge) {
  const td = cell(tr, "", "name");
  td.appendChild(element("span", text, "value"));
  if (badge) td.appendChild(element("span", badge, "badge"));
  return td;
}

function emptyRow(tbody, columns, text) {
  const tr = tbody.appendChild(document.createElement("tr"));
  const td = cell(tr, text, "empty");
  td.colSpan = columns;
}

// A tab's table from an API answer: a row per entry, or the API's error above the table.
function fillTable(tab, table, reply, entriesOf, emptyText, addRow) {
  const tbody = document.querySelector(`#${table} tbody`);
  const columns = document.querySelectorAll(`#${table} thead th`).length;
  tbody.textContent = "";
  show(tab + "-error", reply.ok ? "" : reply.data.error);
  const entries = reply.ok ? entriesOf(reply.data) : [];
  if (!entries.length) emptyRow(tbody, columns, reply.ok ? emptyText : "Could not be read.");
  for (const entry of entries) addRow(tbody.appendChild(document.createElement("tr")), entry);
}

// A tab's loader: the kind's list, as a table.
function tableLoader(tab, table, kind, emptyText, addRow) {
  return async () => fillTable(tab, table, await call("GET", API + kind), (data) => listOf(data, kind), emptyText, addRow);
}

// Remove an entry once the user agreed; the API's error above the table, else `done` below it.
async function removeEntry(kind, name, question, tab, done, reload) {
  if (!window.confirm(question)) return false;
  const reply = await call("DELETE", API + kind + "/" + encodeURIComponent(name));
  if (!reply.ok) { show(tab + "-error", reply.data.error); return false; }
  show(tab + "-message", done);
  await reload();
  return true;
}

// A form to add an entry (values {}) or edit one (its values by field id; its name then read-only);
// more() sets what is not text.
function openEntryForm(form, prefix, title, nameId, values, more) {
  form.reset();
  show(prefix + "-form-error", "");
  document.getElementById(prefix + "-form-title").textContent = title;
  for (const [id, value] of Object.entries(values)) {
    document.getElementById(id).value = value === undefined || value === null ? "" : value;
  }
  more();
  document.getElementById(nameId).readOnly = nameId in values;
  form.hidden = false;
  document.getElementById(nameId).focus();
}

// Add (existing: null) or replace a forwarder or an alert rule; the API's error, or "" once saved.
async function saveEntry(kind, noun, body, existing, reload) {
  const reply = existing
    ? await call("PUT", API + kind + "/" + encodeURIComponent(existing), body)
    : await call("POST", API + kind, body);
  if (!reply.ok) return reply.data.error;
  show(kind + "-message", existing ? `Saved the ${noun} ${body.name}.` : `Added the ${noun} ${body.name}.`);
  await reload();
  return "";
}

// A form that sends bodyOf() through save(body); a body it cannot make or the API's refusal is
// shown in the form, and the form closes once saved.
function submitsEntry(form, errorId, bodyOf, save) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = bodyOf();
    } catch (exc) {
      show(errorId, exc.message);
      return;
    }
    const error = await save(body);
    show(errorId, error);
    if (!error) form.hidden = true;
  });
}

// -- tabs --------------------------------------------------------------------------------------
const TABS = ["forwarders", "namespaces", "alerts", "access"];
const loaders = {};

function selectTab(name) {
  if (!TABS.includes(name)) name = "forwarders";
  for (const tab of TABS) {
    document.getElementById("panel-" + tab).hidden = tab !== name;
    document.getElementById("tab-" + tab).setAttribute("aria-selected", String(tab === name));
  }
  if (window.location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  loaders[name]();
}

for (const tab of TABS) {
  document.getElementById("tab-" + tab).addEventListener("click", () => selectTab(tab));
}

// -- forwarders --------------------------------------------------------------------------------
const fwForm = document.getElementById("forwarder-form");
let fwEditing = null;   // the name being edited, or null when adding

function destination(f) {
  if (f.type === "syslog") return `${f.protocol || "tcp"}://${f.host || "127.0.0.1"}:${f.port || 514}`;
  if (f.type === "jsonl") return `tcp://${f.host || "127.0.0.1"}:${f.port || ""}`;
  if (f.type === "file") return f.path || "";
  if (f.type === "console") return "stdout";
  return "";
}

function patternsText(patterns) {
  return (patterns || []).map((p) => `${p.field}=${p.pattern}`);
}

function filtersText(f) {
  const parts = [];
  if (f.min_level && f.min_level !== "debug") parts.push(`≥ ${f.min_level}`);
  if (f.log_types && f.log_types.length) parts.push("log types " + f.log_types.join(", "));
  if (f.actions && f.actions.length) parts.push("actions " + f.actions.join(", "));
  if (f.include && f.include.length) parts.push("include " + patternsText(f.include).join(", "));
  if (f.exclude && f.exclude.length) parts.push("exclude " + patternsText(f.exclude).join(", "));
  return parts.join("; ") || "all events";
}

function forwarderRow(tr, f) {
  tr.dataset.name = f.name;
  nameCell(tr, f.name, badgeOf(f));
  cell(tr, f.type);
  cell(tr, destination(f), "destination");
  cell(tr, filtersText(f), "filters");
  const status = forwarderStatus(f);
  for (const [key, text] of Object.entries(status)) cell(tr, text, key === "lag" ? "num lag" : key);
  cell(tr, changedText(f), "changed");
  const actions = cell(tr, "", "row-actions");
  if (MAY_CHANGE) {
    actions.appendChild(button("Send a test event", "test", () => testForwarder(f.name)));
    if (!fromFile(f)) {
      actions.appendChild(button("Edit", "edit", () => openForwarderForm(f)));
      actions.appendChild(button(f.enabled === false ? "Enable" : "Disable", "toggle",
        () => saveForwarder({ ...configOf(f), enabled: f.enabled === false }, f.name)));
      actions.appendChild(button("Remove", "remove", () => removeForwarder(f.name)));
    }
  }
}

const loadForwarders = tableLoader("forwarders", "forwarders", "forwarders", "No forwarder configured.", forwarderRow);
loaders.forwarders = loadForwarders;

// State, lag and last error move on their own: every 5 s, while the tab shows, those cells are
// set again in place (rows are not rebuilt under a pointer; a new or removed entry waits for the
// next load).
function forwarderStatus(f) {
  return { state: f.enabled === false ? "disabled" : (f.state || ""),
    lag: f.lag_events === undefined ? "" : String(f.lag_events),
    "last-error": f.last_error ? `${f.last_error_at || ""}: ${f.last_error}` : "none" };
}

setInterval(async () => {
  if (document.getElementById("panel-forwarders").hidden || document.hidden) return;
  const reply = await call("GET", API + "forwarders");
  if (!reply.ok) return;
  for (const f of listOf(reply.data, "forwarders")) {
    const tr = [...document.querySelectorAll("#forwarders tbody tr")].find((r) => r.dataset.name === f.name);
    if (!tr) continue;
    for (const [key, text] of Object.entries(forwarderStatus(f))) tr.querySelector("td." + key).textContent = text;
  }
}, 5000);

// What a list item holds beyond collector.toml's keys (status, provenance) is not sent back.
const NOT_CONFIG = ["state", "lag_events", "last_error", "last_error_at", "source", "read_only", "changed"];

function configOf(f) {
  const config = {};
  for (const [key, value] of Object.entries(f)) if (!NOT_CONFIG.includes(key)) config[key] = value;
  return config;
}

function fwField(id) {
  return document.getElementById(id);
}

function showTypeFields() {
  const type = fwField("fw-type").value;
  const protocol = fwField("fw-protocol").value;
  for (const set of fwForm.querySelectorAll("fieldset[data-types]")) {
    const typeOk = set.dataset.types.split(" ").includes(type);
    const protocolOk = !set.dataset.protocols || set.dataset.protocols.split(" ").includes(protocol);
    set.hidden = !(typeOk && protocolOk);
  }
}
fwField("fw-type").addEventListener("change", showTypeFields);
fwField("fw-protocol").addEventListener("change", showTypeFields);

function openForwarderForm(f) {
  fwEditing = f ? f.name : null;
  const text = !f ? {} : { "fw-name": f.name, "fw-host": f.host, "fw-port": f.port, "fw-facility": f.facility,
    "fw-app-name": f.app_name, "fw-path": f.path, "fw-rotate-bytes": f.rotate_bytes, "fw-rotate-max": f.rotate_max,
    "fw-tls-ca": f.tls && f.tls.ca, "fw-tls-cert": f.tls && f.tls.cert, "fw-tls-key": f.tls && f.tls.key,
    "fw-log-types": (f.log_types || []).join(", "), "fw-include": patternsText(f.include).join("\n"),
    "fw-exclude": patternsText(f.exclude).join("\n") };
  openEntryForm(fwForm, "forwarder", f ? `Edit the forwarder ${f.name}` : "Add a forwarder", "fw-name", text, () => {
    if (f) {
      const choice = { "fw-type": f.type, "fw-protocol": f.protocol, "fw-format": f.format, "fw-framing": f.framing,
        "fw-min-level": f.min_level };
      for (const [id, value] of Object.entries(choice)) fwField(id).value = value || "";
      fwField("fw-enabled").checked = f.enabled !== false;
      for (const action of ["create", "read", "update", "delete"]) {
        fwField("fw-action-" + action).checked = (f.actions || []).includes(action);
      }
    }
    showTypeFields();
  });
}

function parsePatterns(text, what) {
  const patterns = [];
  for (const line of text.split("\n").map((l) => l.trim()).filter((l) => l)) {
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`${what}: "${line}" is not field=pattern`);
    patterns.push({ field: line.slice(0, at).trim(), pattern: line.slice(at + 1).trim() });
  }
  return patterns;
}

// The form as a JSON body: only the keys of the chosen type, and only those given (an empty
// field takes collector.toml's default).
function forwarderBody() {
  const type = fwField("fw-type").value;
  const body = { name: fwField("fw-name").value.trim(), type, enabled: fwField("fw-enabled").checked };
  const set = (key, id, number) => {
    const value = fwField(id).value.trim();
    if (value) body[key] = number && /^\d+$/.test(value) ? Number(value) : value;
  };
  if (type === "syslog" || type === "jsonl") { set("host", "fw-host"); set("port", "fw-port", true); }
  if (type === "syslog") {
    set("protocol", "fw-protocol"); set("format", "fw-format"); set("framing", "fw-framing");
    set("facility", "fw-facility"); set("app_name", "fw-app-name");
    if (fwField("fw-protocol").value === "tls") {
      const tls = {};
      for (const key of ["ca", "cert", "key"]) {
        const value = fwField("fw-tls-" + key).value.trim();
        if (value) tls[key] = value;
      }
      if (Object.keys(tls).length) body.tls = tls;
    }
  }
  if (type === "file") { set("path", "fw-path"); set("rotate_bytes", "fw-rotate-bytes", true); set("rotate_max", "fw-rotate-max", true); }
  set("min_level", "fw-min-level");
  const logTypes = commaList(fwField("fw-log-types").value);
  if (logTypes.length) body.log_types = logTypes;
  const actions = ["create", "read", "update", "delete"].filter((a) => fwField("fw-action-" + a).checked);
  if (actions.length) body.actions = actions;
  const include = parsePatterns(fwField("fw-include").value, "include");
  if (include.length) body.include = include;
  const exclude = parsePatterns(fwField("fw-exclude").value, "exclude");
  if (exclude.length) body.exclude = exclude;
  return body;
}

function saveForwarder(body, existing) {
  return saveEntry("forwarders", "forwarder", body, existing, loadForwarders);
}

submitsEntry(fwForm, "forwarder-form-error", forwarderBody, (body) => saveForwarder(body, fwEditing));
document.getElementById("forwarder-cancel").addEventListener("click", () => { fwForm.hidden = true; });
const addButton = document.getElementById("forwarder-add");
if (addButton) addButton.addEventListener("click", () => openForwarderForm(null));

function removeForwarder(name) {
  return removeEntry("forwarders", name, `Remove the forwarder ${name}? Events not yet delivered to it are not sent.`,
    "forwarders", `Removed the forwarder ${name}.`, loadForwarders);
}

async function testForwarder(name) {
  show("forwarders-message", `Sending a test event through ${name}…`);
  show("forwarders-error", "");
  const reply = await call("POST", API + "forwarders/" + encodeURIComponent(name) + "/test", {});
  if (!reply.ok) {
    show("forwarders-message", "");
    show("forwarders-error", `${name}: the test event was not delivered: ${reply.data.error}`);
    return;
  }
  const d = reply.data || {};
  show("forwarders-message", `${name}${d.target ? ` (${d.target})` : ""}: ${d.answer || "delivered"}`);
}

// -- namespaces --------------------------------------------------------------------------------
const nsForm = document.getElementById("namespace-form");
const DEFAULTS = "*";   // the route name of the defaults for new namespaces
let nsEditing = null;   // {name, item}

const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

function seconds(duration) {
  if (!duration) return null;
  if (duration === "indefinite") return Infinity;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$/.exec(String(duration).trim());
  return match ? Number(match[1]) * UNITS[match[2]] : null;
}

function retentionOf(item) {
  return (item && item.retention) || {};
}

// What applies to a namespace (`effective`); the entry's own `levels`/`retention` are null where it
// takes the default's.
function effectiveOf(item) {
  return (item && item.effective) || item || {};
}

function namespaceRow(tr, [name, n]) {
  tr.dataset.namespace = name;
  const label = nameCell(tr, name === DEFAULTS ? "defaults for new namespaces" : name, badgeOf(n));
  if (name === DEFAULTS) label.classList.add("defaults");
  const applies = effectiveOf(n);
  const own = (value) => name === DEFAULTS || value !== null && value !== undefined;
  cell(tr, applies.levels || "", "level").title = own(n.levels) ? "" : "the default";
  cell(tr, retentionOf(applies).general || "", "general").title = own(retentionOf(n).general) ? "" : "the default";
  cell(tr, retentionOf(applies).security || "", "security").title = own(retentionOf(n).security) ? "" : "the default";
  cell(tr, changedText(n), "changed");
  const actions = cell(tr, "", "row-actions");
  if (MAY_CHANGE && !fromFile(n)) actions.appendChild(button("Edit", "edit", () => openNamespaceForm(name, n)));
}

async function loadNamespaces() {
  const reply = await call("GET", API + "namespaces");
  fillTable("namespaces", "namespaces", reply, (data) => {
    const rows = data && data.defaults ? [[DEFAULTS, data.defaults]] : [];
    for (const n of listOf(data, "namespaces")) rows.push([n.namespace || n.name, n]);
    nsItems = Object.fromEntries(rows);
    return rows;
  }, "No namespace visible to you.", namespaceRow);
}
loaders.namespaces = loadNamespaces;

function openNamespaceForm(name, item) {
  nsForm.reset();
  nsEditing = { name, item };
  show("namespace-form-error", "");
  document.getElementById("namespace-confirm").hidden = true;
  document.getElementById("namespace-form-title").textContent =
    name === DEFAULTS ? "Defaults for new namespaces" : `Namespace ${name}`;
  const defaults = effectiveOf(nsItems[DEFAULTS]);
  document.getElementById("ns-level").value = item.levels || "";
  document.getElementById("ns-level").options[0].textContent =
    defaults.levels && name !== DEFAULTS ? `(the default: ${defaults.levels})` : "(the default)";
  for (const tier of ["general", "security"]) {
    const input = document.getElementById("ns-" + tier);
    input.value = retentionOf(item)[tier] || "";
    const fallback = retentionOf(defaults)[tier];
    input.placeholder = fallback && name !== DEFAULTS ? `(the default: ${fallback})` : "(the default)";
  }
  nsForm.hidden = false;
}

// A namespace without a row yet (no settings, no events seen): typed in by name.
let nsItems = {};
const nsPick = document.getElementById("namespace-pick");
if (nsPick) {
  nsPick.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("ns-other").value.trim();
    if (name) openNamespaceForm(name, nsItems[name] || {});
  });
}

// Only what is set: an empty field takes the default's value (an empty body clears the entry).
function namespaceBody() {
  const body = {};
  const level = document.getElementById("ns-level").value;
  if (level) body.levels = level;
  const retention = {};
  for (const tier of ["general", "security"]) {
    const value = document.getElementById("ns-" + tier).value.trim();
    if (value) retention[tier] = value;
  }
  if (Object.keys(retention).length) body.retention = retention;
  return body;
}

// Shorter than what applies now (the namespace's own retention, else the defaults').
function shortens(before, after) {
  const defaults = retentionOf(effectiveOf(nsItems[DEFAULTS]));
  return ["general", "security"].some((tier) => {
    const old = seconds(retentionOf(effectiveOf(before))[tier] || defaults[tier]);
    const now = seconds(retentionOf(after)[tier]);
    return now !== null && (old === null || now < old);
  });
}

function namespacePath(name) {
  return API + "namespaces/" + encodeURIComponent(name);
}

async function putNamespace(body) {
  const name = nsEditing.name;
  const reply = await call("PUT", namespacePath(name), body);
  if (!reply.ok) { show("namespace-form-error", reply.data.error); return; }
  nsForm.hidden = true;
  show("namespaces-message", name === DEFAULTS ? "Saved the defaults for new namespaces." : `Saved the namespace ${name}.`);
  await loadNamespaces();
}

nsForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = namespaceBody();
  show("namespace-form-error", "");
  if (!shortens(nsEditing.item, body)) { await putNamespace(body); return; }
  // A shorter retention: show what the next purge would remove, and ask first.
  const dry = await call("PUT", namespacePath(nsEditing.name) + "?dry_run=1", body);
  if (!dry.ok) { show("namespace-form-error", dry.data.error); return; }
  const removes = dry.data && dry.data.effect ? dry.data.effect.next_purge_removes : undefined;
  document.getElementById("namespace-effect").textContent =
    `The next purge removes ${removes === undefined ? "an unknown number of" : removes} stored events. Save anyway?`;
  document.getElementById("namespace-confirm").hidden = false;
  document.getElementById("namespace-save").disabled = true;
});
document.getElementById("namespace-confirm-save").addEventListener("click", async () => {
  document.getElementById("namespace-confirm").hidden = true;
  document.getElementById("namespace-save").disabled = false;
  await putNamespace(namespaceBody());
});
document.getElementById("namespace-confirm-cancel").addEventListener("click", () => {
  document.getElementById("namespace-confirm").hidden = true;
  document.getElementById("namespace-save").disabled = false;
});
document.getElementById("namespace-cancel").addEventListener("click", () => { nsForm.hidden = true; });

// -- alerts (alert rules) ----------------------------------------------------------------------
const alForm = document.getElementById("alert-form");
let alEditing = null;   // the name being edited, or null when adding

function ruleFiltersText(rule) {
  return Object.entries(rule.filters || {}).map(([key, value]) => `${key}=${value}`);
}

function alertRow(tr, a) {
  tr.dataset.name = a.name;
  nameCell(tr, a.name, badgeOf(a));
  cell(tr, ruleFiltersText(a).join(", ") || "all events", "filters");
  cell(tr, (a.group_by || []).join(", "), "group-by");
  cell(tr, `${a.threshold} in ${a.window} for ${a.for || "0s"}`, "threshold");
  cell(tr, a.severity || "", "severity");
  cell(tr, a.firing ? `yes (${a.firing})` : "no", "firing");
  cell(tr, a.source === "collector.toml" ? "collector.toml" : "settings", "source");
  cell(tr, changedText(a), "changed");
  const actions = cell(tr, "", "row-actions");
  if (MAY_CHANGE && !fromFile(a)) {
    actions.appendChild(button("Edit", "edit", () => openAlertForm(a)));
    actions.appendChild(button("Remove", "remove", () => removeAlert(a.name)));
  }
}

const loadAlerts = tableLoader("alerts", "alerts", "alerts", "No alert rule visible to you.", alertRow);
loaders.alerts = loadAlerts;

function openAlertForm(a) {
  alEditing = a ? a.name : null;
  const text = !a ? {} : { "al-name": a.name, "al-threshold": a.threshold, "al-window": a.window, "al-for": a.for,
    "al-severity": a.severity, "al-summary": a.summary, "al-filters": ruleFiltersText(a).join("\n"),
    "al-group-by": (a.group_by || []).join(", ") };
  openEntryForm(alForm, "alert", a ? `Edit the rule ${a.name}` : "Add a rule", "al-name", text, () => {});
}

// The form as a JSON body: only the keys given (an empty field takes collector.toml's default);
// a threshold that is not a whole number is sent as typed, for the API to say what is wrong.
function alertBody() {
  const body = { name: document.getElementById("al-name").value.trim() };
  const threshold = document.getElementById("al-threshold").value.trim();
  if (threshold) body.threshold = /^\d+$/.test(threshold) ? Number(threshold) : threshold;
  for (const [key, id] of [["window", "al-window"], ["for", "al-for"], ["severity", "al-severity"],
    ["summary", "al-summary"]]) {
    const value = document.getElementById(id).value.trim();
    if (value) body[key] = value;
  }
  const filters = {};
  for (const line of document.getElementById("al-filters").value.split("\n").map((l) => l.trim()).filter((l) => l)) {
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`filters: "${line}" is not filter=value`);
    filters[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  if (Object.keys(filters).length) body.filters = filters;
  const groupBy = commaList(document.getElementById("al-group-by").value);
  if (groupBy.length) body.group_by = groupBy;
  return body;
}

submitsEntry(alForm, "alert-form-error", alertBody,
  (body) => saveEntry("alerts", "rule", body, alEditing, loadAlerts));
document.getElementById("alert-cancel").addEventListener("click", () => { alForm.hidden = true; });
const alertAddButton = document.getElementById("alert-add");
if (alertAddButton) alertAddButton.addEventListener("click", () => openAlertForm(null));

function removeAlert(name) {
  return removeEntry("alerts", name, `Remove the alert rule ${name}? Its firing alerts are no longer sent.`,
    "alerts", `Removed the rule ${name}.`, loadAlerts);
}

// -- access (tokens) ---------------------------------------------------------------------------
function tokenRow(tr, t) {
  tr.dataset.name = t.name;
  nameCell(tr, t.name, badgeOf(t));
  cell(tr, t.role, "role");
  cell(tr, (t.namespaces || []).join(", "), "namespaces");
  cell(tr, shownTime(t.created), "time");
  cell(tr, t.last_used ? shownTime(t.last_used) : "never", "time");
  cell(tr, changedText(t), "changed");
  const actions = cell(tr, "", "row-actions");
  if (MAY_MANAGE_TOKENS && !fromFile(t)) actions.appendChild(button("Revoke", "revoke", () => revokeToken(t.name)));
}

const loadTokens = tableLoader("access", "tokens", "tokens", "No token visible to you.", tokenRow);
loaders.access = loadTokens;

async function revokeToken(name) {
  const hideSecret = async () => { document.getElementById("token-secret").hidden = true; await loadTokens(); };
  await removeEntry("tokens", name, `Revoke the token ${name}? Whoever holds it is refused from now on.`, "access",
    `Revoked the token ${name}.`, hideSecret);
}

const tokenForm = document.getElementById("token-form");
if (tokenForm) {
  tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: document.getElementById("token-name").value.trim(), role: document.getElementById("token-role").value,
      namespaces: commaList(document.getElementById("token-namespaces").value) };
    const reply = await call("POST", API + "tokens", body);
    if (!reply.ok) { show("token-form-error", reply.data.error); return; }
    show("token-form-error", "");
    show("access-message", "");
    tokenForm.reset();
    document.getElementById("token-secret-name").textContent = reply.data.name || body.name;
    document.getElementById("token-secret-value").textContent = reply.data.token || reply.data.secret || "";
    document.getElementById("token-secret").hidden = false;
    await loadTokens();
  });
}

selectTab(window.location.hash.slice(1));
