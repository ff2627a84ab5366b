// brushwork studio: the page over brushwork serve's API, and in-browser inference with onnxruntime-web.
// Styles and methods (with their controls) come from the server's registries; nothing here names a method.

const $ = (id) => document.getElementById(id);
const state = {
  photo: null,        // {canvas, w, h, blob}
  style: null,        // a built-in style name
  painting: null,     // an uploaded painting File (replaces the built-in style)
  method: "auto",
  methods: [],
  styles: [],
  limits: {},
  browser: null,      // /api/browser
  ort: null,
  session: null,
  job: null,          // {id, events}
  resultBlob: null,
  history: [],
  maskPainted: false,
  webcam: null,
};

// ---------------------------------------------------------------- start-up
async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(await errorText(r));
  return r.json();
}

async function errorText(r) {
  try { return (await r.json()).error || r.statusText; } catch { return `${r.status} ${r.statusText}`; }
}

function showError(text) {
  const el = $("error");
  el.textContent = text || "";
  el.hidden = !text;
}

async function init() {
  const [styles, methods, browser] = await Promise.all([
    getJSON("/api/styles"), getJSON("/api/methods"), getJSON("/api/browser")]);
  state.styles = styles.styles;
  state.methods = methods.methods.filter((m) => m.available);
  state.defaultMethod = methods.default;
  state.limits = methods.limits;
  state.browser = browser;
  buildGallery();
  buildMethods();
  setupPhoto();
  setupMask();
  setupControls();
  setupBrowserMode();
  document.body.dataset.ready = "1";
}

// ---------------------------------------------------------------- gallery
function buildGallery() {
  const gallery = $("gallery");
  const second = $("style2");
  for (const s of state.styles) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tile";
    b.setAttribute("data-testid", `style-${s.name}`);
    b.setAttribute("role", "option");
    b.dataset.name = s.name;
    b.title = s.artist ? `${s.title}, ${s.artist}` : s.title;
    const img = document.createElement("img");
    img.alt = "";
    img.loading = "lazy";
    img.src = s.thumbnail;
    img.addEventListener("error", () => { img.remove(); b.classList.add("no-thumb"); });
    const cap = document.createElement("span");
    cap.className = "cap";
    cap.textContent = s.title;
    if (s.fast) {
      const fast = document.createElement("span");
      fast.className = "badge";
      fast.textContent = "fast";
      fast.title = "a trained net holds this style: a fraction of a second, also in your browser";
      b.append(fast);
    }
    b.append(img, cap);
    b.addEventListener("click", () => pickStyle(s.name));
    gallery.append(b);
    const o = document.createElement("option");
    o.value = s.name;
    o.textContent = s.title;
    second.append(o);
  }
  const firstFast = state.styles.find((s) => s.fast) || state.styles[0];
  if (firstFast) pickStyle(firstFast.name);
  if (state.styles.length > 1) second.value = state.styles[1].name;
}

function pickStyle(name) {
  state.style = name;
  state.painting = null;
  $("painting").value = "";
  $("painting-name").textContent = "";
  $("own").classList.remove("on");
  for (const t of document.querySelectorAll(".tile")) t.classList.toggle("on", t.dataset.name === name);
  refresh();
}

function styleInfo(name) { return state.styles.find((s) => s.name === name); }

// ---------------------------------------------------------------- methods
function buildMethods() {
  const box = $("methods");
  const auto = { name: "auto", summary: "Automatic: the fast net for its styles, else the best one-pass method" };
  for (const m of [auto, ...state.methods]) {
    const label = document.createElement("label");
    label.className = "method";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "method";
    input.value = m.name;
    input.checked = m.name === "auto";
    input.setAttribute("data-testid", `method-${m.name}`);
    input.addEventListener("change", () => { state.method = m.name; buildOptions(); refresh(); });
    const text = document.createElement("span");
    const title = document.createElement("strong");
    title.textContent = m.name === "auto" ? "Automatic" : m.name;
    const sub = document.createElement("small");
    sub.textContent = m.name === "auto" ? "the fast net for its styles, else the best one-pass method" : m.summary;
    if (m.one_pass === false) sub.textContent += " (live progress)";
    text.append(title, sub);
    label.append(input, text);
    label.dataset.method = m.name;
    box.append(label);
  }
  buildOptions();
}

