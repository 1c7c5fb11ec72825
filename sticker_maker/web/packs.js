// Stickers of a photo, and "make a pack": one character, one sticker per expression.

import { api, dispositionName } from "./api.js";
import { busy } from "./cards.js";
import { $, saveBlob, slug, toast } from "./ui.js";

/** The pack form's controls by the API field they send. */
export const PACK_FIELDS = {
  character: "character",
  expressions: "expressions",
  count: "pack-size",
  preset: "pack-preset",
  image: "pack-photo",
  ip_adapter_weight: "pack-likeness",
};
// an empty or bad expression is named by its place: expressions[i]
for (let i = 0; i < 30; i += 1) PACK_FIELDS[`expressions[${i}]`] = "expressions";

/** A chosen file as a data: URL (the API's `image` takes one). */
export function fileDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** `image` and `ip_adapter_weight` for a request, from a file input and a likeness input. */
export async function referenceFields(fileId, likenessId) {
  const file = $(fileId).files[0];
  if (!file) return {};
  const fields = { image: await fileDataUrl(file) };
  const likeness = $(likenessId).value.trim();
  if (likeness !== "") fields.ip_adapter_weight = Number(likeness);
  return fields;
}

/** The body of POST /v1/packs from the pack form. */
export async function packBody() {
  const body = { character: $("character").value, preset: $("pack-preset").value };
  const given = $("expressions").value.trim();
  if (given) {
    body.expressions = given.split(",").map((e) => e.trim());
  } else {
    body.count = Number($("pack-size").value || 8);
  }
  return { ...body, ...(await referenceFields("pack-photo", "pack-likeness")) };
}

/** The pack's style choices: the same presets as the main form. */
export function fillPackPresets(presets) {
  const select = $("pack-preset");
  const previous = select.value;
  select.replaceChildren(...presets.map((p) => new Option(p.name, p.name)));
  if (presets.some((p) => p.name === previous)) select.value = previous;
}

/** "Download for WhatsApp" and "for Telegram" under a finished pack. */
export function packActions(job) {
  const row = document.createElement("div");
  row.className = "button-row pack-actions";
  for (const [target, label] of [
    ["whatsapp", "Download for WhatsApp"],
    ["telegram", "Download for Telegram"],
  ]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button small";
    button.dataset.packExport = target;
    button.textContent = label;
    button.addEventListener("click", (event) =>
      busy(event.currentTarget, () => downloadPack(job, target)),
    );
    row.append(button);
  }
  return row;
}

async function downloadPack(job, target) {
  const path = `v1/packs/${encodeURIComponent(job.id)}/export/${target}`;
  const response = await api(path, { raw: true });
  const name = dispositionName(response) || `${slug(job.input?.prompt, "pack")}-${target}.zip`;
  saveBlob(await response.blob(), name);
  toast(
    target === "whatsapp"
      ? "WhatsApp pack downloaded — open it with a sticker app to add it to WhatsApp"
      : "Telegram pack downloaded — send the stickers to @Stickers with their emojis (emojis.txt)",
  );
}
