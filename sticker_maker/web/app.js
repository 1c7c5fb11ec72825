// sticker-maker in the browser: the key, the two ways to make stickers, and the results.

import { refreshCredits, refreshRecent } from "./account.js";
import { ApiError, api, describeFailure, keyPrefix, keyStore } from "./api.js";
import { renderBatch, stickersOf } from "./cards.js";
import { StatusPanel, TERMINAL, watchJob } from "./jobs.js";
import { Pack } from "./pack.js";
import { PACK_FIELDS, fillPackPresets, packActions, packBody, referenceFields } from "./packs.js";
import {
  $,
  announce,
  clearError,
  clearFieldErrors,
  setFieldError,
  showAlert,
  showError,
  toast,
} from "./ui.js";

const PREFS = "sticker-maker.prefs";
const SIZES = [
  [1024, 1024, "Square"],
  [832, 1216, "Portrait"],
  [1216, 832, "Landscape"],
  [768, 768, "Square, smaller"],
  [512, 512, "Small"],
];
const GENERATE_FIELDS = {
  prompt: "prompt",
  negative_prompt: "negative",
  preset: "preset",
  samples: "samples",
  seed: "seed",
  upscale: "upscale",
  "finishing.border": "border",
  "finishing.shadow": "shadow",
  "finishing.remover": "remover",
  "finishing.holes": "holes",
  image: "reference-file",
  ip_adapter_weight: "likeness",
};
const UPLOAD_FIELDS = {
  image: "upload-file",
  border: "upload-border",
  shadow: "upload-shadow",
  remover: "upload-remover",
  holes: "upload-holes",
};

const status = new StatusPanel();
const pack = new Pack();
let presets = [];
let current = null; // { job, controller } of the job being watched
let cooldown = 0;

// ---- preferences (the choices, never the prompt) ----

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS) || "{}");
  } catch {
    return {};
  }
}

function savePrefs() {
  const prefs = {
    preset: $("preset").value,
    samples: document.querySelector("input[name='samples']:checked")?.value,
    border: $("border").checked,
    upscale: $("upscale").checked,
  };
  try {
    localStorage.setItem(PREFS, JSON.stringify(prefs));
  } catch {
    // private mode: nothing to remember
  }
}

// ---- the key ----

function showKeyState() {
  const key = keyStore.get();
  $("key-form").hidden = Boolean(key);
  $("account").hidden = !key;
  $("key-prefix").textContent = key ? keyPrefix(key) : "";
}

function askForKey(message) {
  $("key-form").hidden = false;
  if (message) setFieldError("api-key", message);
  $("api-key").focus();
}

async function saveKey(event) {
  event.preventDefault();
  clearFieldErrors();
  const value = $("api-key").value.trim();
  if (!value) {
    askForKey("Paste your API key first (it starts with sm_).");
    return;
  }
  try {
    await api("v1/jobs?limit=1", { key: value });
  } catch (error) {
    if (error.status === 401) {
      askForKey("That key wasn't accepted. Check that you pasted all of it.");
      return;
    }
    // anything else (service busy, offline): keep the key, the next request will tell
  }
  keyStore.set(value);
  $("api-key").value = "";
  clearError();
  showKeyState();
  toast("Key saved in this browser");
  refresh();
  $("prompt").focus();
}

function forgetKey() {
  keyStore.forget();
  showKeyState();
  $("credits").textContent = "—";
  refreshRecent(openJob);
  toast("Key forgotten on this browser");
  $("api-key").focus();
}

function refresh() {
  refreshCredits();
  refreshRecent(openJob);
}

// ---- tabs ----

function setupTabs() {
  const tabs = [$("tab-generate"), $("tab-upload"), $("tab-pack")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    clearError();
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const next = {
        ArrowRight: tabs[(i + 1) % tabs.length],
        ArrowLeft: tabs[(i - 1 + tabs.length) % tabs.length],
        Home: tabs[0],
        End: tabs.at(-1),
      }[event.key];
      if (next) {
        event.preventDefault();
        select(next);
        next.focus();
      }
    });
  }
}

// ---- presets and sizes ----

