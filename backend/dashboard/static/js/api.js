// The one module that talks HTTP to the API. It holds the session (the token lives in this
// tab's sessionStorage, never in a URL), sends If-None-Match on polled routes, turns a 401 into
// "session expired" and error bodies into ApiError messages that name their field.

export const ADMIN = "/api/v1/admin/data-collection";
const SESSION_KEY = "altar.session";
const CONFIGS_PAGE = 100;
const NOT_A_FIELD = new Set(["", "data", "body", "query", "path"]);

let session = readSession();
const sessionEndListeners = new Set();
const polled = new Map(); // url -> {etag, data}: the last answer of each polled route

/** An answer other than 2xx/304: `message` for people, `problems` naming fields, `body` as sent. */
export class ApiError extends Error {
  constructor(status, message, { problems = [], body = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.problems = problems; // [{fields: ["symbol", ...] candidates, best first, message}]
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

function readSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    return stored && typeof stored.token === "string" ? stored : null;
  } catch {
    return null;
  }
}

export function currentSession() {
  return session;
}

export function canWrite() {
  return session?.user?.role === "admin";
}

function startSession(token, user, expiresInSeconds) {
  session = { token, user, expiresAt: Date.now() + expiresInSeconds * 1000 };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** The user as GET /auth/me says now (a role may change while a session lasts). */
export function updateUser(user) {
  if (!session) return;
  session.user = user;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** Forget the token; listeners learn why ("logout", "expired"). */
export function endSession(reason) {
  const hadSession = session !== null;
  session = null;
  polled.clear();
  sessionStorage.removeItem(SESSION_KEY);
  if (hadSession) for (const listener of sessionEndListeners) listener(reason);
}

export function onSessionEnd(listener) {
  sessionEndListeners.add(listener);
}

/** The path with its query string; empty values are left out (they mean "no filter"). */
export function withQuery(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Field names an error message points at, best first. */
function fieldCandidates(key, text) {
  const names = [];
  const last = String(key || "")
    .split(".")
    .pop();
  if (!NOT_A_FIELD.has(last)) names.push(last);
  const prefixed = /^([a-z_]+): /.exec(text);
  if (prefixed) names.push(prefixed[1]);
  const missing = /field `([a-z_]+)`/.exec(text);
  if (missing) names.push(missing[1]);
  const unique = /Key \(([^)]+)\)=/.exec(text); // a unique constraint: "Key (exchange, symbol)=(...)"
  if (unique)
    names.push(
      ...unique[1]
        .split(",")
        .map((name) => name.trim())
        .reverse(),
    );
  return names;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail = typeof body?.detail === "string" ? body.detail : `${response.status} ${response.statusText}`;
  const extra = Array.isArray(body?.extra) ? body.extra.filter((item) => item && item.message) : [];
  const problems = extra.length
    ? extra.map((item) => ({ fields: fieldCandidates(item.key, item.message), message: String(item.message) }))
    : [{ fields: fieldCandidates(null, detail), message: detail }];
  const message = extra.length === 1 ? problems[0].message : detail;
  return new ApiError(response.status, message, {
    problems,
    body,
    retryAfter: response.headers.get("Retry-After"),
  });
}

async function send(method, url, { body, etag, accept = "application/json", authenticated = true } = {}) {
  const headers = { Accept: accept };
  if (authenticated) {
    if (!session) throw new ApiError(401, "Log in first.");
    headers.Authorization = `Bearer ${session.token}`;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", // this module keeps ETags itself, so a 304 reaches it as a 304
      // the login alone sends and keeps this browser's device cookie (HttpOnly: no script reads it),
      // so that guesses from elsewhere never lock it out; every other request carries the token only
      credentials: authenticated ? "omit" : "same-origin",
    });
  } catch {
    throw new ApiError(0, "Cannot reach the server. Check the connection; the page retries by itself.");
  }
  if (response.status === 401 && authenticated) {
    endSession("expired");
    throw new ApiError(401, "Your session has expired. Log in again.");
  }
  if (!response.ok && response.status !== 304) throw await errorFrom(response);
  return response;
}

/** POST /auth/login: starts the session and returns its user. */
export async function logIn(email, password) {
  const response = await send("POST", "/api/v1/auth/login", {
    body: { email, password },
    authenticated: false,
  });
  const answer = await response.json();
  startSession(answer.access_token, answer.user, answer.expires_in);
  return answer.user;
}

export async function getJson(path, query) {
  return (await send("GET", withQuery(path, query))).json();
}

/** A polled route: sends the last ETag; `changed` is false on a 304 (then `data` is the last answer). */
export async function getPolled(path, query) {
  const url = withQuery(path, query);
  const last = polled.get(url);
  const response = await send("GET", url, { etag: last?.etag });
  if (response.status === 304 && last) {
    await response.text(); // nothing to read, but reading it ends the request at once
    return { data: last.data, changed: false };
  }
  const data = await response.json();
  const etag = response.headers.get("ETag");
  if (etag) polled.set(url, { etag, data });
  return { data, changed: true };
}

/** Every config, read in pages of the API's largest size (100). */
export async function listConfigs() {
  const configs = [];
  for (let skip = 0; ; skip += CONFIGS_PAGE) {
    const page = await getJson(`${ADMIN}/configs`, { skip, limit: CONFIGS_PAGE });
    configs.push(...page);
    if (page.length < CONFIGS_PAGE) return configs;
  }
}

/** A paged list: the rows, the X-Total-Count total and whether it is exact (X-Total-Count-Exact). */
export async function getPage(path, query) {
  const response = await send("GET", withQuery(path, query));
  return {
    rows: await response.json(),
    total: Number(response.headers.get("X-Total-Count") || 0),
    exact: response.headers.get("X-Total-Count-Exact") !== "false",
  };
}

export async function postJson(path, body) {
  const response = await send("POST", path, { body: body ?? {} });
  return response.status === 204 ? null : response.json();
}

export async function putJson(path, body) {
  return (await send("PUT", path, { body })).json();
}

export async function deleteResource(path) {
  await send("DELETE", path);
}

/** A file download with the token in the header: the body and the server's file name. */
export async function download(path, query, fallbackName) {
  const response = await send("GET", withQuery(path, query), { accept: "text/csv" });
  const disposition = response.headers.get("Content-Disposition") || "";
  const named = /filename="?([^";]+)"?/.exec(disposition);
  return { blob: await response.blob(), filename: named ? named[1] : fallbackName };
}
