// The native API from the browser: the key, requests, and errors in words a person understands.

const KEY_STORAGE = "sticker-maker.api-key";

export const keyStore = {
  get() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  },
  set(value) {
    localStorage.setItem(KEY_STORAGE, value);
  },
  forget() {
    localStorage.removeItem(KEY_STORAGE);
  },
};

/** What the page shows of a key: "sm_1a2b3c4d_…" (never the secret). */
export function keyPrefix(key) {
  const match = /^(sm_[A-Za-z0-9]+)_/.exec(key);
  return match ? `${match[1]}_…` : `${key.slice(0, 6)}…`;
}

export class ApiError extends Error {
  constructor({ status = 0, code = "network", message = "", fields = [], retryAfter = null }) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.retryAfter = retryAfter;
  }
}

/** A URL relative to the page, so the app also works behind a path prefix. */
export function apiUrl(path) {
  return new URL(path, document.baseURI).toString();
}

/**
 * Call the API with the stored key. `json` sends a JSON body, `form` a FormData (multipart).
 * Returns the parsed JSON, or the Response itself with `raw: true` (for file downloads).
 */
export async function api(path, { method = "GET", json, form, raw = false, signal, key } = {}) {
  const headers = {};
  const secret = key ?? keyStore.get();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(apiUrl(path), { method, headers, body, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError({ code: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

async function errorFrom(response) {
  let data = {};
  try {
    data = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  const err =
    data && typeof data.error === "object" && data.error
      ? data.error
      : { message: typeof data?.error === "string" ? data.error : data?.message };
  const header = Number.parseFloat(response.headers.get("Retry-After") || "");
  const retry = Number.isFinite(header) ? header : Number(err.retry_after) || null;
  return new ApiError({
    status: response.status,
    code: err.code || `http_${response.status}`,
    message: err.message || response.statusText,
    fields: Array.isArray(err.fields) ? err.fields : [],
    retryAfter: retry ? Math.max(1, Math.ceil(retry)) : null,
  });
}

const FIELD_LABELS = {
  prompt: "Prompt",
  negative_prompt: "Things to avoid",
  preset: "Style",
  width: "Width",
  height: "Height",
  samples: "How many",
  seed: "Seed",
  upscale: "Upscale",
  finishing: "Finishing options",
  "finishing.border": "Border",
  "finishing.shadow": "Drop shadow",
  "finishing.remover": "Background removal",
  "finishing.holes": "Holes",
  border: "Border",
  shadow: "Drop shadow",
  remover: "Background removal",
  holes: "Holes",
  image: "Picture",
  stickers: "Stickers in the pack",
  name: "Pack name",
  publisher: "Publisher",
};

/** "input.width" / "width" → "Width". */
export function fieldLabel(field) {
  const bare = String(field).replace(/^(input|body)\./, "");
  if (FIELD_LABELS[bare]) return FIELD_LABELS[bare];
  const text = bare.replace(/[._]/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function seconds(n) {
  return n === 1 ? "1 second" : `${n} seconds`;
}

/** A prompt the service's content policy refused (HTTP 422, code content_blocked). */
const CONTENT_BLOCKED = {
  title: "This request was refused by the service's content policy.",
  detail:
    "The service does not make sexual content or content that sexualises children. " +
    "Nothing was queued or charged: change the description and try again.",
};

/** A finished job's failure as { title, detail } (a refused image says so in words). */
export function describeFailure(job) {
  if (job.error_code === "content_blocked") {
    return {
      title: "The sticker was refused by the service's content policy.",
      detail:
        "The picture that was made broke the service's content rules, so it was not kept " +
        "or shown. " +
        (/charged/.test(job.error || "")
          ? "Its GPU time was charged, as this service's policy says."
          : "Its credits were refunded.") +
        " Try a different description.",
    };
  }
  if (job.error_code === "model_unavailable") {
    // the message is advice for the operator (Hub downloads, the presets file): it stays
    // in the job's logs and the server's log; the person at the page gets what they can do
    return {
      title: "This style isn't available on this service right now.",
      detail:
        "Its model isn't installed or couldn't be loaded. Try another style, or tell the " +
        "service's operator (the details are in the server's log). Your credits were refunded.",
    };
  }
  return { title: "Making the sticker failed.", detail: job.error || "" };
}

/**
 * An error as { title, detail }: the title says what happened and what to do, in plain words;
 * the detail is the server's own message where it adds something.
 */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    return { title: "Something went wrong in the page.", detail: String(error?.message || error) };
  }
  const detail = error.message && error.message !== error.code ? error.message : "";
  if (error.code === "content_blocked") return CONTENT_BLOCKED;
  switch (error.status) {
    case 0:
      return {
        title: "Can't reach the sticker-maker server.",
        detail: "Check your connection and that the service is running, then try again.",
      };
    case 400:
      if (error.fields.length) {
        const lines = error.fields.map((f) => `${fieldLabel(f.field)}: ${f.message}`);
        return { title: "Please check the highlighted field.", detail: lines.join(" · ") };
      }
      return { title: "The service couldn't use that request.", detail };
    case 401:
      return {
        title: "That API key wasn't accepted.",
        detail:
          "Check that you pasted the whole key (it starts with sm_), or ask the operator for a new one.",
      };
    case 403:
      return { title: "This key isn't allowed to do that.", detail };
    case 404:
      return { title: "Not found — it may have expired or belong to another key.", detail };
    case 406: {
      const ask = "Ask the person who runs this service to add credits, then try again.";
      const numbers = /reserves ([\d.]+) credits.*balance is (-?[\d.]+)/.exec(error.message);
      return {
        title: "This key is out of credits.",
        detail: numbers
          ? `This job needs up to ${numbers[1]} credits and the key has ${numbers[2]}. ` +
            `Fewer or smaller stickers cost less. ${ask}`
          : ask,
      };
    }
    case 413:
      return { title: "That file is too big.", detail };
    case 429:
      return {
        title: error.retryAfter
          ? `Too many requests — try again in ${seconds(error.retryAfter)}.`
          : "Too many requests — wait a moment and try again.",
        detail,
      };
    case 503:
      return {
        title: error.retryAfter
          ? `The service is busy — try again in ${seconds(error.retryAfter)}.`
          : "The service is busy — try again in a moment.",
        detail,
      };
    default:
      if (error.status >= 500) {
        return { title: "Something went wrong on the server. Try again in a moment.", detail };
      }
      return { title: detail || `The request failed (HTTP ${error.status}).`, detail: "" };
  }
}

/** The file name in a Content-Disposition header, if any. */
export function dispositionName(response) {
  const header = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(header);
  if (star) return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1].trim() : null;
}