async function loadPresets(prefs) {
  try {
    ({ presets } = await api("v1/presets"));
  } catch {
    presets = [{ name: "sticker-maker", width: 1024, height: 1024 }];
  }
  const select = $("preset");
  select.replaceChildren(...presets.map((p) => new Option(p.name, p.name)));
  const wanted = [prefs.preset, "sticker-maker"].find((n) => presets.some((p) => p.name === n));
  if (wanted) select.value = wanted;
  fillSizes();
  fillPackPresets(presets);
}

function fillSizes() {
  const preset = presets.find((p) => p.name === $("preset").value) || {};
  // a style that cannot upscale (the server says so) offers no Upscale
  const upscale = $("upscale");
  upscale.disabled = preset.upscale === false;
  if (upscale.disabled) upscale.checked = false;
  $("upscale-unavailable").hidden = !upscale.disabled;
  const [w, h] = [preset.width || 1024, preset.height || 1024];
  const select = $("size");
  const previous = select.value;
  const options = [new Option(`${w} × ${h} (style default)`, "default")];
  for (const [sw, sh, label] of SIZES) {
    if (sw !== w || sh !== h) options.push(new Option(`${label}, ${sw} × ${sh}`, `${sw}x${sh}`));
  }
  options.push(new Option("Custom…", "custom"));
  select.replaceChildren(...options);
  select.value = options.some((o) => o.value === previous) ? previous : "default";
  $("custom-size").hidden = select.value !== "custom";
}

// ---- making stickers ----

function generateBody() {
  const body = {
    prompt: $("prompt").value,
    preset: $("preset").value,
    samples: Number(document.querySelector("input[name='samples']:checked").value),
  };
  const size = $("size").value;
  if (size === "custom") {
    for (const side of ["width", "height"]) {
      const value = $(side).value.trim();
      if (value !== "") body[side] = Number(value);
    }
  } else if (size !== "default") {
    [body.width, body.height] = size.split("x").map(Number);
  }
  if ($("seed").value.trim() !== "") body.seed = Number($("seed").value);
  if ($("upscale").checked) body.upscale = true;
  const negative = $("negative").value.trim();
  if (negative) body.negative_prompt = negative;
  // a die cut: a white border in proportion to the size (null), or the bare cut-out (0)
  body.finishing = { border: $("border").checked ? null : 0 };
  if ($("shadow").checked) body.finishing.shadow = true;
  if ($("remover").value) body.finishing.remover = $("remover").value;
  if ($("holes").value !== "auto") body.finishing.holes = $("holes").value;
  return body;
}

function generateFieldMap() {
  const custom = $("size").value === "custom";
  return { ...GENERATE_FIELDS, width: custom ? "width" : "size", height: custom ? "height" : "size" };
}

async function onGenerate(event) {
  event.preventDefault();
  if (isBusy()) return;
  clearError();
  if (!$("prompt").value.trim()) {
    setFieldError("prompt", "Describe the sticker you want first.");
    $("prompt").focus();
    return;
  }
  savePrefs();
  const body = { ...generateBody(), ...(await referenceFields("reference-file", "likeness")) };
  await runJob(() => api("v1/jobs", { method: "POST", json: body }), generateFieldMap(), {
    tiles: body.samples,
  });
}

async function onUpload(event) {
  event.preventDefault();
  if (isBusy()) return;
  clearError();
  const kind = event.submitter?.value === "split" ? "split" : "cutout";
  const file = $("upload-file").files[0];
  if (!file) {
    setFieldError("upload-file", "Choose a picture first.");
    $("upload-file").focus();
    return;
  }
  const form = new FormData();
  form.append("image", file, file.name);
  if (!$("upload-border").checked) form.append("border", "0");
  if ($("upload-shadow").checked) form.append("shadow", "true");
  if (kind === "cutout" && $("upload-remover").value) form.append("remover", $("upload-remover").value);
  if (kind === "cutout" && $("upload-holes").value !== "auto") form.append("holes", $("upload-holes").value);
  await runJob(() => api(`v1/${kind}s`, { method: "POST", form }), UPLOAD_FIELDS, {
    notFound: "This server doesn't take uploads yet (it runs an older sticker-maker).",
  });
}

