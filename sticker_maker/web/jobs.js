// Watching a job: follow its events (or poll its envelope), show queue position, then step
// n/N, until it ends.

import { api } from "./api.js";
import { $, announce, sleep } from "./ui.js";

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

/** What to show for a job that is not finished yet: { text, value (0–1 or null), phase }. */
export function progressOf(job) {
  if (job.status === "queued") {
    const ahead = job.queue_position ?? 0;
    return {
      phase: "queued",
      value: null,
      text:
        ahead === 0
          ? "Next in line…"
          : `Waiting in line: ${ahead} ${ahead === 1 ? "job" : "jobs"} ahead of yours`,
    };
  }
  const { step = 0, total = 0 } = job.progress || {};
  if (!total) return { phase: "starting", value: null, text: "Starting: loading the model…" };
  if (step >= total) return { phase: "finishing", value: 1, text: "Cutting out your stickers…" };
  return { phase: "running", value: step / total, text: `Step ${step} of ${total}` };
}

/** One event of GET /v1/jobs/{id}/events applied to the job as last seen. */
export function applyEvent(job, event, data) {
  if (event === "done") return data;
  if (event === "queue") return { ...job, status: "queued", queue_position: data.position };
  if (event === "progress") {
    return { ...job, status: "running", queue_position: null, progress: data };
  }
  if (event === "logs") return { ...job, logs: (job.logs || "") + data.text };
  if (event === "preview") return { ...job, preview: data.image }; // a data: URL
  return job;
}

/**
 * Follow the job's server-sent events (a fetch stream: EventSource cannot send the key).
 * Returns the finished job, or null when the stream cannot be followed (then poll).
 */
async function followJob(job, { onUpdate, signal }) {
  let response;
  try {
    response = await api(`v1/jobs/${encodeURIComponent(job.id)}/events`, { raw: true, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return null;
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok || !response.body || !type.startsWith("text/event-stream")) return null;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null; // the stream ended early: poll for the rest
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data: "))
          .map((line) => line.slice(6))
          .join("\n");
        if (!event || !data) continue;
        job = applyEvent(job, event, JSON.parse(data));
        onUpdate?.(job);
        if (event === "done") return job;
      }
    }
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return null;
  } finally {
    reader.releaseLock();
  }
}

/**
 * Follow the job's events until it is terminal, else poll (an older server, a proxy that
 * buffers). Calls onUpdate(job) on each change. Transient trouble while polling (a dropped
 * connection, 429 or 503) waits and tries again; anything else is thrown.
 */
export async function watchJob(job, { onUpdate, onTrouble, signal }) {
  if (!TERMINAL.has(job.status)) {
    const followed = await followJob(job, { onUpdate, signal });
    if (followed) return followed;
  }
  let delay = 200;
  while (!TERMINAL.has(job.status)) {
    await sleep(delay, signal);
    try {
      job = await api(`v1/jobs/${encodeURIComponent(job.id)}`, { signal });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      if (error.status === 0 || error.status === 429 || error.status === 503) {
        onTrouble?.(error);
        delay = (error.retryAfter || 2) * 1000;
        continue;
      }
      throw error;
    }
    onUpdate?.(job);
    delay = Math.min(1000, delay * 1.3);
  }
  return job;
}

/** The status panel above the results: one job at a time. */
export class StatusPanel {
  constructor() {
    this.box = $("job-status");
    this.text = $("status-text");
    this.bar = $("status-progress");
    this.cancel = $("cancel-job");
    this.phase = "";
    this.previewImage = null;
  }

  /** Show the panel with `tiles` stand-ins for the stickers, which sharpen as steps pass. */
  start(text, tiles = 1) {
    this.phase = "";
    this.previewImage = null;
    this.box.hidden = false;
    const forming = $("forming");
    forming.replaceChildren(
      ...Array.from({ length: tiles }, () => {
        const tile = document.createElement("div");
        tile.className = "forming-tile checker";
        tile.append(document.createElement("span"));
        return tile;
      }),
    );
    forming.style.setProperty("--p", "0");
    this.cancel.hidden = true; // until there is a job to cancel
    this.cancel.disabled = false;
    this.text.textContent = text;
    this.bar.hidden = false;
    this.bar.removeAttribute("value"); // indeterminate
    announce(text);
    this.box.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  show(job) {
    const p = progressOf(job);
    this.cancel.hidden = false;
    this.text.textContent = p.text;
    if (p.value === null) this.bar.removeAttribute("value");
    else this.bar.value = p.value;
    $("forming").style.setProperty("--p", String(p.value ?? 0));
    if (job.preview && job.status === "running") this.showPreview(job.preview);
    // read out changes of phase and queue position, not every step
    const said = p.phase === "queued" ? p.text : p.phase;
    if (said !== this.phase) {
      this.phase = said;
      announce(p.text);
    }
  }

  /** The server's live preview (when it makes them) in place of the stand-in tiles. */
  showPreview(url) {
    if (!this.previewImage) {
      this.previewImage = document.createElement("img");
      this.previewImage.className = "forming-preview";
      this.previewImage.alt = "";
      $("forming").replaceChildren(this.previewImage);
    }
    if (this.previewImage.src !== url) this.previewImage.src = url;
  }

  trouble(text) {
    this.text.textContent = text;
  }

  done() {
    this.box.hidden = true;
  }
}