function currentMethod() { return state.methods.find((m) => m.name === state.method) || null; }

function buildOptions() {
  const m = currentMethod();
  const box = $("options");
  box.replaceChildren();
  const opts = m ? m.options : [];
  $("more").hidden = !opts.length;
  for (const o of opts) {
    const row = document.createElement("label");
    row.className = "opt";
    row.title = o.help;
    const name = document.createElement("span");
    name.textContent = o.name.replaceAll("_", " ");
    let input;
    if (o.kind === "choice") {
      input = document.createElement("select");
      input.append(new Option("default", ""));
      for (const c of o.choices) input.append(new Option(c, c));
    } else if (o.kind === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.step = o.kind === "int" ? "1" : "any";
      input.placeholder = "default";
      if (o.name === "steps") { input.max = String(state.limits.max_steps); input.value = "100"; }
    }
    input.dataset.option = o.name;
    input.setAttribute("data-testid", `option-${o.name}`);
    const help = document.createElement("small");
    help.textContent = o.help;
    row.append(name, input, help);
    box.append(row);
  }
  if (m && m.one_pass === false) {
    $("strength").value = "0.5";
    $("size").value = "512";
  }
  updateOutputs();
}

// ---------------------------------------------------------------- photo in
function setupPhoto() {
  const drop = $("drop");
  $("photo").addEventListener("change", (e) => { if (e.target.files[0]) loadPhoto(e.target.files[0]); });
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const f = [...(e.dataTransfer?.files || [])].find((x) => x.type.startsWith("image/"));
    if (f) loadPhoto(f);
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((x) => x.type.startsWith("image/"));
    if (item) loadPhoto(item.getAsFile());
  });
  // a click on the photo paints the mask instead of opening the file picker
  drop.addEventListener("click", (e) => { if ($("mask-on").checked && e.target.id === "mask-canvas") e.preventDefault(); });
}

async function loadPhoto(file) {
  showError("");
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    showError("That file is not a picture this browser can open.");
    return;
  }
  const canvas = $("photo-canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  const mask = $("mask-canvas");
  mask.width = bitmap.width;
  mask.height = bitmap.height;
  clearMask();
  state.photo = { w: bitmap.width, h: bitmap.height, file };
  $("photo-box").hidden = false;
  $("drop-text").hidden = true;
  $("drop").classList.add("has-photo");
  $("mask-tools").hidden = false;
  const before = $("before");
  before.src = URL.createObjectURL(file);
  refresh();
}

// ---------------------------------------------------------------- mask brush
// The mask canvas holds what the user painted "keep photo" (opaque) over the photo; the request's mask is
// its inverse in luminance: white = styled, black = photo kept.
function setupMask() {
  const mask = $("mask-canvas");
  let drawing = false;
  let last = null;
  let erase = false;
  $("mask-on").addEventListener("change", (e) => {
    $("mask-brushes").hidden = !e.target.checked;
    $("drop").classList.toggle("masking", e.target.checked);
    mask.classList.toggle("active", e.target.checked);
  });
  $("brush-keep").addEventListener("click", () => { erase = false; toggleSeg("brush-keep"); });
  $("brush-style").addEventListener("click", () => { erase = true; toggleSeg("brush-style"); });
  $("mask-clear").addEventListener("click", clearMask);
  const point = (e) => {
    const r = mask.getBoundingClientRect();
    return [(e.clientX - r.left) * mask.width / r.width, (e.clientY - r.top) * mask.height / r.height];
  };
  const stroke = (p) => {
    const ctx = mask.getContext("2d");
    const r = mask.getBoundingClientRect();
    const width = Number($("brush-size").value) * mask.width / Math.max(1, r.width);
    ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
    ctx.strokeStyle = "rgba(40, 110, 200, 1)";
    ctx.lineWidth = width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...(last || p));
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
    state.maskPainted = true;
  };
  mask.addEventListener("pointerdown", (e) => {
    if (!$("mask-on").checked) return;
    e.preventDefault();
    drawing = true;
    last = null;
    mask.setPointerCapture(e.pointerId);
    stroke(point(e));
  });
  mask.addEventListener("pointermove", (e) => { if (drawing) stroke(point(e)); });
  const end = () => { drawing = false; last = null; };
  mask.addEventListener("pointerup", end);
  mask.addEventListener("pointercancel", end);
}

