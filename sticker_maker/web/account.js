// The key's credits (GET /v1/account) and its recent jobs (GET /v1/jobs).

import { api, keyStore } from "./api.js";
import { jobTitle, stickersOf } from "./cards.js";
import { $ } from "./ui.js";

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** Show the balance; "—" where the service has no account endpoint or it can't be read. */
export async function refreshCredits() {
  const credits = $("credits");
  if (!keyStore.get()) {
    credits.textContent = "—";
    return;
  }
  try {
    const account = await api("v1/account");
    credits.textContent = typeof account.balance === "number" ? number.format(account.balance) : "—";
    if (typeof account.retention_seconds === "number") {
      $("recent-empty").textContent =
        `Jobs made with this key in the last ${keptFor(account.retention_seconds)} show up here.`;
    }
  } catch {
    credits.textContent = "—";
  }
}

/** "hour", "2 hours", "day", "30 minutes": the service's real retention, in words. */
export function keptFor(seconds) {
  const units = [
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [size, name] of units) {
    if (seconds >= size) {
      const n = Math.round(seconds / size);
      return n === 1 ? name : `${n} ${name}s`;
    }
  }
  return `${Math.round(seconds)} seconds`;
}

function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  const steps = [
    [60, "second"],
    [3600, "minute", 60],
    [86400, "hour", 3600],
    [Infinity, "day", 86400],
  ];
  for (const [limit, unit, size = 1] of steps) {
    if (Math.abs(seconds) < limit) return relative.format(Math.round(seconds / size), unit);
  }
  return "";
}

const STATUS_WORDS = {
  queued: "waiting",
  running: "making",
  succeeded: "done",
  failed: "failed",
  canceled: "canceled",
};

/** The recent-jobs list; `open(job)` shows a job's stickers (or follows a running one). */
export async function refreshRecent(open) {
  const list = $("recent");
  if (!keyStore.get()) {
    list.replaceChildren();
    $("recent-empty").hidden = false;
    return;
  }
  let jobs;
  try {
    ({ jobs } = await api("v1/jobs?limit=12"));
  } catch {
    return; // the list stays as it was; errors are shown where the user acted
  }
  $("recent-empty").hidden = jobs.length > 0;
  list.replaceChildren(...jobs.map((job) => recentItem(job, open)));
}

function recentItem(job, open) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "recent-item";
  button.dataset.job = job.id;

  const thumb = document.createElement("span");
  thumb.className = "recent-thumb checker";
  const first = job.status === "succeeded" ? stickersOf(job)[0] : null;
  if (first) {
    const img = document.createElement("img");
    img.src = first.url;
    img.alt = "";
    img.loading = "lazy";
    thumb.append(img);
  }

  const text = document.createElement("span");
  text.className = "recent-text";
  const title = document.createElement("span");
  title.className = "recent-title";
  title.textContent = jobTitle(job);
  const meta = document.createElement("span");
  meta.className = `recent-meta status-${job.status}`;
  const count = job.status === "succeeded" ? stickersOf(job).length : 0;
  meta.textContent = [
    STATUS_WORDS[job.status] || job.status,
    count ? `${count} ${count === 1 ? "sticker" : "stickers"}` : null,
    ago(job.created_at),
  ]
    .filter(Boolean)
    .join(" · ");
  text.append(title, meta);

  button.append(thumb, text);
  button.addEventListener("click", () => open(job));
  li.append(button);
  return li;
}
