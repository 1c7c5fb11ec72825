// Small DOM helpers shared by the page's modules.

import { describeError } from "./api.js";

export const $ = (id) => document.getElementById(id);

/** Say something to screen readers (the visually hidden polite live region). */
export function announce(text) {
  const live = $("live");
  live.textContent = "";
  // a fresh text node makes repeated messages be read again
  requestAnimationFrame(() => {
    live.textContent = text;
  });
}

let toastTimer = 0;

/** A short confirmation at the bottom of the screen ("Copied"), also read out. */
export function toast(text, { error = false } = {}) {
  const box = $("toast");
  box.textContent = text;
  box.classList.toggle("toast-error", error);
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 3500);
}

/** Save a Blob as a download with a file name. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** "a happy corgi!" → "a-happy-corgi" (for file names). */
export function slug(text, fallback = "sticker") {
  const s = String(text || "")
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  return s || fallback;
}

/** Show an error under the form (role=alert) and mark the fields it names. */
export function showError(error, fieldMap = {}) {
  const { title, detail } = describeError(error);
  showAlert(title, detail);
  let first = null;
  for (const field of error?.fields || []) {
    const id = fieldMap[String(field.field).replace(/^(input|body)\./, "")];
    if (!id) continue;
    setFieldError(id, field.message);
    first ??= $(id);
  }
  if (first) first.focus();
  return { title, detail };
}

/** The alert under the form: a plain-words title and an optional detail line. */
export function showAlert(title, detail = "") {
  $("form-error-title").textContent = title;
  $("form-error-detail").textContent = detail;
  $("form-error-detail").hidden = !detail;
  $("form-error").hidden = false;
  clearFieldErrors();
}

export function clearError() {
  $("form-error").hidden = true;
  clearFieldErrors();
}

/** Mark one control invalid with its message (the <p id="<control>-error"> under it). */
export function setFieldError(id, message) {
  const control = $(id);
  const note = $(`${id}-error`);
  if (control) control.setAttribute("aria-invalid", "true");
  if (note) {
    note.textContent = message;
    note.hidden = false;
  }
}

export function clearFieldErrors() {
  for (const el of document.querySelectorAll("[aria-invalid='true']")) {
    el.removeAttribute("aria-invalid");
  }
  for (const note of document.querySelectorAll(".field-error")) {
    note.hidden = true;
    note.textContent = "";
  }
}

export const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new DOMException("aborted", "AbortError"));
      },
      { once: true },
    );
  });