function toggleSeg(id) {
  for (const b of ["brush-keep", "brush-style"]) $(b).classList.toggle("on", b === id);
}

function clearMask() {
  const m = $("mask-canvas");
  m.getContext("2d").clearRect(0, 0, m.width, m.height);
  state.maskPainted = false;
}

function maskUsed() { return $("mask-on").checked && state.maskPainted; }

/** The mask at (w, h) as 0..1 "styled" values (1 = styled), or null. */
function maskValues(w, h) {
  if (!maskUsed()) return null;
  const c = new OffscreenCanvas(w, h);
  const ctx = c.getContext("2d");
  ctx.drawImage($("mask-canvas"), 0, 0, w, h);
  const a = ctx.getImageData(0, 0, w, h).data;
  const out = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) out[i] = 1 - a[i * 4 + 3] / 255;
  return out;
}

async function maskBlob() {
  const m = $("mask-canvas");
  const v = maskValues(m.width, m.height);
  const c = new OffscreenCanvas(m.width, m.height);
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(m.width, m.height);
  for (let i = 0; i < v.length; i++) {
    const g = Math.round(v[i] * 255);
    img.data[i * 4] = g; img.data[i * 4 + 1] = g; img.data[i * 4 + 2] = g; img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return c.convertToBlob({ type: "image/png" });
}

// ---------------------------------------------------------------- controls
function setupControls() {
  for (const id of ["strength", "mix"]) $(id).addEventListener("input", updateOutputs);
  $("blend-on").addEventListener("change", (e) => { $("blend-row").hidden = !e.target.checked; refresh(); });
  $("style2").addEventListener("change", refresh);
  $("painting").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (!f) return;
    state.painting = f;
    state.style = null;
    for (const t of document.querySelectorAll(".tile")) t.classList.remove("on");
    $("own").classList.add("on");
    $("painting-name").textContent = f.name;
    refresh();
  });
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancelJob);
  $("split").addEventListener("input", updateSplit);
  $("dl-png").addEventListener("click", () => download("png"));
  $("dl-jpg").addEventListener("click", () => download("jpeg"));
  updateOutputs();
}

function updateOutputs() {
  $("strength-out").textContent = `${Math.round($("strength").value * 100)}%`;
  $("mix-out").textContent = `${Math.round($("mix").value * 100)}%`;
}

function styleChoice() {
  // [(name, weight)] of built-in styles; the painting upload is separate
  const blend = $("blend-on").checked;
  const mix = Number($("mix").value);
  const out = [];
  if (state.style) out.push([state.style, blend ? 1 - mix : 1]);
  if (blend && $("style2").value && $("style2").value !== state.style) out.push([$("style2").value, mix]);
  return out;
}

function refresh() {
  const local = $("in-browser").checked;
  const m = currentMethod();
  let why = "";
  if (!state.photo) why = "Add a photo first.";
  else if (!state.style && !state.painting) why = "Pick a style.";
  else if (local) {
    const names = state.browser.style_names || [];
    const bad = state.painting ? "your own painting" : styleChoice().map(([n]) => n).find((n) => !names.includes(n));
    if (bad) why = `In the browser the fast net paints its ${names.length} styles, not ${styleInfo(bad)?.title || bad}.`;
  } else if (m && m.needs_model && (state.painting || styleChoice().some(([n]) => !styleInfo(n)?.fast))) {
    why = `${m.name} paints the fast net's styles only.`;
  } else if (m && !m.needs_model && styleChoice().some(([n]) => !styleInfo(n)?.preset)) {
    why = `${m.name} needs a painting or a preset.`;
  }
  $("run").disabled = Boolean(why) || Boolean(state.job);
  $("run").title = why;
  $("run").textContent = local ? "Paint it here" : m && m.one_pass === false ? "Start painting" : "Paint it";
  for (const label of document.querySelectorAll(".method")) label.classList.toggle("off", local && label.dataset.method !== "auto");
  $("webcam").disabled = !local || !state.session && !state.browser?.available;
}

