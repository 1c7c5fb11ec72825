// Finished jobs as batches of sticker cards, and what each card can do.

import { ApiError, api, describeError, dispositionName } from "./api.js";
import { saveBlob, slug, toast } from "./ui.js";

const EXPORTS = {
  png: ["png"],
  webp: ["webp"],
  telegram: ["telegram"],
  whatsapp: ["whatsapp"],
  discord: ["discord"],
  print: ["print_png", "print_svg"],
};
const EXTENSIONS = {
  png: "png",
  webp: "webp",
  telegram: "png",
  whatsapp: "webp",
  discord: "png",
  print_png: "png",
  print_svg: "svg",
};
const LABELS = {
  webp: "WebP",
  telegram: "Telegram sticker",
  whatsapp: "WhatsApp sticker",
  discord: "Discord sticker",
  print: "Print files",
};

/** The sticker outputs of a job, each with `n`, its position in the job's output array
 * (for element ids only: exports and packs name a sticker by its `index`). */
export function stickersOf(job) {
  const all = (job.output || []).map((o, n) => ({ ...o, n }));
  const stickers = all.filter((o) => o.kind === "sticker");
  return stickers.length ? stickers : all;
}

export function jobTitle(job) {
  if (job.kind === "cutout") return "Cut-out of your picture";
  if (job.kind === "split") return "Split sheet";
  return job.input?.prompt ? `“${job.input.prompt}”` : "Stickers";
}

function baseName(job, output) {
  if (output.expression) return `${slug(job.input?.prompt)}-${output.seed}-${slug(output.expression)}`;
  if (job.kind === "generate" || job.input?.prompt) return `${slug(job.input?.prompt)}-${output.seed}`;
  const id = String(job.id).slice(0, 8);
  return job.kind === "split" ? `sticker-${id}-${output.index + 1}` : `sticker-${id}`;
}

/** An output file's bytes (output URLs need no key: their names are unguessable). */
async function fetchBlob(url) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    throw new ApiError({ code: "network" });
  }
  if (!response.ok) {
    const code = response.status === 404 ? "not_found" : `http_${response.status}`;
    throw new ApiError({ status: response.status, code, message: "file not found" });
  }
  return response.blob();
}

function canShareFiles() {
  try {
    return Boolean(
      navigator.canShare?.({ files: [new File([""], "s.png", { type: "image/png" })] }),
    );
  } catch {
    return false;
  }
}

/** A <section> for one finished job: heading, facts, and a grid of cards. */
export function renderBatch(job, actions) {
  const section = document.createElement("section");
  section.className = "batch";
  section.dataset.job = job.id;
  section.style.setProperty("--n", String(Math.min(stickersOf(job).length, 4)));
  section.tabIndex = -1;
  const headingId = `batch-${job.id}`;
  section.setAttribute("aria-labelledby", headingId);

  const head = document.createElement("div");
  head.className = "batch-head";
  const h3 = document.createElement("h3");
  h3.id = headingId;
  h3.textContent = jobTitle(job);
  h3.title = h3.textContent;
  const facts = document.createElement("p");
  facts.className = "hint";
  const stickers = stickersOf(job);
  const seconds = job.metrics?.predict_time;
  facts.textContent = [
    job.kind === "generate" ? job.preset : null,
    `${stickers.length} ${stickers.length === 1 ? "sticker" : "stickers"}`,
    stickers.some((o) => o.empty) ? `${stickers.filter((o) => o.empty).length} empty` : null,
    seconds != null ? `${seconds.toFixed(1)} s` : null,
  ]
    .filter(Boolean)
    .join(" · ");
  head.append(h3, facts);

  const grid = document.createElement("ol");
  grid.className = "sticker-grid";
  for (const output of stickers) grid.append(renderCard(job, output, actions));
  section.append(head, grid);
  return section;
}

