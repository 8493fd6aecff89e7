// The panel's one door to the gateway: the realm's token endpoint and its Management API.
// The operator's token lives in this module's memory only: never in localStorage,
// sessionStorage or a cookie. Reloading the page or signing out forgets it.

let session = null;

/** A refusal from the Management API or the token endpoint, with what it said. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    const problem = body && typeof body === "object" ? body : {};
    super(problem.detail || problem.error_description || problem.title || problem.error || fallback);
    this.status = status;
    this.problem = problem;
  }

  /** `[{field, entity, message}]` of an RFC 9457 problem. */
  get errors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

/** The realms this gateway offers, and where their endpoints are. */
export async function realms() {
  const r = await fetch("/admin/config.json", { cache: "no-store", credentials: "omit" });
  if (!r.ok) throw new ApiError(r.status, null, "the gateway did not describe its realms");
  return (await r.json()).realms;
}

async function body(r) {
  const text = await r.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}

/**
 * Signs in to `realm`: with a client's id and secret at the realm's token endpoint
 * (`client_secret_basic` or `client_secret_post`), or with a bearer token given as is
 * (the static admin token, or an access token obtained elsewhere), which is then tried.
 */
export async function signIn(realm, how, id, secret) {
  session = null;
  let token;
  let expiresAt = null;
  if (how === "token") {
    token = secret.trim();
    if (!token) throw new ApiError(400, null, "enter a token");
  } else {
    if (!realm.token_endpoint) {
      throw new ApiError(400, null, "this realm has no embedded issuer: sign in with a token");
    }
    const form = new URLSearchParams({ grant_type: "client_credentials", resource: realm.audience });
    const headers = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
    if (how === "client_secret_post") {
      form.set("client_id", id);
      form.set("client_secret", secret);
    } else {
      // RFC 6749 § 2.3.1: each part form-urlencoded before base64.
      const enc = (s) => encodeURIComponent(s).replace(/%20/g, "+");
      headers.authorization = "Basic " + btoa(unescape(encodeURIComponent(enc(id) + ":" + enc(secret))));
    }
    const r = await fetch(realm.token_endpoint, {
      method: "POST",
      headers,
      body: form,
      cache: "no-store",
      credentials: "omit",
    });
    const answer = await body(r);
    if (!r.ok) throw new ApiError(r.status, answer, "sign-in refused");
    token = answer.access_token;
    if (answer.expires_in) expiresAt = Date.now() + answer.expires_in * 1000;
  }
  session = { realm, token, expiresAt };
  try {
    // Proves the token is one for this realm's Management API before anything is shown.
    await call("GET", "/openapi.json");
  } catch (e) {
    session = null;
    throw e;
  }
}

/** Forgets the token. */
export function signOut() {
  session = null;
}

/** The signed-in realm, or null. */
export function current() {
  return session ? session.realm : null;
}

/** Seconds the token has left, or null when unknown. */
export function secondsLeft() {
  if (!session || session.expiresAt === null) return null;
  return Math.max(0, Math.round((session.expiresAt - Date.now()) / 1000));
}

/**
 * One Management API call: `method` on `path` below the realm's API, with a JSON body and
 * `If-Match` when given. Resolves to `{status, etag, body}`; rejects with an ApiError.
 */
export async function call(method, path, { json, patch, ifMatch, query } = {}) {
  if (!session) throw new ApiError(401, null, "signed out");
  const headers = { authorization: "Bearer " + session.token, accept: "application/json" };
  let payload;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (patch !== undefined) {
    headers["content-type"] = "application/merge-patch+json";
    payload = JSON.stringify(patch);
  }
  if (ifMatch) headers["if-match"] = ifMatch;
  let url = session.realm.api + path;
  if (query) url += "?" + new URLSearchParams(query).toString();
  const r = await fetch(url, { method, headers, body: payload, cache: "no-store", credentials: "omit" });
  const answer = await body(r);
  if (!r.ok) throw new ApiError(r.status, answer, `${method} ${path}: ${r.status}`);
  return { status: r.status, etag: r.headers.get("etag"), body: answer };
}

/** Every item of a collection, page by page. */
export async function all(collection) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 100; i++) {
    const query = { limit: "200" };
    if (cursor) query.cursor = cursor;
    const page = (await call("GET", "/" + collection, { query })).body;
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}
