// The labeling page: asks the server for a point, sends labels, draws progress and the
// accuracy chart. Each tab is its own client (an id kept in sessionStorage), so two tabs
// never get the same point.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const clientId = (() => {
  let id = sessionStorage.getItem("jaxal-client");
  if (!id) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("jaxal-client", id);
  }
  return id;
})();

let state = null; // the last /api/state answer
let point = null; // the point shown, or null
let reason = ""; // why no point is shown
let inFlight = false; // a label, skip or undo is on its way
let lastRound = null; // the round of this tab's last label, for undo
let chartKey = "";

// The access token rides in the address once; the server answers with a cookie.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}

async function api(path, body) {
  const options = body === undefined
    ? { method: "GET" }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  let payload = {};
  try {
    payload = await response.json();
  } catch (_) {
    payload = { error: `the server answered ${response.status}` };
  }
  if (!response.ok) {
    throw new Error(payload.error || `the server answered ${response.status}`);
  }
  return payload;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function annotator() {
  const name = $("annotator").value.trim();
  return name || (state && state.annotator) || "annotator";
}

// The key of each class: its own name when every class is named by one digit (digits'
// 0 to 9), else 1, 2, ..., 9 and 0 for the tenth.
let keyOfLabel = [];

function shortcutKeys(classes) {
  const digits = classes.every((name) => /^[0-9]$/.test(name));
  if (digits && new Set(classes).size === classes.length) return classes.slice();
  return classes.map((_, k) => (k < 10 ? String((k + 1) % 10) : ""));
}

function buildClasses(classes) {
  const box = $("classes");
  if (box.childElementCount === classes.length) return;
  box.replaceChildren();
  keyOfLabel = shortcutKeys(classes);
  classes.forEach((name, k) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = String(k);
    button.setAttribute("aria-label", name);
    if (keyOfLabel[k]) {
      const key = document.createElement("kbd");
      key.textContent = keyOfLabel[k];
      button.append(key);
      button.title = `${name} (key ${keyOfLabel[k]})`;
    }
    button.append(document.createTextNode(name));
    button.addEventListener("click", () => submit(k));
    box.append(button);
  });
}

function showPoint(next, why) {
  point = next;
  reason = why || "";
  const box = $("point");
  const image = $("point-image");
  const table = $("point-table");
  if (!point) {
    box.hidden = true;
    box.dataset.index = "";
    renderWaiting();
    renderButtons();
    return;
  }
  box.hidden = false;
  box.dataset.index = String(point.index);
  $("waiting").hidden = true;
  if (point.image) {
    image.hidden = false;
    table.hidden = true;
    image.src = point.image;
    image.alt = `point ${point.index}`;
  } else {
    image.hidden = true;
    table.hidden = false;
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const [name, value] of point.row) {
      const row = body.insertRow();
      const head = document.createElement("th");
      head.textContent = name;
      row.append(head);
      row.insertCell().textContent = typeof value === "number" ? String(+value.toPrecision(6)) : String(value);
    }
  }
  const size = state && state.round ? state.round.size : "?";
  $("point-caption").textContent = `point ${point.index} · ${point.position + 1} of ${size} in this batch`;
  renderButtons();
}

function renderWaiting() {
  const box = $("waiting");
  if (point) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  let text = reason || "Waiting for the next batch…";
  let idle = false;
  if (state) {
    if (state.worker.error) {
      text = `The worker failed: ${state.worker.error}`;
      idle = true;
    } else if (state.worker.busy) {
      text = `The model is ${state.worker.busy}…`;
    } else if (state.done) {
      text = "All done: nothing is left to pick.";
      idle = true;
    }
  }
  box.classList.toggle("idle", idle);
  $("waiting-text").textContent = text;
}

function renderButtons() {
  const ready = Boolean(point) && !inFlight;
  for (const button of $("classes").children) button.disabled = !ready;
  $("skip").disabled = !ready;
  $("undo").disabled = inFlight || undoRound() === null;
}

function renderState() {
  $("title").textContent = state.title ? `· ${state.title}` : "";
  if (!$("annotator").value) {
    $("annotator").value = localStorage.getItem("jaxal-annotator") || state.annotator;
  }
  buildClasses(state.classes);
  $("status-text").textContent = state.status || "the model picks the first batch";
  const round = state.round;
  if (round) {
    $("batch-text").textContent =
      `${round.resolved} of ${round.size} done in batch ${round.index + 1}`;
    $("batch-bar").max = Math.max(round.size, 1);
    $("batch-bar").value = round.resolved;
  } else {
    $("batch-text").textContent = state.done ? "all batches done" : "waiting for the first batch";
    $("batch-bar").value = state.done ? $("batch-bar").max : 0;
  }
  const of = state.rounds ? ` · batch ${round ? round.index + 1 : state.rounds} of ${state.rounds}` : "";
  const skipped = state.skipped ? `, ${state.skipped} skipped` : "";
  $("overall-text").textContent =
    `${state.labeled} of ${state.pool_size} points labeled${skipped}${of}`;
  $("overall-bar").max = state.pool_size;
  $("overall-bar").value = state.labeled + state.skipped;
  renderChart(state.heldout ? state.chart : null);
  renderWaiting();
  renderButtons();
}

