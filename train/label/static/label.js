// The labelling page. Talks to train/label/server.py; every change is PUT at once, in order,
// and retried while the server is unreachable, so the status line never says "saved" for a
// label that is not on disk.
"use strict";

const KEYWORD_KINDS = new Set(["keyword", "true_accept"]);
const KEY_KINDS = { k: "keyword", n: "negative", t: "true_accept", f: "false_accept", u: "unlabeled" };
const CLICK_PX = 4;            // a drag shorter than this is a click (move the playhead)
const NUDGE_S = 0.1, FINE_NUDGE_S = 0.01, NEW_SPAN_S = 0.5, RETRY_MS = 1000;

const $ = (sel) => document.querySelector(sel);
const state = {
  items: [], index: -1, item: null, label: null, peaks: null, spec: null, duration: 0,
  playhead: 0, drag: null, selected: -1, token: 0, stashedSpans: new Map(),
  saveChain: Promise.resolve(), pending: 0, refused: false,
};

async function api(url, options) {
  const response = await fetch(url, options);
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const body = isJson ? await response.json() : null;
  if (!response.ok) {
    const err = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return body;
}
const q = (path) => "path=" + encodeURIComponent(path);

// ---- the list -------------------------------------------------------------------------
async function loadList() {
  const data = await api("/api/items");
  $("#root").textContent = data.root;
  state.items = data.items;
  renderList();
  if (!state.items.length) {
    $("#editor").hidden = true;
    $("#empty").hidden = false;
    $("#empty-message").textContent = `No audio files under ${data.root}. Record some with "make record" ` +
      `or fetch detections with "make collect HOST=pi", then reload.`;
    return;
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  const found = state.items.findIndex((it) => it.path === wanted);
  await select(found >= 0 ? found : 0);
}

function kindOf(item) {
  return item.error ? "corrupt" : item.label.kind;
}

function renderList() {
  const ul = $("#items");
  ul.replaceChildren(...state.items.map((item, i) => {
    const li = document.createElement("li");
    li.dataset.path = item.path;
    li.classList.toggle("corrupt", !!item.error);
    li.classList.toggle("badlabel", !!item.label_problem);
    li.classList.toggle("current", i === state.index);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.path;
    name.title = item.error || item.label_problem || item.path;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.kind = kindOf(item);
    badge.textContent = kindOf(item).replace("_", " ");
    li.append(name, badge);
    li.addEventListener("click", () => select(i));
    return li;
  }));
  const done = state.items.filter((it) => !it.error && it.label.kind !== "unlabeled").length;
  $("#progress").textContent = `${done} of ${state.items.length} labelled`;
}

// ---- one item ---------------------------------------------------------------------------
async function select(index) {
  if (index < 0 || index >= state.items.length) return;
  const token = ++state.token;
  delete document.body.dataset.loaded;   // set again once the item is drawn (tests wait for it)
  stopPlayback();
  state.index = index;
  const path = state.items[index].path;
  history.replaceState(null, "", "#" + encodeURIComponent(path));
  renderList();
  document.querySelector("#items li.current")?.scrollIntoView({ block: "nearest" });
  let item;
  try {
    item = await api("/api/item?" + q(path));
  } catch (err) {
    item = { ...state.items[index], error: err.message };
  }
  if (token !== state.token) return;
  state.items[index] = item;
  Object.assign(state, { item, label: item.label, peaks: null, spec: null, playhead: 0, selected: -1, drag: null });
  state.duration = item.duration_s || 0;
  $("#editor").hidden = false;
  $("#title").textContent = item.path;
  showProblem();
  renderMeta();
  renderList();
  renderLabel();
  $("#kinds").setAttribute("aria-disabled", item.error ? "true" : "false");
  $("#view").hidden = $("#transport").hidden = !!item.error;
  if (item.error) {
    document.body.dataset.loaded = item.path;
    return;
  }
  await loadAudio(path, token);
}

function showProblem(extra) {
  const item = state.item;
  const lines = [];
  if (item.error) lines.push(`This file is corrupt or unreadable (${item.error}); the other files can still be labelled.`);
  if (item.label_problem) lines.push(`Label file problem: ${item.label_problem}`);
  if (extra) lines.push(extra);
  $("#problem").textContent = lines.join(" ");
  $("#problem").hidden = !lines.length;
}

async function loadAudio(path, token) {
  const wave = $("#wave");
  sizeCanvases();
  try {
    const peaks = await api(`/api/peaks?${q(path)}&columns=${wave.width}`);
    if (token !== state.token) return;
    state.peaks = peaks;
    state.duration = peaks.duration_s;
    draw();
    document.body.dataset.loaded = path;
    const img = new Image();
    img.onload = () => { if (token === state.token) { state.spec = img; draw(); } };
    img.src = "/api/spectrogram.png?" + q(path);
    $("#player").src = "/api/audio.wav?" + q(path);
  } catch (err) {
    if (token !== state.token) return;
    state.item.error = err.message;
    $("#view").hidden = $("#transport").hidden = true;
    $("#kinds").setAttribute("aria-disabled", "true");
    showProblem();
    renderList();
    document.body.dataset.loaded = path;
  }
}

function renderMeta() {
  const item = state.item;
  const rows = [["group", item.group]];
  if (item.duration_s) rows.push(["audio", `${item.duration_s.toFixed(3)} s, ${item.sample_rate} Hz, ${item.channels} ch`]);
  for (const [k, v] of Object.entries(item.meta || {})) rows.push([k, typeof v === "object" ? JSON.stringify(v) : String(v)]);
  if (item.label.updated) rows.push(["label saved", item.label.updated]);
  $("#meta").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

function renderLabel() {
  const label = state.label;
  for (const b of document.querySelectorAll("#kinds button")) {
    b.setAttribute("aria-pressed", String(b.dataset.kind === label.kind));
  }
  $("#spans").replaceChildren(...label.keyword_spans.map(([a, b], i) => {
    const li = document.createElement("li");
    li.classList.toggle("selected", i === state.selected);
    li.dataset.start = a; li.dataset.end = b;
    li.append(`${a.toFixed(3)} – ${b.toFixed(3)} s`);
    const del = document.createElement("button");
    del.type = "button"; del.textContent = "remove";
    del.addEventListener("click", () => { state.selected = i; deleteSpan(); });
    li.append(del);
    return li;
  }));
  if (!label.keyword_spans.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "none (drag on the waveform to mark the keyword)";
    $("#spans").append(li);
  }
  draw();
}

// ---- editing ------------------------------------------------------------------------------
function positiveKind() {
  return state.item.group === "field" ? "true_accept" : "keyword";
}

function suggestedSpan() {
  const span = state.item && state.item.meta && state.item.meta.speech_span_s;
  return Array.isArray(span) && span.length === 2 && span.every(Number.isFinite) ? span : null;
}

function setSpans(spans, selectedSpan) {
  const r = (t) => Math.round(Math.min(Math.max(t, 0), state.duration) * 1000) / 1000;
  spans = spans.map(([a, b]) => [r(Math.min(a, b)), r(Math.max(a, b))]).filter(([a, b]) => b > a);
  spans.sort((x, y) => x[0] - y[0]);
  let kind = state.label.kind;
  if (spans.length && !KEYWORD_KINDS.has(kind)) kind = positiveKind();
  state.label = { ...state.label, kind, keyword_spans: spans };
  state.selected = selectedSpan ? spans.findIndex((s) => s[0] === r(Math.min(...selectedSpan))) : -1;
  changed();
}

function addSpan(a, b) {
  const [lo, hi] = [Math.min(a, b), Math.max(a, b)];
  const kept = state.label.keyword_spans.filter(([s, e]) => e <= lo || s >= hi);  // a new span replaces overlaps
  setSpans([...kept, [lo, hi]], [lo, hi]);
}

function setEdge(which) {
  const spans = state.label.keyword_spans.map((s) => [...s]);
  let i = state.selected;
  if (i < 0) {
    const t = state.playhead;
    const fresh = which === "start" ? [t, Math.min(t + NEW_SPAN_S, state.duration)] : [Math.max(t - NEW_SPAN_S, 0), t];
    return addSpan(...fresh);
  }
  spans[i][which === "start" ? 0 : 1] = state.playhead;
  const edited = spans[i];
  const others = spans.filter((_, j) => j !== i).filter(([s, e]) => e <= Math.min(...edited) || s >= Math.max(...edited));
  setSpans([...others, edited], edited);
}

function deleteSpan() {
  const spans = state.label.keyword_spans;
  if (!spans.length) return;
  let i = state.selected;
  if (i < 0) i = spans.findIndex(([a, b]) => a <= state.playhead && state.playhead <= b);
  if (i < 0) i = spans.length - 1;
  setSpans(spans.filter((_, j) => j !== i), null);
}

function setKind(kind) {
  const path = state.item.path;
  let spans = state.label.keyword_spans;
  if (!KEYWORD_KINDS.has(kind) && spans.length) {
    state.stashedSpans.set(path, spans);   // a slip of the key can be undone by pressing k/t again
    spans = [];
  } else if (KEYWORD_KINDS.has(kind) && !spans.length && state.stashedSpans.has(path)) {
    spans = state.stashedSpans.get(path);
  }
  state.label = { ...state.label, kind, keyword_spans: spans };
  state.selected = -1;
  changed();
}

function changed() {
  const item = state.item;
  item.label = state.label;
  state.items[state.index] = item;
  renderLabel();
  renderList();
  save(item.path, { kind: state.label.kind, keyword_spans: state.label.keyword_spans });
}

// ---- saving ---------------------------------------------------------------------------------
function setStatus(kind, text) {
  const el = $("#save-status");
  el.dataset.state = kind;
  el.textContent = text;
}

function save(path, body) {
  state.pending += 1;
  setStatus("saving", "saving…");
  state.saveChain = state.saveChain.then(() => putUntilDone(path, body)).then((saved) => {
    state.pending -= 1;
    const it = state.items.find((x) => x.path === path);
    if (saved && it && state.pending === 0) {  // with edits still queued, the local label is newer
      it.label = saved;
      it.label_problem = "";
      if (state.item && state.item.path === path) {
        state.label = saved;
        showProblem();
        renderMeta();
      }
    }
    if (!saved) {
      state.refused = true;  // keep the refusal on screen until the next save goes through
    } else if (state.pending === 0) {
      state.refused = false;
      setStatus("saved", `saved ${new Date().toLocaleTimeString()}`);
    }
  });
}

async function putUntilDone(path, body) {
  for (;;) {
    try {
      const answer = await api("/api/label?" + q(path), {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      return answer.label;
    } catch (err) {
      if (err.status && err.status < 500) {  // refused: retrying cannot help; say so and go on
        setStatus("error", `NOT saved: ${err.message}`);
        return null;
      }
      setStatus("error", "NOT saved yet: server unreachable, retrying…");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

window.addEventListener("beforeunload", (event) => {
  if (state.pending > 0) { event.preventDefault(); event.returnValue = ""; }
});

// ---- drawing ----------------------------------------------------------------------------------
function sizeCanvases() {
  for (const c of [$("#wave"), $("#spec")]) {
    const width = Math.max(100, Math.round(c.clientWidth * (window.devicePixelRatio || 1)));
    if (c.width !== width) c.width = width;
  }
}

const timeToX = (t, canvas) => (state.duration ? (t / state.duration) * canvas.width : 0);
const xToTime = (x, canvas) => Math.min(Math.max(x / canvas.width, 0), 1) * state.duration;

function drawOverlay(ctx, canvas, light) {
  const suggestion = suggestedSpan();
  if (suggestion) {
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = light ? "#fff" : "#555";
    const [a, b] = suggestion.map((t) => timeToX(t, canvas));
    ctx.strokeRect(a, 1, b - a, canvas.height - 2);
    ctx.setLineDash([]);
  }
  const detectedAt = state.item.meta && state.item.meta.detected_at_s;  // the daemon's sidecar
  if (Number.isFinite(detectedAt)) {
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = "#1565c0";
    ctx.beginPath();
    ctx.moveTo(timeToX(detectedAt, canvas), 0);
    ctx.lineTo(timeToX(detectedAt, canvas), canvas.height);
    ctx.stroke();
    ctx.setLineDash([]);
  }
  state.label.keyword_spans.forEach(([s, e], i) => {
    const [a, b] = [timeToX(s, canvas), timeToX(e, canvas)];
    ctx.fillStyle = i === state.selected ? "rgba(46,125,50,0.45)" : "rgba(46,125,50,0.28)";
    ctx.fillRect(a, 0, b - a, canvas.height);
    ctx.fillStyle = "#2e7d32";
    ctx.fillRect(a, 0, 2, canvas.height);
    ctx.fillRect(b - 2, 0, 2, canvas.height);
  });
  if (state.drag && state.drag.moved) {
    const [a, b] = [state.drag.x0, state.drag.x1].sort((x, y) => x - y);
    ctx.fillStyle = "rgba(255,193,7,0.35)";
    ctx.fillRect(a * canvas.width, 0, (b - a) * canvas.width, canvas.height);
  }
  ctx.fillStyle = light ? "#fff" : "#d32f2f";
  ctx.fillRect(timeToX(state.playhead, canvas) - 1, 0, 2, canvas.height);
}

function draw() {
  if (!state.item || state.item.error) return;
  const wave = $("#wave"), spec = $("#spec");
  const w = wave.getContext("2d"), s = spec.getContext("2d");
  w.clearRect(0, 0, wave.width, wave.height);
  if (state.peaks) {
    const mid = wave.height / 2, n = state.peaks.min.length;
    w.fillStyle = "#37474f";
    for (let x = 0; x < wave.width; x++) {
      const i = Math.min(n - 1, Math.floor((x / wave.width) * n));
      const top = mid - state.peaks.max[i] * mid, bottom = mid - state.peaks.min[i] * mid;
      w.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }
  drawOverlay(w, wave, false);
  s.clearRect(0, 0, spec.width, spec.height);
  if (state.spec) s.drawImage(state.spec, 0, 0, spec.width, spec.height);
  drawOverlay(s, spec, true);
  $("#clock").textContent = `${state.playhead.toFixed(3)} / ${state.duration.toFixed(3)} s`;
}

// ---- pointer -------------------------------------------------------------------------------------
function fraction(event, canvas) {
  const rect = canvas.getBoundingClientRect();
  return Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1);
}

for (const canvas of [$("#wave"), $("#spec")]) {
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.peaks) return;
    canvas.setPointerCapture(event.pointerId);
    const f = fraction(event, canvas);
    state.drag = { x0: f, x1: f, px0: event.clientX, moved: false };
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.drag) return;
    state.drag.x1 = fraction(event, canvas);
    state.drag.moved = state.drag.moved || Math.abs(event.clientX - state.drag.px0) >= CLICK_PX;
    draw();
  });
  canvas.addEventListener("pointerup", (event) => {
    const drag = state.drag;
    if (!drag) return;
    state.drag = null;
    drag.x1 = fraction(event, canvas);
    if (drag.moved) {
      addSpan(drag.x0 * state.duration, drag.x1 * state.duration);
    } else {
      const t = drag.x1 * state.duration;
      state.selected = state.label.keyword_spans.findIndex(([a, b]) => a <= t && t <= b);
      seek(t);
      renderLabel();
    }
  });
}

// ---- playback -------------------------------------------------------------------------------------
function seek(t) {
  state.playhead = Math.min(Math.max(t, 0), state.duration);
  const player = $("#player");
  if (player.src) { try { player.currentTime = state.playhead; } catch (_) { /* not loaded yet */ } }
  draw();
}

function tick() {
  const player = $("#player");
  if (player.paused) return;
  state.playhead = player.currentTime;
  draw();
  requestAnimationFrame(tick);
}

function togglePlayback() {
  const player = $("#player");
  if (!player.src || (state.item && state.item.error)) return;
  if (player.paused) {
    if (state.playhead >= state.duration - 0.01) state.playhead = 0;
    player.currentTime = state.playhead;
    player.play().then(() => requestAnimationFrame(tick)).catch((err) => showProblem(`cannot play: ${err.message}`));
  } else {
    player.pause();
  }
}

function stopPlayback() {
  const player = $("#player");
  player.pause();
}

$("#player").addEventListener("ended", () => { state.playhead = state.duration; draw(); });
$("#play").addEventListener("click", (event) => { event.currentTarget.blur(); togglePlayback(); });
for (const b of document.querySelectorAll("#kinds button")) {
  b.addEventListener("click", () => { b.blur(); if (state.item && !state.item.error) setKind(b.dataset.kind); });
}

// ---- keyboard ---------------------------------------------------------------------------------------
function nextUnlabelled() {
  for (let step = 1; step <= state.items.length; step++) {
    const i = (state.index + step) % state.items.length;
    const it = state.items[i];
    if (!it.error && it.label.kind === "unlabeled") return select(i);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const editable = state.item && !state.item.error;
  const key = event.key;
  const actions = {
    ArrowDown: () => select(state.index + 1),
    PageDown: () => select(state.index + 1),
    ArrowUp: () => select(state.index - 1),
    PageUp: () => select(state.index - 1),
    Enter: nextUnlabelled,
    " ": togglePlayback,
    ArrowLeft: () => seek(state.playhead - (event.shiftKey ? FINE_NUDGE_S : NUDGE_S)),
    ArrowRight: () => seek(state.playhead + (event.shiftKey ? FINE_NUDGE_S : NUDGE_S)),
  };
  if (editable) {
    Object.assign(actions, {
      s: () => setEdge("start"),
      e: () => setEdge("end"),
      a: () => { const sug = suggestedSpan(); if (sug) addSpan(...sug); },
      Delete: deleteSpan,
      Backspace: deleteSpan,
    });
    for (const [k, kind] of Object.entries(KEY_KINDS)) actions[k] = () => setKind(kind);
  }
  const action = actions[key] || actions[key.length === 1 ? key.toLowerCase() : key];
  if (!action) return;
  event.preventDefault();
  action();
});

window.addEventListener("resize", () => { sizeCanvases(); draw(); });

loadList().catch((err) => {
  $("#empty").hidden = false;
  $("#empty-message").textContent = `Cannot reach the labelling server: ${err.message}`;
});