async function onPack(event) {
  event.preventDefault();
  if (isBusy()) return;
  clearError();
  if (!$("character").value.trim()) {
    setFieldError("character", "Describe who is in the pack first.");
    $("character").focus();
    return;
  }
  const body = await packBody();
  const tiles = body.expressions ? body.expressions.length : body.count;
  await runJob(() => api("v1/packs", { method: "POST", json: body }), PACK_FIELDS, {
    tiles: Math.min(tiles || 1, 4),
    notFound: "This server doesn't make packs yet (it runs an older sticker-maker).",
  });
}

/** Split a finished sheet into single stickers: its original picture goes to POST /v1/splits. */
async function splitOutput(job, output) {
  if (isBusy()) {
    toast("Wait for the current job to finish first.", { error: true });
    return;
  }
  clearError();
  const source =
    (job.output || []).find((o) => o.kind === "image" && o.index === output.index) || output;
  status.start("Sending the sheet…", 3);
  let blob;
  try {
    const response = await fetch(source.url);
    if (!response.ok) throw new ApiError({ status: response.status, code: "not_found" });
    blob = await response.blob();
  } catch (error) {
    status.done();
    showAlert("That sticker's file has expired, so it can't be split any more.");
    return;
  }
  const form = new FormData();
  form.append("image", blob, "sheet.png");
  if (!$("border").checked) form.append("border", "0");
  if ($("shadow").checked) form.append("shadow", "true");
  await runJob(() => api("v1/splits", { method: "POST", form }), {}, {
    notFound: "This server can't split sheets yet (it runs an older sticker-maker).",
  });
}

function isBusy() {
  return current !== null || cooldown > 0;
}

function setBusy(on) {
  for (const id of ["generate", "cut-out", "split-upload", "make-pack"]) {
    const button = $(id);
    button.setAttribute("aria-disabled", String(on));
  }
  $("generate").textContent = on ? "Making your stickers…" : "Generate";
}

