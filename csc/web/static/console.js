// obsq console: draws the server's snapshots (server-sent events) and sends commands as JSON.
"use strict";

const $ = (selector) => document.querySelector(selector);
const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

let me = { role: "observer", user: null, queue: "ScriptQueue:2" };
let forms = { blocks: [], scripts: [], strategies: [], locations: {} };
let snapshot = null;
let dragging = null;
let imagesShown = "";
const toasted = new Set();

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

const operator = () => me.role === "operator";

// -- session -------------------------------------------------------------------------------

async function loadMe() {
  me = await api("/api/me");
  document.body.classList.toggle("observer", !operator());
  $("#where").textContent = `broker ${me.broker} · root ${me.root} · data ${me.data}`;
  $("#login").hidden = Boolean(me.user);
  $("#session").hidden = !me.user;
  $("#session-user").textContent = me.user ? `${me.user} (${me.role})` : "";
  if (snapshot) render(snapshot);
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("/api/login", { user: $("#login-user").value, password: $("#login-password").value });
    $("#login-password").value = "";
    await loadMe();
  } catch (error) {
    $("#login-error").textContent = error.message;
  }
});

$("#logout").addEventListener("click", async () => { await api("/api/logout", {}); await loadMe(); });

// -- commands ------------------------------------------------------------------------------

function showAcks(result) {
  const last = result.acks[result.acks.length - 1] || { ack: "NOACK", result: "no answer" };
  const line = document.createElement("li");
  line.className = `ack-${last.ack}`;
  line.dataset.command = result.command;
  const when = observatoryNow().slice(11, 19);
  line.textContent = `${when} ${result.component} ${result.command}: `
    + result.acks.map((a) => `${a.ack}${a.result ? " " + a.result : ""}`).join(" → ");
  $("#acks").prepend(line);
  while ($("#acks").children.length > 40) $("#acks").lastChild.remove();
}

async function command(component, name, data = {}) {
  try {
    const result = await api("/api/command", { component, command: name, data });
    showAcks(result);
    return result;
  } catch (error) {
    showAcks({ component, command: name, acks: [{ ack: "REFUSED", result: error.message }] });
    return null;
  }
}

const queueCommand = (name, data) => command(me.queue, name, data);
$("#pause").addEventListener("click", () => queueCommand("pause"));
$("#resume").addEventListener("click", () => queueCommand("resume"));

// -- forms from JSON Schema ----------------------------------------------------------------

function fieldsFor(schema, container, prefix) {
  container.innerHTML = "";
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  for (const [name, property] of Object.entries(properties)) {
    const label = document.createElement("label");
    const id = `${prefix}-${name}`;
    const kind = property.type || (property.enum ? "enum" : "value");
    const example = property.default !== undefined ? JSON.stringify(property.default) : "";
    let input;
    if (Array.isArray(property.enum)) {
      input = document.createElement("select");
      input.innerHTML = `<option value="">${required.has(name) ? "(choose)" : "(default)"}</option>`
        + property.enum.map((v) => `<option value="${esc(v)}">${esc(v)}</option>`).join("");
    } else if (kind === "array" || kind === "object") {
      input = document.createElement("textarea");
      input.rows = 2;
      input.placeholder = example || (kind === "array" ? "[a, b]" : "{key: value}");
    } else {
      input = document.createElement("input");
      input.placeholder = example;
    }
    input.id = id;
    input.name = name;
    input.dataset.field = name;
    const unit = (p) => (p && p.units ? ` [${p.units}]` : "");
    const inner = property.properties
      ? ` {${Object.entries(property.properties).map(([k, p]) => `${k}${unit(p)}`).join(", ")}}` : "";
    const help = [kind + unit(property) + inner,
      required.has(name) ? "required" : (example ? `default ${example}` : "optional"),
      property.description].filter(Boolean).join(" · ");
    label.innerHTML = `<span>${esc(name)}${required.has(name) ? " *" : ""}</span> <span class="field-help">${esc(help)}</span>`;
    label.append(input);
    container.append(label);
  }
  if (!Object.keys(properties).length) container.innerHTML = `<p class="hint">takes no configuration</p>`;
}