// ---------------------------------------------------------------- running on the server
async function run() {
  showError("");
  if ($("in-browser").checked) return runLocal();
  const m = currentMethod();
  const fd = new FormData();
  fd.append("photo", state.photo.file);
  for (const [name, w] of styleChoice()) fd.append("style", `${name}:${w}`);
  if (state.painting) {
    fd.append("painting", state.painting);
    const mix = Number($("mix").value);
    fd.append("painting_weight", String($("blend-on").checked && state.style === null ? 1 - mix : 1));
  }
  if (state.method !== "auto") fd.append("method", state.method);
  fd.append("strength", $("strength").value);
  fd.append("size", String(Math.min(Number($("size").value), state.limits.max_size || 2048)));
  if ($("keep-colours").checked) fd.append("preserve_color", "luminance");
  if (maskUsed()) fd.append("mask", await maskBlob(), "mask.png");
  for (const el of document.querySelectorAll("[data-option]")) {
    const v = el.type === "checkbox" ? (el.checked ? "true" : "") : el.value;
    if (v !== "") fd.append(el.dataset.option, v);
  }
  document.body.dataset.sent = [...fd.entries()].map(([k, v]) => (typeof v === "string" ? `${k}=${v}` : k)).join("&");
  if (m && m.one_pass === false) return runJob(fd);
  busy(true, "Painting…");
  const t0 = performance.now();
  try {
    const r = await fetch("/api/stylize", { method: "POST", body: fd });
    if (!r.ok) throw new Error(await errorText(r));
    const blob = await r.blob();
    const secs = Number(r.headers.get("X-Brushwork-Seconds") || 0);
    showResult(blob, `${r.headers.get("X-Brushwork-Method")}, ${r.headers.get("X-Brushwork-Size")}, ` +
      `${secs.toFixed(2)} s on the server (${((performance.now() - t0) / 1000).toFixed(2)} s in all)`);
  } catch (e) {
    showError(e.message);
  } finally {
    busy(false);
  }
}

function busy(on, text = "") {
  $("progress").hidden = !on;
  $("progress-text").textContent = text;
  $("meter-fill").style.width = on ? "0%" : "0%";
  $("meter-fill").classList.toggle("indeterminate", on && !state.job);
  $("cancel").hidden = !state.job;
  $("run").disabled = on;
}

async function runJob(fd) {
  let r;
  try {
    r = await fetch("/api/jobs", { method: "POST", body: fd });
    if (!r.ok) throw new Error(await errorText(r));
  } catch (e) {
    showError(e.message);
    return;
  }
  const info = await r.json();
  const events = new EventSource(info.events);
  state.job = { id: info.id, events };
  busy(true, `Queued (${info.total} steps)…`);
  const preview = $("preview");
  events.addEventListener("progress", (e) => {
    const s = JSON.parse(e.data);
    $("meter-fill").style.width = `${Math.round(100 * s.progress)}%`;
    $("progress-text").textContent = s.state === "queued" ? "Waiting for the worker…"
      : `Step ${s.step} of ${s.total}` + (s.size ? ` at ${s.size[0]}×${s.size[1]}` : "") + ` · ${s.seconds.toFixed(0)} s`;
    if (s.preview) {
      preview.src = s.preview;
      preview.hidden = false;
      $("compare").classList.remove("empty");
      $("placeholder").hidden = true;
    }
  });
  events.addEventListener("end", async (e) => {
    const s = JSON.parse(e.data);
    events.close();
    state.job = null;
    busy(false);
    preview.hidden = true;
    if (s.state === "done") {
      const res = await fetch(s.result);
      showResult(await res.blob(), `${info.method}, ${s.size[0]}×${s.size[1]}, ${s.step} steps, ${s.seconds.toFixed(0)} s`);
    } else {
      showError(s.state === "cancelled" ? "Stopped." : s.error || "The job failed.");
    }
    refresh();
  });
  events.addEventListener("error", () => {
    if (state.job && events.readyState === EventSource.CLOSED) { state.job = null; busy(false); showError("Lost the connection to the server."); }
  });
}

