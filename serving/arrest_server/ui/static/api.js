// Talking to the server: every data call goes to /ui/api/ on the same server, with the API token when the
// server has one (kept in sessionStorage: gone when the tab closes); what an error means to a person; the
// page's message line and the token form.
import { $, show } from "./dom.js";

const API = "api/";
const TOKEN_KEY = "arrest-ui-token";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (e) {
    return "";
  }
}

/** Keep the token for this tab; false when the browser does not allow session storage. */
export function keepToken(value) {
  try {
    sessionStorage.setItem(TOKEN_KEY, value);
    return true;
  } catch (e) {
    return false;
  }
}

export async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const headers = Object.assign({}, opts.headers);
  if (token()) headers["Authorization"] = "Bearer " + token();
  opts.headers = headers;
  let response;
  try {
    response = await fetch(API + path, opts);
  } catch (e) {
    throw new ApiError(
      "The model server at " + location.origin + " does not answer: it may be stopped or restarting " +
        "(locally, make serve starts it). Try again in a moment.",
      0
    );
  }
  const type = response.headers.get("content-type") || "";
  if (response.ok) {
    return type.includes("application/json") ? response.json() : response.text();
  }
  let message = "";
  if (type.includes("application/json")) {
    try {
      const body = await response.json();
      message = body && body.error ? String(body.error) : "";
    } catch (e) {
      message = "";
    }
  }
  if (!message) {
    message = "The server answered " + response.status + " " + (response.statusText || "") +
      " without an explanation (a proxy in between may have refused the request).";
  }
  if (response.status === 401) askForToken(message);
  throw new ApiError(message, response.status);
}

export function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) return "The server refused the API token: " + error.message;
    if (error.status === 413) return "Too large: " + error.message;
    if (error.status === 504) return "Too slow: " + error.message;
    if (error.status >= 500) return "The server failed: " + error.message;
    return error.message;
  }
  return "Something went wrong in the page: " + (error && error.message ? error.message : String(error));
}

export function showMessage(text, kind) {
  const box = $("message");
  box.className = "message" + (kind ? " " + kind : "");
  show(box, text);
}

// -- the token --------------------------------------------------------------------------------------------

function askForToken(reason) {
  const had = token();
  $("main").hidden = true;
  $("token").hidden = false;
  $("serving").textContent = "Waiting for the API token.";
  showMessage(had ? "The server refused the token: " + reason : "", had ? "" : "info");
  $("token-input").value = "";
  $("token-input").focus();
}