const formValues = (container) => Object.fromEntries(
  [...container.querySelectorAll("[data-field]")].map((input) => [input.dataset.field, input.value])
    .filter(([, value]) => value.trim() !== ""));

function chooseBlock() {
  const block = forms.blocks.find((b) => b.id === $("#block-select").value);
  if (!block) return;
  $("#block-scripts").textContent = `${block.name}: ${block.scripts.join(" → ")}`;
  fieldsFor(block.schema, $("#block-fields"), "block");
}

function chooseScript() {
  const [standard, path] = $("#script-select").value.split("|");
  const script = forms.scripts.find((s) => s.path === path && String(s.standard) === standard);
  if (!script) return;
  $("#script-description").textContent = script.description;
  fieldsFor(script.schema, $("#script-fields"), "script");
}

async function loadForms() {
  forms = await api("/api/forms");
  $("#block-select").innerHTML = forms.blocks.map((b) => `<option value="${esc(b.id)}">${esc(b.id)} — ${esc(b.name)}</option>`).join("");
  $("#block-strategy").innerHTML = forms.strategies.map((s) => `<option>${esc(s)}</option>`).join("");
  $("#script-select").innerHTML = forms.scripts.map((s) =>
    `<option value="${s.standard}|${esc(s.path)}">${s.standard ? "" : "external: "}${esc(s.path)}</option>`).join("");
  chooseBlock();
  chooseScript();
}

$("#block-select").addEventListener("change", chooseBlock);
$("#script-select").addEventListener("change", chooseScript);