async function cancelJob() {
  if (!state.job) return;
  await fetch(`/api/jobs/${state.job.id}`, { method: "DELETE" });
}

// ---------------------------------------------------------------- result, compare, download, history
function showResult(blob, info, addToHistory = true) {
  state.resultBlob = blob;
  const url = URL.createObjectURL(blob);
  const img = $("result");
  img.hidden = false;
  $("webcam-out").hidden = true;
  img.src = url;
  $("compare").classList.remove("empty");
  $("placeholder").hidden = true;
  $("before").hidden = !state.photo;
  $("split").hidden = !state.photo;
  $("split").value = "100";
  updateSplit();
  $("result-info").textContent = info;
  $("dl-png").disabled = $("dl-jpg").disabled = false;
  if (addToHistory) {
    state.history.unshift({ blob, url, info, photo: $("before").src });
    state.history = state.history.slice(0, 6);
    renderHistory();
  }
}

function renderHistory() {
  const box = $("history");
  box.replaceChildren();
  $("history-title").hidden = state.history.length < 1;
  for (const h of state.history) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "past";
    b.title = h.info;
    const img = document.createElement("img");
    img.src = h.url;
    img.alt = "";
    b.append(img);
    b.addEventListener("click", () => { $("before").src = h.photo; showResult(h.blob, h.info, false); });
    box.append(b);
  }
}

function updateSplit() {
  const v = Number($("split").value);
  $("result").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("frame").style.setProperty("--split", `${v}%`);
}

async function download(kind) {
  if (!state.resultBlob) return;
  let blob = state.resultBlob;
  if (kind === "jpeg" || blob.type !== "image/png") {
    const bmp = await createImageBitmap(blob);
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    c.getContext("2d").drawImage(bmp, 0, 0);
    blob = await c.convertToBlob(kind === "jpeg" ? { type: "image/jpeg", quality: 0.92 } : { type: "image/png" });
  }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `brushwork_${(state.style || "painting")}.${kind === "jpeg" ? "jpg" : "png"}`;
  document.body.append(a);
  a.click();
  a.remove();
}

// ---------------------------------------------------------------- in the browser (onnxruntime-web)
function setupBrowserMode() {
  const sw = $("in-browser");
  const note = $("browser-note");
  if (!state.browser.available) {
    sw.disabled = true;
    sw.closest("label").title = state.browser.reason;
    note.textContent = `In-browser mode is off: ${state.browser.reason}.`;
    note.hidden = false;
  }
  sw.addEventListener("change", async () => {
    document.body.classList.toggle("local", sw.checked);
    if (sw.checked && !state.session) {
      note.hidden = false;
      note.textContent = "Loading the painter into your browser…";
      try {
        await loadSession();
        note.textContent = `Running in your browser (${state.backend}): nothing is uploaded. The fast net's ` +
          `${state.browser.style_names.length} styles, strength, blend, colours and mask work here.`;
      } catch (e) {
        note.textContent = `Could not start in-browser mode: ${e.message}`;
        sw.checked = false;
        document.body.classList.remove("local");
      }
    } else if (!sw.checked) {
      stopWebcam();
      note.hidden = true;
    } else {
      note.hidden = false;
    }
    refresh();
  });
  $("webcam").addEventListener("click", () => (state.webcam ? stopWebcam() : startWebcam()));
}

async function loadSession() {
  const base = state.browser.runtime;
  let gpu = false;
  try { gpu = Boolean(navigator.gpu && await navigator.gpu.requestAdapter()); } catch { gpu = false; }
  const ort = await import(`${base}${gpu ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs"}`);
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.proxy = !gpu;  // inference in a worker: the page stays responsive while it paints
  ort.env.logLevel = "error";
  const model = await (await fetch(state.browser.model)).arrayBuffer();
  const providers = gpu ? ["webgpu", "wasm"] : ["wasm"];
  state.session = await ort.InferenceSession.create(model, { executionProviders: providers, graphOptimizationLevel: "all" });
  state.ort = ort;
  state.backend = `${gpu ? "WebGPU" : "WebAssembly"}, ${ort.env.wasm.numThreads} thread(s)`;
  document.body.dataset.backend = state.backend;
}

