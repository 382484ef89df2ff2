// Every data call of the page: the /v1 API, with the key the person entered (sessionStorage).
import { h } from "./dom.js";

const KEY = "medserve.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

let pendingKey = null;

/** Show the key form (once for every call waiting on it) and resolve when a key is entered. */
function askForKey(reason) {
  if (pendingKey) return pendingKey;
  const panel = document.getElementById("key-panel");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent = reason;
  panel.hidden = false;
  input.value = "";
  input.focus();
  pendingKey = new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      panel.hidden = true;
      pendingKey = null;
      resolve();
    }, { once: true });
  });
  return pendingKey;
}

async function errorOf(response) {
  let body = {};
  try { body = await response.json(); } catch { /* not JSON */ }
  return new ApiError(response.status, body.code || `http_${response.status}`,
    body.message || response.statusText || "request failed", body.request_id || response.headers.get("x-request-id"));
}

/**
 * fetch(path) with the key; `as`: "json" (default), "blob" or "response". A 401 asks for the key
 * and retries; a 403 (a key that is not valid) asks again. Other errors throw ApiError.
 */
export async function api(path, { method = "GET", body, headers = {}, as = "json" } = {}) {
  for (;;) {
    const sent = new Headers(headers);
    const key = sessionStorage.getItem(KEY);
    if (key) sent.set("X-API-Key", key);
    const response = await fetch(path, { method, body, headers: sent });
    if (response.status === 401 || (response.status === 403 && key)) {
      if (response.status === 403) sessionStorage.removeItem(KEY);
      await askForKey(response.status === 401
        ? "This gateway needs an API key. It is kept for this browser tab only."
        : "That API key was not accepted. Enter a valid key.");
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    if (as === "blob") return response.blob();
    if (as === "response") return response;
    return response.json();
  }
}

/** An error as the page shows it: its code, its message and the request id. */
export function errorBox(error, context = "") {
  const code = error instanceof ApiError ? error.code : "network_error";
  return h("div.error", { role: "alert" },
    context ? h("p", { text: context }) : null,
    h("p", {}, h("code.error-code", { text: code }), " — ", h("span.error-message", { text: error.message })),
    error.requestId ? h("p.muted", { text: `request id ${error.requestId}` }) : null);
}

/** The "not available" states of an optional section: 404/422 from the API. */
export function isUnavailable(error) {
  return error instanceof ApiError && [404, 405, 422, 501].includes(error.status);
}
