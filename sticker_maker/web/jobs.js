// Watching a job: poll its envelope, show queue position, then step n/N, until it ends.

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

/**
 * Poll until the job is terminal. Calls onUpdate(job) after every poll. Transient trouble
 * (a dropped connection, 429 or 503) waits and tries again; anything else is thrown.
 */
export async function watchJob(job, { onUpdate, onTrouble, signal }) {
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
  }

  /** Show the panel with `tiles` stand-ins for the stickers, which sharpen as steps pass. */
  start(text, tiles = 1) {
    this.phase = "";
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
    // read out changes of phase and queue position, not every step
    const said = p.phase === "queued" ? p.text : p.phase;
    if (said !== this.phase) {
      this.phase = said;
      announce(p.text);
    }
  }

  trouble(text) {
    this.text.textContent = text;
  }

  done() {
    this.box.hidden = true;
  }
}