function styleWeights() {
  const names = state.browser.style_names;
  const w = new Float32Array(names.length);
  for (const [n, v] of styleChoice()) w[names.indexOf(n)] += v;
  const sum = w.reduce((a, b) => a + b, 0);
  for (let i = 0; i < w.length; i++) w[i] /= sum;
  return w;
}

/** Longest side `size` (never enlarged), as the server's fit_size does. */
function fit(w, h, size) {
  const s = size / Math.max(w, h);
  if (s >= 1) return [w, h];
  return [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
}

// YIQ as brushwork.image.color: the stylized luminance with the photo's chroma
const YIQ = [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]];
const IYIQ = invert3(YIQ);
function invert3(m) {
  const [a, b, c] = m[0], [d, e, f] = m[1], [g, h, i] = m[2];
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [[A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det]];
}

/** One pass of the ONNX net on RGBA pixels (w, h): the same pre/post-processing as brushwork's
 * FeedForwardStylizer on onnxruntime (reflection pad to a multiple of 4, RGB 0..1, crop, clamp,
 * luminance, strength and mask blends in float), so its picture matches the server's. */
async function stylizePixels(rgba, w, h, { strength = 1, keepColours = false, mask = null } = {}) {
  const pm = state.browser.pad_multiple || 4;
  const H = h + ((pm - (h % pm)) % pm), W = w + ((pm - (w % pm)) % pm);
  const plane = H * W;
  const x = new Float32Array(3 * plane);
  const refl = (i, n) => (i < n ? i : 2 * (n - 1) - i);
  for (let yy = 0; yy < H; yy++) {
    const sy = refl(yy, h);
    for (let xx = 0; xx < W; xx++) {
      const s = (sy * w + refl(xx, w)) * 4, d = yy * W + xx;
      x[d] = rgba[s] / 255; x[plane + d] = rgba[s + 1] / 255; x[2 * plane + d] = rgba[s + 2] / 255;
    }
  }
  const ort = state.ort;
  const feeds = {
    [state.browser.inputs[0]]: new ort.Tensor("float32", x, [1, 3, H, W]),
    [state.browser.inputs[1]]: new ort.Tensor("float32", styleWeights(), [1, state.browser.style_names.length]),
  };
  const out = (await state.session.run(feeds))[state.browser.output];
  const y = out.data;
  const feathered = mask ? feather(mask, w, h, Math.max(1, Math.round(Math.max(w, h) / 256))) : null;
  const px = new Uint8ClampedArray(w * h * 4);
  const clamp = (v) => (v < 0 ? 0 : v > 1 ? 1 : v);
  for (let yy = 0; yy < h; yy++) {
    for (let xx = 0; xx < w; xx++) {
      const o = yy * W + xx, p = yy * w + xx, s = p * 4;
      let r = clamp(y[o]), g = clamp(y[plane + o]), b = clamp(y[2 * plane + o]);
      const cr = rgba[s] / 255, cg = rgba[s + 1] / 255, cb = rgba[s + 2] / 255;
      if (keepColours) {
        const Y = YIQ[0][0] * r + YIQ[0][1] * g + YIQ[0][2] * b;
        const I = YIQ[1][0] * cr + YIQ[1][1] * cg + YIQ[1][2] * cb;
        const Q = YIQ[2][0] * cr + YIQ[2][1] * cg + YIQ[2][2] * cb;
        r = clamp(IYIQ[0][0] * Y + IYIQ[0][1] * I + IYIQ[0][2] * Q);
        g = clamp(IYIQ[1][0] * Y + IYIQ[1][1] * I + IYIQ[1][2] * Q);
        b = clamp(IYIQ[2][0] * Y + IYIQ[2][1] * I + IYIQ[2][2] * Q);
      }
      if (strength < 1) {
        r = strength * r + (1 - strength) * cr; g = strength * g + (1 - strength) * cg; b = strength * b + (1 - strength) * cb;
      }
      if (feathered) {
        const k = feathered[p];
        r = k * r + (1 - k) * cr; g = k * g + (1 - k) * cg; b = k * b + (1 - k) * cb;
      }
      px[s] = Math.floor(r * 255 + 0.5); px[s + 1] = Math.floor(g * 255 + 0.5); px[s + 2] = Math.floor(b * 255 + 0.5);
      px[s + 3] = 255;
    }
  }
  return new ImageData(px, w, h);
}