function renderCard(job, output, actions) {
  const card = document.getElementById("card-template").content.firstElementChild.cloneNode(true);
  const name = baseName(job, output);
  const describedBy = `card-${job.id}-${output.n}`;
  const original = (job.output || []).find((o) => o.kind === "image" && o.index === output.index);
  // an empty sticker (the cut-out found nothing): show the picture as made, and say so
  const shown = output.empty && original ? original : output;
  const img = card.querySelector("img");
  img.src = shown.url;
  img.alt =
    job.kind === "generate"
      ? `Sticker of ${job.input.prompt} (seed ${output.seed})`
      : `Sticker ${output.index + 1} from your picture`;
  img.width = output.width;
  img.height = output.height;

  const seed = card.querySelector("[data-action='reuse-seed']");
  seed.id = describedBy;
  if (job.kind === "generate") {
    seed.textContent = `Seed ${output.seed}`;
    seed.setAttribute("aria-label", `Seed ${output.seed}: use it again`);
    seed.addEventListener("click", () => actions.reuseSeed(output.seed));
  } else if (output.expression) {
    seed.textContent = `${output.emoji} ${output.expression}`;  // a pack's sticker
    seed.disabled = true;
    img.alt = `Sticker of ${job.input.prompt}: ${output.expression}`;
  } else {
    seed.textContent = job.kind === "split" ? `Sticker ${output.index + 1}` : "Cut-out";
    seed.disabled = true;
  }
  card.querySelector(".dims").textContent = `${output.width} × ${output.height}`;
  for (const button of card.querySelectorAll("button:not([data-action='reuse-seed']), summary")) {
    button.setAttribute("aria-describedby", describedBy);
  }

  card.querySelector("[data-action='png']").addEventListener("click", async (event) => {
    await busy(event.currentTarget, async () => {
      saveBlob(await fetchBlob(shown.url), `${name}.png`);
      toast("PNG downloaded");
    });
  });

  card.querySelector("[data-action='copy']").addEventListener("click", async (event) => {
    if (!navigator.clipboard?.write || typeof ClipboardItem === "undefined") {
      toast("Copying pictures needs https (or localhost) in this browser — use Download instead.", {
        error: true,
      });
      return;
    }
    await busy(event.currentTarget, async () => {
      // a promise inside the item keeps the click's permission while the PNG downloads
      const item = new ClipboardItem({ "image/png": fetchBlob(shown.url) });
      await navigator.clipboard.write([item]);
      toast("Copied — paste it into any app");
    });
  });

  const share = card.querySelector("[data-action='share']");
  if (canShareFiles()) {
    share.hidden = false;
    share.addEventListener("click", async (event) => {
      await busy(event.currentTarget, async () => {
        const blob = await fetchBlob(shown.url);
        const file = new File([blob], `${name}.png`, { type: "image/png" });
        try {
          await navigator.share({ files: [file], title: jobTitle(job) });
        } catch (error) {
          if (error.name !== "AbortError") throw error;
        }
      });
    });
  }

  const menu = card.querySelector("details");
  for (const button of card.querySelectorAll("[data-export]")) {
    button.addEventListener("click", async () => {
      const target = button.dataset.export;
      await busy(button, async () => {
        for (const part of EXPORTS[target]) {
          await downloadExport(job, output, part, name);
        }
        toast(`${LABELS[target] || target} downloaded`);
        menu.open = false;
      });
    });
  }

  card.querySelector("[data-action='split']").addEventListener("click", () => {
    menu.open = false;
    actions.split(job, output);
  });

  const pack = card.querySelector("[data-action='pack']");
  const syncPack = () => {
    const inPack = actions.pack.has(job.id, output.index);
    pack.setAttribute("aria-pressed", String(inPack));
    pack.textContent = inPack ? "Remove from WhatsApp pack" : "Add to WhatsApp pack";
  };
  syncPack();
  actions.pack.onChange(syncPack);
  pack.addEventListener("click", () => {
    actions.pack.toggle({ job_id: job.id, output: output.index, url: output.url });
    menu.open = false;
  });

  const link = card.querySelector("[data-action='original']");
  if (original) link.href = original.url;
  else link.remove();

  if (output.empty) {
    card.classList.add("empty-sticker");
    const note = document.createElement("p");
    note.className = "card-note";
    note.id = `${describedBy}-empty`;
    note.textContent =
      "No sticker: nothing was found to cut out, so this is the picture as made. " +
      "Try another seed or description.";
    card.querySelector(".card-meta").after(note);
    img.alt = `Picture without a sticker (seed ${output.seed}): nothing was found to cut out`;
    menu.hidden = true; // exports and packs need a sticker
  }

  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  return card;
}

async function downloadExport(job, output, target, name) {
  const path = `v1/jobs/${encodeURIComponent(job.id)}/outputs/${output.index}/export/${target}`;
  const response = await api(path, { raw: true });
  const blob = await response.blob();
  // our name (prompt and seed), with the extension the service chose
  const served = dispositionName(response);
  const ext = served?.includes(".") ? served.split(".").pop() : EXTENSIONS[target];
  saveBlob(blob, `${name}-${target.replace("_", "-")}.${ext}`);
}

/** Run an action with its button disabled; failures become a toast in plain words. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    await action();
  } catch (error) {
    const { title, detail } = describeError(error);
    toast(error.status === 404 && error.code === "not_found" ? notAvailable(detail) : title, {
      error: true,
    });
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function notAvailable(detail) {
  return /not found/i.test(detail) && !/job|file/i.test(detail)
    ? "This server doesn't offer that export yet."
    : "That file has expired or isn't available any more.";
}