/** After a 429/503: the buttons count down the wait the server asked for. */
function startCooldown(seconds) {
  cooldown = seconds;
  const tick = () => {
    const buttons = ["generate", "cut-out", "split-upload", "make-pack"].map($);
    if (cooldown <= 0) {
      for (const b of buttons) b.setAttribute("aria-disabled", "false");
      $("generate").textContent = "Generate";
      $("cut-out").textContent = "Cut out sticker";
      return;
    }
    for (const b of buttons) b.setAttribute("aria-disabled", "true");
    $("generate").textContent = `Try again in ${cooldown} s`;
    $("cut-out").textContent = `Try again in ${cooldown} s`;
    cooldown -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

async function runJob(submit, fieldMap, { notFound, tiles = 1 } = {}) {
  if (!keyStore.get()) {
    showAlert("Enter your API key first.", "It is stored only in this browser.");
    askForKey();
    return;
  }
  setBusy(true);
  status.start("Sending…", tiles);
  let job;
  try {
    job = await submit();
  } catch (error) {
    status.done();
    setBusy(false);
    reportError(error, fieldMap, notFound);
    return;
  }
  const controller = new AbortController();
  current = { job, controller };
  status.show(job);
  try {
    job = await watchJob(job, {
      signal: controller.signal,
      onUpdate: (j) => {
        current.job = j;
        status.show(j);
      },
      onTrouble: (error) =>
        status.trouble(
          error.status === 0 ? "Connection lost — retrying…" : "The service is busy — retrying…",
        ),
    });
  } catch (error) {
    status.done();
    if (error.name !== "AbortError") reportError(error, fieldMap);
    return;
  } finally {
    current = null;
    setBusy(false);
  }
  status.done();
  finished(job);
  refresh();
}

function reportError(error, fieldMap, notFound) {
  if (error.status === 404 && notFound && /not found/i.test(error.message)) {
    showAlert(notFound);
    return;
  }
  const { title } = showError(error, fieldMap);
  announce(title);
  if (error.status === 401) askForKey();
  if ((error.status === 429 || error.status === 503) && error.retryAfter) {
    startCooldown(error.retryAfter);
  }
}

function finished(job) {
  if (job.status === "succeeded") {
    const batch = showBatch(job);
    const n = stickersOf(job).length;
    announce(`Done: ${n} ${n === 1 ? "sticker is" : "stickers are"} ready.`);
    batch.focus({ preventScroll: true });
    batch.scrollIntoView({ behavior: "smooth", block: "nearest" });
  } else if (job.status === "failed") {
    const { title, detail } = describeFailure(job);
    showAlert(title, detail);
    announce(title);
  } else {
    toast("Canceled");
  }
}

/** Put a finished job's stickers at the top of the results (once). */
function showBatch(job) {
  const existing = document.querySelector(`.batch[data-job="${CSS.escape(job.id)}"]`);
  if (existing) return existing;
  const batch = renderBatch(job, {
    reuseSeed: (seed) => {
      $("tab-generate").click();
      $("seed").value = String(seed);
      $("seed").focus();
      toast(`Seed ${seed} set — change the prompt and generate again`);
    },
    split: splitOutput,
    pack,
  });
  if (job.kind === "pack") batch.append(packActions(job));
  $("batches").prepend(batch);
  $("empty").hidden = true;
  return batch;
}

/** From the recent list: show a finished job, follow an unfinished one. */
async function openJob(job) {
  if (job.status === "succeeded") {
    const batch = showBatch(job);
    batch.focus({ preventScroll: true });
    batch.scrollIntoView({ behavior: "smooth", block: "start" });
  } else if (!TERMINAL.has(job.status) && !isBusy()) {
    await runJob(async () => job, {}, { tiles: job.input?.samples || 1 });
  } else if (job.status === "failed") {
    const { title, detail } = describeFailure(job);
    showAlert(title === "Making the sticker failed." ? "That job failed." : title, detail);
  } else {
    toast(job.status === "canceled" ? "That job was canceled." : "That job is still running.");
  }
}

async function cancelCurrent() {
  if (!current) return;
  const button = $("cancel-job");
  button.disabled = true;
  status.trouble("Canceling…");
  try {
    await api(`v1/jobs/${encodeURIComponent(current.job.id)}/cancel`, { method: "POST" });
  } catch (error) {
    button.disabled = false;
    showError(error);
  }
}

// ---- the upload picker ----

function setupUpload() {
  const input = $("upload-file");
  const zone = $("dropzone");
  const preview = $("upload-preview");
  const show = () => {
    const file = input.files[0];
    clearFieldErrors();
    if (!file) return;
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("upload-name").textContent = `${file.name} — choose another`;
    zone.classList.add("has-file");
  };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("is-over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("is-over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-over");
    if (event.dataTransfer?.files.length) {
      input.files = event.dataTransfer.files;
      show();
    }
  });
}

// ---- start ----

function main() {
  const prefs = loadPrefs();
  if (prefs.samples) {
    const radio = $(`samples-${prefs.samples}`);
    if (radio) radio.checked = true;
  }
  if (typeof prefs.border === "boolean") $("border").checked = prefs.border;
  if (typeof prefs.upscale === "boolean") $("upscale").checked = prefs.upscale;

  showKeyState();
  setupTabs();
  setupUpload();
  loadPresets(prefs);

  $("key-form").addEventListener("submit", saveKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("generate-form").addEventListener("submit", onGenerate);
  $("upload-form").addEventListener("submit", onUpload);
  $("pack-form").addEventListener("submit", onPack);
  $("preset").addEventListener("change", fillSizes);
  let lastSize = $("size").value;
  $("size").addEventListener("change", () => {
    const size = $("size").value;
    if (size === "custom") {
      // start from the size that was chosen
      const preset = presets.find((p) => p.name === $("preset").value) || {};
      const [w, h] =
        lastSize === "default" ? [preset.width || 1024, preset.height || 1024] : lastSize.split("x");
      $("width").value = String(w);
      $("height").value = String(h);
    }
    $("custom-size").hidden = size !== "custom";
    lastSize = size;
  });
  $("seed-dice").addEventListener("click", () => {
    $("seed").value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("generate-form").requestSubmit();
    }
  });
  $("cancel-job").addEventListener("click", cancelCurrent);
  $("refresh-recent").addEventListener("click", refresh);
  // an open export menu closes when anything else is clicked
  document.addEventListener("click", (event) => {
    for (const menu of document.querySelectorAll("details.export-menu[open]")) {
      // (a click on the menu's own backdrop lands on the <details> itself)
      if (!menu.contains(event.target) || event.target === menu) menu.open = false;
    }
  });
  document.body.classList.add("ready");
  if (keyStore.get()) refresh();
}

main();