/** A box blur with replicated edges (brushwork.image.masks.feather). */
function feather(m, w, h, r) {
  const tmp = new Float32Array(w * h), out = new Float32Array(w * h), k = 2 * r + 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let d = -r; d <= r; d++) s += m[y * w + Math.min(w - 1, Math.max(0, x + d))];
      tmp[y * w + x] = s / k;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let d = -r; d <= r; d++) s += tmp[Math.min(h - 1, Math.max(0, y + d)) * w + x];
      out[y * w + x] = s / k;
    }
  }
  return out;
}

async function runLocal() {
  busy(true, "Painting in your browser…");
  try {
    if (!state.session) await loadSession();
    const src = $("photo-canvas");
    const [w, h] = fit(src.width, src.height, Number($("size").value));
    const c = new OffscreenCanvas(w, h);
    const ctx = c.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(src, 0, 0, w, h);
    const t0 = performance.now();
    const out = await stylizePixels(ctx.getImageData(0, 0, w, h).data, w, h, {
      strength: Number($("strength").value), keepColours: $("keep-colours").checked, mask: maskValues(w, h) });
    const secs = (performance.now() - t0) / 1000;
    ctx.putImageData(out, 0, 0);
    const blob = await c.convertToBlob({ type: "image/png" });
    showResult(blob, `in your browser (${state.backend}), ${w}×${h}, ${secs.toFixed(2)} s`);
    document.body.dataset.localSeconds = String(secs);
  } catch (e) {
    showError(`In-browser run failed: ${e.message}`);
  } finally {
    busy(false);
    refresh();
  }
}

// ---------------------------------------------------------------- webcam (in the browser)
async function startWebcam() {
  showError("");
  try {
    if (!state.session) await loadSession();
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
    const video = $("cam");
    video.srcObject = stream;
    await video.play();
    state.webcam = { stream, frames: 0, t0: performance.now(), running: true };
    $("webcam").textContent = "Stop webcam";
    $("webcam").classList.add("on");
    $("result").hidden = true;
    $("before").hidden = true;
    $("split").hidden = true;
    $("webcam-out").hidden = false;
    $("compare").classList.remove("empty");
    $("placeholder").hidden = true;
    webcamLoop();
  } catch (e) {
    showError(`Webcam: ${e.message}`);
    stopWebcam();
  }
}

async function webcamLoop() {
  const cam = state.webcam;
  const video = $("cam");
  const out = $("webcam-out");
  const [w, h] = fit(video.videoWidth || 320, video.videoHeight || 240, 256);
  out.width = w;
  out.height = h;
  const grab = new OffscreenCanvas(w, h);
  const g = grab.getContext("2d", { willReadFrequently: true });
  const o = out.getContext("2d");
  const times = [];
  while (cam.running) {
    await new Promise((r) => requestAnimationFrame(r));  // let the page (and a new camera frame) through
    g.drawImage(video, 0, 0, w, h);
    const frame = await stylizePixels(g.getImageData(0, 0, w, h).data, w, h,
      { strength: Number($("strength").value), keepColours: $("keep-colours").checked });
    if (!cam.running) break;
    o.putImageData(frame, 0, 0);
    const now = performance.now();
    times.push(now);
    while (times.length > 1 && now - times[0] > 2000) times.shift();
    cam.frames += 1;
    const fps = times.length > 1 ? (times.length - 1) * 1000 / (now - times[0]) : 0;
    $("fps").textContent = `${fps.toFixed(1)} fps · ${w}×${h}`;
    document.body.dataset.fps = fps.toFixed(2);
    document.body.dataset.frames = String(cam.frames);
  }
}

function stopWebcam() {
  const cam = state.webcam;
  if (!cam) return;
  cam.running = false;
  for (const t of cam.stream?.getTracks() || []) t.stop();
  state.webcam = null;
  $("webcam").textContent = "Webcam";
  $("webcam").classList.remove("on");
  $("fps").textContent = "";
}

init().catch((e) => showError(`Could not load the studio: ${e.message}`));