function svg(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Round numbers from low to high, at most six of them.
function ticks(low, high) {
  const raw = (high - low) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high + 1e-9; v += step) out.push(+v.toFixed(6));
  return out;
}

function renderChart(points) {
  const box = $("chart-box");
  if (!points) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const key = JSON.stringify(points);
  if (key === chartKey) return;
  chartKey = key;
  const chart = $("chart");
  chart.replaceChildren();
  const [left, right, top, bottom] = [40, 350, 12, 170];
  const xs = points.map((p) => p.labeled);
  const low = Math.min(0, ...xs);
  const high = Math.max(low + 1, ...xs);
  const x = (v) => left + ((v - low) / (high - low)) * (right - left);
  const y = (v) => bottom - v * (bottom - top);
  chart.append(svg("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }));
  chart.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }));
  for (const v of [0, 0.5, 1]) {
    chart.append(svg("text", { class: "tick", x: left - 6, y: y(v) + 3, "text-anchor": "end" }, v.toFixed(1)));
    chart.append(svg("line", { class: "axis", x1: left, y1: y(v), x2: right, y2: y(v), "stroke-dasharray": "2 4" }));
  }
  for (const v of ticks(low, high)) {
    chart.append(svg("text", { class: "tick", x: x(v), y: bottom + 14, "text-anchor": "middle" }, String(v)));
  }
  chart.append(svg("text", { class: "tick", x: (left + right) / 2, y: bottom + 28, "text-anchor": "middle" }, "labels"));
  if (points.length > 1) {
    const path = points.map((p) => `${x(p.labeled).toFixed(1)},${y(p.accuracy).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { class: "line", points: path }));
  }
  for (const p of points) {
    const dot = svg("circle", { class: "dot", cx: x(p.labeled), cy: y(p.accuracy), r: 4 });
    dot.append(svg("title", {}, `round ${p.round + 1}: ${p.labeled} labels, accuracy ${p.accuracy.toFixed(3)}`));
    chart.append(dot);
  }
  chart.dataset.points = String(points.length);
  const last = points[points.length - 1];
  $("chart-text").textContent = points.length
    ? `${points.length} round${points.length > 1 ? "s" : ""}; latest: ${last.accuracy.toFixed(2)} with ${last.labeled} labels`
    : "The first point appears once the model has trained on some labels.";
}

async function refresh() {
  try {
    const shown = point ? `&point=${point.index}` : "";
    state = await api(`/api/state?client=${clientId}${shown}`);
    renderState();
    if (!point && !inFlight && state.round && state.round.open) {
      const next = await api("/api/next", { client: clientId });
      if (!point && !inFlight) showPoint(next.point, next.reason);
    }
    if (point && state.round && state.round.index !== point.round) showPoint(null, "");
  } catch (error) {
    showError(error.message);
  }
}

async function act(path, body) {
  if (inFlight) return;
  inFlight = true;
  renderButtons();
  try {
    const answer = await api(path, body);
    showError("");
    return answer;
  } catch (error) {
    showError(error.message);
    return null;
  } finally {
    inFlight = false;
    renderButtons();
  }
}

async function submit(label) {
  if (!point || inFlight) return;
  localStorage.setItem("jaxal-annotator", annotator());
  const shown = point;
  const answer = await act("/api/label", {
    client: clientId, round: shown.round, index: shown.index, label, annotator: annotator(),
  });
  if (answer) {
    lastRound = shown.round;
    showPoint(answer.point, answer.reason);
  } else {
    await fetchAgain();
  }
  refresh();
}

async function skip() {
  if (!point || inFlight) return;
  const shown = point;
  const answer = await act("/api/skip", {
    client: clientId, round: shown.round, index: shown.index, annotator: annotator(),
  });
  if (answer) {
    lastRound = shown.round;
    showPoint(answer.point, answer.reason);
  } else {
    await fetchAgain();
  }
  refresh();
}

function undoRound() {
  if (lastRound !== null) return lastRound;
  return state && state.round && state.round.open ? state.round.index : null;
}

async function undo() {
  const round = undoRound();
  if (inFlight || round === null) return;
  const answer = await act("/api/undo", { client: clientId, round });
  if (answer) showPoint(answer.point, answer.reason);
  refresh();
}

async function fetchAgain() {
  // After a refused label (a stale round, a point taken elsewhere): show what is current.
  point = null;
  await refresh();
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  if (/^[0-9]$/.test(key)) {
    const k = keyOfLabel.indexOf(key);
    if (k >= 0) {
      event.preventDefault();
      submit(k);
    }
  } else if (key === "s" || key === "S") {
    event.preventDefault();
    skip();
  } else if (key === "u" || key === "U" || key === "Backspace") {
    event.preventDefault();
    undo();
  }
});

$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);
$("annotator").addEventListener("change", () => localStorage.setItem("jaxal-annotator", annotator()));
window.addEventListener("pagehide", () => {
  const body = new Blob([JSON.stringify({ client: clientId })], { type: "application/json" });
  navigator.sendBeacon("/api/release", body);
});

refresh();
setInterval(refresh, 1000);
