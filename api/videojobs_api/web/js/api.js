// The REST API from the page: the key from this tab's session, problem+json errors, SSE read over fetch.

const KEY_ITEM = "videojobs.apiKey";

/** The API key, kept in sessionStorage: this tab only, gone when it closes, never in a URL. */
export const session = {
  get key() {
    return sessionStorage.getItem(KEY_ITEM);
  },
  signIn(key) {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY_ITEM);
  },
};

/** An error answer: its RFC 9457 problem document, whose `detail` is the sentence to show. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }

  /** Field issues of a 422: [{field, location, message}]. */
  get fieldErrors() {
    return this.problem.errors || [];
  }
}

const UNREACHABLE = new ApiError(0, {
  title: "Server unreachable",
  detail: "The server cannot be reached. Check that videojobs serve is running, then try again.",
});

async function problemOf(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      // fall through: a broken body still gets a sentence
    }
  }
  return { title: response.statusText, detail: `The server answered ${response.status}.` };
}

function headers(accept, key = session.key) {
  const result = { Accept: accept };
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw UNREACHABLE;
  }
  if (response.status === 401 && session.key) {
    window.dispatchEvent(new CustomEvent("videojobs:unauthenticated"));
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response;
}

/** A JSON request; resolves to the parsed body (null for 204). */
export async function request(method, path, { body, key, signal } = {}) {
  const init = { method, headers: headers("application/json", key), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(path, init);
  return response.status === 204 ? null : response.json();
}

/** A file the API serves (thumbnail, subtitles, ...) as a blob: URL the page may use. */
export async function objectUrl(path, { signal } = {}) {
  const response = await send(path, { headers: headers("*/*"), signal });
  return URL.createObjectURL(await response.blob());
}

/** The OpenAPI document (no key needed): the contract the form is built from. */
let openapi = null;
export async function contract() {
  openapi ??= request("GET", "/openapi.json", { key: null });
  return openapi;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

function parseEvent(block) {
  const event = { id: null, event: "message", data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
    else if (field === "event") event.event = value;
  }
  event.data = data.join("\n");
  return data.length ? event : null;
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) onEvent(event);
    }
  }
}

/**
 * Follow a Server-Sent Events route with the key in a header (EventSource cannot send one).
 * Calls onStatus with each `status` event's JSON. A dropped connection is opened again (with
 * Last-Event-ID when `resume`), until `signal` aborts or `finished()` says the stream is complete.
 */
export async function follow(path, onStatus, { signal, resume = true, finished = () => false }) {
  let lastId = null;
  while (!signal.aborted && !finished()) {
    const init = { headers: headers("text/event-stream"), signal };
    if (resume && lastId !== null) init.headers["Last-Event-ID"] = lastId;
    try {
      const response = await send(path, init);
      await readEvents(response.body, (event) => {
        if (event.id !== null) lastId = event.id;
        if (event.event === "status") onStatus(JSON.parse(event.data));
      });
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
    }
    if (!finished()) await sleep(1000, signal);
  }
}
