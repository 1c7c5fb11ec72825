// The WhatsApp pack being put together: stickers picked from any job, 3–30 of them.

import { api, dispositionName } from "./api.js";
import { busy } from "./cards.js";
import { $, saveBlob, slug, toast } from "./ui.js";

export const PACK_MIN = 3;
export const PACK_MAX = 30;

export class Pack {
  constructor() {
    this.items = [];
    this.listeners = new Set();
    $("pack-download").addEventListener("click", (event) => busy(event.currentTarget, () => this.download()));
    $("pack-clear").addEventListener("click", () => {
      this.items = [];
      this.changed();
      toast("Pack cleared");
    });
    this.render();
  }

  has(jobId, n) {
    return this.items.some((i) => i.job_id === jobId && i.output === n);
  }

  toggle(item) {
    if (this.has(item.job_id, item.output)) {
      this.items = this.items.filter((i) => !(i.job_id === item.job_id && i.output === item.output));
      toast("Removed from the WhatsApp pack");
    } else if (this.items.length >= PACK_MAX) {
      toast(`A WhatsApp pack holds at most ${PACK_MAX} stickers.`, { error: true });
      return;
    } else {
      this.items.push(item);
      toast(`Added to the WhatsApp pack (${this.items.length})`);
    }
    this.changed();
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  changed() {
    this.render();
    for (const listener of this.listeners) listener();
  }

  render() {
    const n = this.items.length;
    $("pack-bar").hidden = n === 0;
    document.body.classList.toggle("has-pack", n > 0);
    const more = PACK_MIN - n;
    $("pack-count").textContent =
      more > 0
        ? `${n} ${n === 1 ? "sticker" : "stickers"} — add ${more} more (3–30 per pack)`
        : `${n} stickers, ready to download`;
    $("pack-download").disabled = n < PACK_MIN;
  }

  async download() {
    const name = $("pack-name").value.trim() || "My stickers";
    const publisher = $("pack-publisher").value.trim() || "sticker-maker";
    const response = await api("v1/exports/whatsapp-pack", {
      method: "POST",
      raw: true,
      json: {
        stickers: this.items.map(({ job_id, output }) => ({ job_id, output })),
        name,
        publisher,
      },
    });
    saveBlob(await response.blob(), dispositionName(response) || `${slug(name, "stickers")}.zip`);
    toast("WhatsApp pack downloaded — open it with a sticker app to add it to WhatsApp");
  }
}