async function submitForm(event, path, body, button) {
  event.preventDefault();
  $("#form-error").textContent = "";
  button.disabled = true;
  try {
    const result = await api(path, body);
    showAcks(result);
    if (!result.ok) $("#form-error").textContent = result.acks.map((a) => a.result).filter(Boolean).pop() || "refused";
  } catch (error) {
    $("#form-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

$("#block-form").addEventListener("submit", (event) => submitForm(event, "/api/queue/add-block", {
  block: $("#block-select").value, fields: formValues($("#block-fields")), failureStrategy: $("#block-strategy").value,
}, $("#block-submit")));

$("#script-form").addEventListener("submit", (event) => {
  const [standard, path] = $("#script-select").value.split("|");
  submitForm(event, "/api/queue/add", {
    path, standard: standard === "true", fields: formValues($("#script-fields")), yaml: $("#script-yaml").value,
    location: $("#script-location").value,
  }, $("#script-submit"));
});

// -- drawing the snapshot ------------------------------------------------------------------

function healthClass(health) {
  if (health === "alive") return "alive";
  if (health.startsWith("not responding")) return "stale";
  return "bad";
}

// the state commands each summary state takes (Rubin's state machine): only these are offered
const STATE_COMMANDS = {
  STANDBY: ["start", "exitControl"], DISABLED: ["enable", "standby"], ENABLED: ["disable"], FAULT: ["standby"],
};

function stateButtons(c) {
  if (!operator() || c.health !== "alive") return "";
  return (STATE_COMMANDS[c.state] || []).map((name) =>
    `<button type="button" class="cmd state-cmd" data-component="${esc(c.id)}" data-command="${name}">${name}</button>`)
    .join(" ");
}

function toast(text, ok = false) {
  const note = document.createElement("div");
  note.className = `toast${ok ? " ok" : ""}`;
  note.textContent = text;
  $("#toasts").append(note);
  setTimeout(() => note.remove(), 12000);
}

let clockSeen = { time: "", at: 0, speed: 1 };

// the observatory's time now: its time at the last snapshot, advanced at its speed since (the browser's clock if unheard)
function observatoryNow() {
  if (!clockSeen.time) return new Date().toISOString();
  const then = Date.parse(clockSeen.time.endsWith("Z") ? clockSeen.time : `${clockSeen.time}Z`);
  return new Date(then + (performance.now() - clockSeen.at) * clockSeen.speed).toISOString();
}

function renderClock(clock) {
  if (clock && clock.heard) clockSeen = { time: clock.time, at: performance.now(), speed: clock.speed };
  const box = $("#clock");
  if (!clock || !clock.heard) { box.textContent = "observatory time: no component heard yet"; return; }
  const kind = clock.simulated ? `simulated, ×${clock.speed >= 10 ? Math.round(clock.speed) : clock.speed}` : "real time";
  box.textContent = `observatory time ${clock.time.slice(0, 10)} ${clock.time.slice(11, 19)} UTC · ${kind}`;
  box.classList.toggle("simulated", Boolean(clock.simulated));
}

function sparkline(trend) {
  const points = trend.points;
  if (points.length < 2) return "";
  const width = 260, height = 70;
  const ts = points.map((p) => p[0]), vs = points.map((p) => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(...vs), v1 = Math.max(...vs);
  const x = (t) => (t1 > t0 ? (t - t0) / (t1 - t0) : 0) * (width - 4) + 2;
  const y = (v) => height - 2 - (v1 > v0 ? (v - v0) / (v1 - v0) : 0.5) * (height - 4);
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
  const minutes = ((t1 - t0) / 60).toFixed(1);
  return `<figure><svg width="${width}" height="${height}" role="img" aria-label="${esc(trend.label)}">`
    + `<path d="${path}" fill="none" stroke="#3a7bd5" stroke-width="1.5"/></svg>`
    + `<figcaption>${esc(trend.label)}: ${vs[vs.length - 1].toFixed(1)} now, ${v0.toFixed(1)}–${v1.toFixed(1)} `
    + `over the last ${minutes} min</figcaption></figure>`;
}

function renderDevices(devices, trends) {
  const names = Object.keys(devices || {});
  $("#devices").innerHTML = names.map((name) => `<dt>${esc(name)}</dt><dd data-device="${esc(name)}">`
    + devices[name].map((line) => esc(line)).join("<br>") + "</dd>").join("")
    || "<dd class='hint'>no device heard yet</dd>";
  $("#trends").innerHTML = (trends || []).map(sparkline).join("");
}

function renderComponents(components) {
  $("#components tbody").innerHTML = components.map((c) => {
    const age = c.heartbeatAge === null ? "-" : `${c.heartbeatAge.toFixed(1)} s ago`;
    const log = c.logs[0] ? `${c.logs[0].time.slice(11, 19)} ${c.logs[0].message}` : "";
    return `<tr data-component="${esc(c.id)}"><td>${esc(c.id)}</td><td class="state state-${esc(c.state)}">${esc(c.state)}</td>`
      + `<td>${esc(age)}</td><td class="health ${healthClass(c.health)}">${esc(c.health)}</td>`
      + `<td class="error">${esc([c.error, c.note].filter(Boolean).join("; "))}</td>`
      + `<td class="device ${c.connection === "connected" ? "alive" : c.devices ? "bad" : ""}" title="${esc(c.connection)}">`
      + `${esc(c.devices)}${c.devices ? ` (${esc(c.connection.split(":")[0])})` : ""}</td><td class="hint">${esc(log)}</td>`
      + `<td class="commanding">${stateButtons(c)}</td>`
      + `<td><a href="/api/events/${encodeURIComponent(c.id)}" data-events="${esc(c.id)}">events</a></td></tr>`;
  }).join("");
  const logs = (snapshot && snapshot.logs) || components.flatMap((c) => c.logs.map((line) => ({ ...line, id: c.id })))
    .sort((a, b) => b.time.localeCompare(a.time)).slice(0, 40);
  $("#logs tbody").innerHTML = logs.map((l) => `<tr class="level-${l.level}"><td>${esc(l.time.slice(11, 23))}</td>`
    + `<td>${esc(l.id)}</td><td>${esc(l.message)}</td></tr>`).join("");
}

function itemButtons(item, area) {
  if (!operator()) return "";
  const stop = `<button type="button" class="cmd stop" data-index="${item.index}">stop</button>`;
  if (area === "current") {
    return stop + ` <button type="button" class="cmd terminate" data-index="${item.index}">terminate</button>`;
  }
  if (area === "queue") {
    return `<button type="button" class="cmd first" data-index="${item.index}">to top</button> ${stop}`
      .replace("stop</button>", "remove</button>");
  }
  // as Rubin's queue, a script of a block is not requeued alone: its block is re-run from it (restOfBlock)
  if (item.block) {
    return item.state === "DONE" ? ""
      : `<button type="button" class="cmd rerun" data-index="${item.index}" title="run this script and the rest of its block again">re-run from here</button>`;
  }
  return `<button type="button" class="cmd requeue" data-index="${item.index}">requeue</button>`;
}

function renderQueue(queue) {
  if (!queue || queue.running === undefined) {
    $("#queue-state").textContent = "(not seen yet)";
    return;
  }
  const summary = (snapshot && snapshot.components || []).find((c) => c.id === me.queue);
  const enabled = queue.enabled && (!summary || summary.state === "ENABLED");
  const word = !enabled ? `${summary ? summary.state : "not enabled"}: takes no script until enabled`
    : (queue.running ? "running" : "PAUSED");
  $("#queue-state").textContent = word;
  $("#queue-state").className = !enabled ? "state-FAULT" : (queue.running ? "state-ENABLED" : "state-DISABLED");
  const item = queue.running_item;
  const failed = item && ["FAILED", "CONFIGURE_FAILED", "ABORTED", "TERMINATED"].includes(item.state);
  $("#queue-why").textContent = failed ? `#${item.index} ${item.state}: ${item.reason || "no reason given"}` : "";
  $("#current").classList.toggle("failed", Boolean(failed));
  if (item) {
    const share = item.total ? Math.round(100 * item.done / item.total) : 0;
    const label = failed ? "failed, kept for inspection" : "current";
    $("#current").innerHTML = `<b>${label}</b> #${item.index} ${esc(item.block || "")} <b>${esc(item.path)}</b> `
      + `<span class="script-state">${esc(item.state)}</span> ${failed ? "" : itemButtons(item, "current")}`
      + (failed ? `<div class="why">${esc(item.reason || "no reason given")}</div>`
        + `<div class="hint">fix the cause, then resume the queue (the failed script goes to History)</div>` : "")
      + `<div class="checkpoint">${esc(item.checkpoint)}</div>`
      + (item.total ? `<div class="progress"><div style="width:${share}%"></div></div>${item.done}/${item.total} images` : "");
    const key = `${item.index}:${item.state}`;
    if (failed && !toasted.has(key)) {
      toasted.add(key);
      toast(`#${item.index} ${item.path} ${item.state}: ${item.reason || "no reason given"}`);
    }
  } else {
    $("#current").innerHTML = "<i>no script running</i>";
  }
  if (!dragging) {
    $("#queued tbody").innerHTML = queue.queued.map((i) =>
      `<tr draggable="${operator()}" data-index="${i.index}"><td>${i.index}</td><td>${esc(i.block)}</td><td>${esc(i.path)}</td>`
      + `<td class="script-state">${esc(i.state)}</td><td>${itemButtons(i, "queue")}</td></tr>`).join("")
      || `<tr><td colspan="5"><i>empty</i></td></tr>`;
  }
  $("#history tbody").innerHTML = queue.history.map((i) =>
    `<tr data-index="${i.index}"><td>${i.index}</td><td>${esc(i.block)}</td><td>${esc(i.path)}</td>`
    + `<td class="outcome outcome-${esc(i.state)}">${esc(i.state)}</td><td>${esc(i.reason)}</td>`
    + `<td>${itemButtons(i, "history")}</td></tr>`).join("");
}

function renderImages(images) {
  // incremental: a figure already shown stays (its preview is not fetched again); new ones go first
  const wanted = images.slice(0, 12);
  const key = wanted.map((i) => i.number).join(",");
  if (key === imagesShown) return;
  imagesShown = key;
  const box = $("#images");
  const shown = new Map([...box.querySelectorAll("figure[data-number]")].map((f) => [Number(f.dataset.number), f]));
  const keep = new Set(wanted.map((i) => i.number));
  for (const [number, figure] of shown) if (!keep.has(number)) figure.remove();
  box.querySelector(".hint")?.remove();
  let before = box.firstChild;
  for (const image of wanted) {
    let figure = shown.get(image.number);
    if (!figure) {
      figure = document.createElement("figure");
      figure.dataset.number = image.number;
      figure.innerHTML = `<img src="/api/images/${image.number}.png" alt="${esc(image.name)}">`
        + `<figcaption>${esc(image.name)}<br>${esc(image.about || "")}<br>`
        + `${esc(image.time.slice(11, 19))} UTC (observatory) · bias and overscan off</figcaption>`;
    }
    if (figure !== before) box.insertBefore(figure, before);
    before = figure.nextSibling;
  }
  if (!wanted.length) box.innerHTML = "<p class='hint'>no image yet</p>";
}

const SCHEDULER_MEANS = {
  ENABLED: "it queues the schedule's blocks by itself", DISABLED: "it queues nothing until enabled",
  STANDBY: "it queues nothing until started and enabled", FAULT: "it queues nothing: send standby, then start",
};

function renderScheduler(scheduler) {
  if (!scheduler) {
    $("#scheduler-state").textContent = "not heard: nothing is queued by itself";
    $("#scheduler-state").className = "state-STANDBY";
    return;
  }
  $("#scheduler-state").textContent = scheduler.state
    ? `${scheduler.state}: ${SCHEDULER_MEANS[scheduler.state] || ""}` : "";
  $("#scheduler-state").className = `state-${scheduler.state}`;
  const s = scheduler.schedule;
  const note = $("#scheduler-note");
  note.textContent = scheduler.note ? `Scheduler ${scheduler.state}: ${scheduler.note}` : "";
  note.hidden = !scheduler.note;
  $("#schedule").textContent = s && s.source ? `${s.source} — ${s.site} (${s.timezone})\n${s.rules}` : "(no schedule)";
  $("#decisions tbody").innerHTML = scheduler.decisions.map((d) =>
    `<tr><td>${esc(d.time)}</td><td>${esc(d.rule)}</td><td>${esc(d.action)}</td><td>${esc(d.blocks)}</td>`
    + `<td>${esc(d.reason)}</td></tr>`).join("");
  $("#runs tbody").innerHTML = scheduler.runs.map((r) => {
    const bad = r.outcome.startsWith("ERROR") || r.outcome.startsWith("failing");
    return `<tr><td>${esc(r.occurrence)}</td><td>${esc(r.rule)}</td><td>${esc(r.blocks)}</td>`
      + `<td class="${bad ? "error" : ""}">${esc(r.outcome)}</td></tr>`;
  }).join("");
}

function render(data) {
  snapshot = data;
  renderClock(data.observatory);
  renderDevices(data.devices, data.trends);
  renderComponents(data.components);
  renderQueue(data.queue);
  renderImages(data.images);
  renderScheduler(data.scheduler);
}

let mastersShown = "";
async function loadMasters() {
  const answer = await api("/api/masters");
  const text = JSON.stringify(answer);
  if (text === mastersShown) return;  // unchanged: the previews are not fetched again
  mastersShown = text;
  const { masters, ptc, repository } = answer;
  $("#masters-where").textContent = repository ? `the calibration repository ${repository}, and its latest report` : "";
  $("#masters tbody").innerHTML = masters.map((m) =>
    `<tr><td>${m.id}</td><td>${esc(m.type)}</td><td>${esc(m.filter || "-")}</td><td>${m.version}</td><td>${m.inputs}</td>`
    + `<td>${esc(m.verified)}</td><td class="${m.certified ? "" : "hint"}">${esc(m.certification)}</td>`
    + `<td><img src="/api/masters/${m.id}.png" alt="master ${m.id}" loading="lazy"></td></tr>`).join("")
    || `<tr><td colspan="8"><i>no master yet</i></td></tr>`;
  const plot = $("#ptc-plot");
  if (!ptc) return;
  plot.onload = () => { plot.hidden = false; $("#ptc").hidden = false; };
  plot.src = `/api/ptc.png?t=${masters.length}`;
}
$("#masters-refresh").addEventListener("click", loadMasters);

// -- clicks on the tables ------------------------------------------------------------------

document.addEventListener("click", async (event) => {
  const target = event.target;
  if (target.dataset && target.dataset.events) {
    event.preventDefault();
    const data = await api(`/api/events/${encodeURIComponent(target.dataset.events)}`);
    $("#events-title").textContent = `${data.component}: recent events`;
    $("#events tbody").innerHTML = data.events.map((e) => `<tr><td>${esc(e.time)}</td><td>${esc(e.event)}</td>`
      + `<td>${esc(JSON.stringify(e.data))}</td></tr>`).join("");
    $("#events-panel").hidden = false;
    return;
  }
  if (target instanceof HTMLButtonElement && target.dataset.command && target.dataset.component) {
    target.disabled = true;
    const result = await command(target.dataset.component, target.dataset.command);
    const last = result && result.acks[result.acks.length - 1];
    toast(`${target.dataset.component} ${target.dataset.command}: ${last ? last.ack : "refused"}`
      + `${last && last.result ? " — " + last.result : ""}`, Boolean(last && last.ack === "COMPLETE"));
    return;
  }
  if (!(target instanceof HTMLButtonElement) || !target.dataset.index) return;
  const index = Number(target.dataset.index);
  if (target.classList.contains("stop")) await queueCommand("stopScripts", { salIndices: [index], terminate: false });
  else if (target.classList.contains("terminate")) await queueCommand("stopScripts", { salIndices: [index], terminate: true });
  else if (target.classList.contains("first")) await queueCommand("move", { scriptSalIndex: index, location: forms.locations.first, locationSalIndex: 0 });
  else if (target.classList.contains("requeue")) await queueCommand("requeue", { scriptSalIndex: index, location: forms.locations.last, locationSalIndex: 0 });
  else if (target.classList.contains("rerun")) await queueCommand("requeue", { scriptSalIndex: index, location: forms.locations.last, locationSalIndex: 0, restOfBlock: true });
});
$("#events-close").addEventListener("click", () => { $("#events-panel").hidden = true; });

// drag a queued script onto another: it moves before that one
const queued = $("#queued tbody");
queued.addEventListener("dragstart", (event) => {
  dragging = event.target.closest("tr");
  dragging.classList.add("dragging");
  event.dataTransfer.setData("text/plain", dragging.dataset.index);
});
queued.addEventListener("dragover", (event) => { event.preventDefault(); });
queued.addEventListener("dragend", () => { if (dragging) dragging.classList.remove("dragging"); dragging = null; });
queued.addEventListener("drop", async (event) => {
  event.preventDefault();
  const onto = event.target.closest("tr");
  const moved = Number(event.dataTransfer.getData("text/plain"));
  dragging = null;
  if (!onto || !onto.dataset.index || Number(onto.dataset.index) === moved) return;
  await queueCommand("move", { scriptSalIndex: moved, location: forms.locations.before, locationSalIndex: Number(onto.dataset.index) });
});

// -- the stream ----------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("snapshot", (event) => {
    $("#link").textContent = "live";
    $("#link").className = "health alive";
    render(JSON.parse(event.data));
  });
  source.onerror = () => {
    $("#link").textContent = "console server unreachable; retrying";
    $("#link").className = "health bad";
  };
}

loadMe().then(loadForms).then(loadMasters).catch((error) => { $("#login-error").textContent = error.message; });
connect();
setInterval(loadMasters, 5000);
