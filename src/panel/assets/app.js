// The Admin Panel: views over one realm's Management API. Every change is a Management API
// call with the operator's token (api.js); the panel decides nothing itself.

import * as api from "./api.js";
import {
  button,
  checks,
  el,
  field,
  lines,
  replace,
  secretBox,
  select,
  source,
  table,
  text,
  ticked,
  value,
  values,
} from "./ui.js";

const main = document.getElementById("main");
const notices = document.getElementById("notices");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

const TABS = [
  ["resource-servers", "API resources"],
  ["protected-resources", "Protected resources"],
  ["clients", "Clients"],
  ["activity", "Activity"],
];
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"];

let realms = [];
let tab = "resource-servers";
let refresh = null;

// ---- notices -------------------------------------------------------------------------

function notify(kind, ...message) {
  replace(notices, el("div", { class: "notice " + kind }, ...message));
  // Notices sit above the view: bring them into sight after a long form.
  notices.scrollIntoView({ block: "nearest" });
}

function clearNotice() {
  replace(notices);
}

/** Shows a failed call: the problem's detail and each field it names. */
function failed(e) {
  if (e instanceof api.ApiError && e.status === 401 && api.current()) {
    api.signOut();
    signIn("Your session ended (the token expired or was refused). Sign in again.");
    return;
  }
  const items = e instanceof api.ApiError ? e.errors : [];
  notify(
    "error",
    el("p", {}, e.message || String(e)),
    items.length
      ? el(
          "ul",
          {},
          items.map((x) =>
            el("li", {}, [x.entity, x.field ? `field ${x.field}` : null].filter(Boolean).join(", ") + ": " + x.message),
          ),
        )
      : null,
  );
}

/** Runs `work`, showing its failure. */
async function guarded(work) {
  try {
    await work();
  } catch (e) {
    failed(e);
  }
}

// ---- sign-in -------------------------------------------------------------------------

async function start() {
  try {
    realms = await api.realms();
  } catch (e) {
    failed(e);
    return;
  }
  signIn();
}

function signIn(message) {
  stopRefresh();
  replace(nav);
  replace(who);
  if (message) notify("error", message);
  const realm = select(
    "realm",
    realms.map((r) => r.name),
    realms[0]?.name,
  );
  const how = select("how", [
    ["client_secret_basic", "Client id and secret (HTTP Basic)"],
    ["client_secret_post", "Client id and secret (in the form)"],
    ["token", "A token (static admin token or an access token)"],
  ]);
  const id = text("client_id", "", { autocomplete: "username" });
  const secret = el("input", { type: "password", name: "secret", autocomplete: "current-password" });
  const idField = field("Client id", id);
  const secretLabel = el("span", {}, "Client secret");
  const secretField = field(secretLabel, secret);
  const sync = () => {
    const token = how.value === "token";
    idField.hidden = token;
    secretLabel.textContent = token ? "Token" : "Client secret";
  };
  how.addEventListener("change", sync);
  const form = el(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    el("h2", { id: "signin-title" }, "Sign in"),
    field("Realm", realm),
    field("Sign in with", how),
    idField,
    secretField,
    el("button", { type: "submit", class: "primary" }, "Sign in"),
    el(
      "p",
      { class: "muted" },
      "The panel asks the realm's token endpoint for a Management API token and keeps it in this page's memory only.",
    ),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const r = realms.find((x) => x.name === realm.value);
      await api.signIn(r, how.value, id.value.trim(), secret.value);
      secret.value = "";
      clearNotice();
      tab = "resource-servers";
      show();
    });
  });
  replace(main, form);
  sync();
  realm.focus();
}

function signOut() {
  api.signOut();
  clearNotice();
  signIn();
}

// ---- navigation ----------------------------------------------------------------------

function stopRefresh() {
  if (refresh) clearInterval(refresh);
  refresh = null;
}

function show(next) {
  if (next) tab = next;
  stopRefresh();
  const realm = api.current();
  replace(
    nav,
    TABS.map(([key, label]) =>
      button(label, () => {
        clearNotice();
        show(key);
      }, { "aria-current": key === tab ? "page" : null, "data-tab": key }),
    ),
  );
  replace(who, el("span", {}, "Realm ", el("strong", {}, realm.name)), button("Sign out", signOut, { class: "quiet" }));
  const views = {
    "resource-servers": resourceServers,
    "protected-resources": protectedResources,
    clients: clients,
    activity: activity,
  };
  replace(main, el("p", { class: "muted" }, "Loading…"));
  guarded(views[tab]);
}

function heading(title, ...actions) {
  return el("div", { class: "heading" }, el("h2", {}, title), el("div", { class: "actions" }, actions));
}

// ---- shared helpers ------------------------------------------------------------------

/** `"<version>"`: the ETag of a stored entity as a list shows it. */
function tagOf(entity) {
  return entity.version === null || entity.version === undefined ? null : `"${entity.version}"`;
}

/** ISO 8601 now, seconds precision (what `disabled_on` takes). */
function nowIso() {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function disabled(entity) {
  return entity.disabled_on && new Date(entity.disabled_on) <= new Date();
}

/** Disable (or enable) a stored entity by its `disabled_on`. */
function toggleButton(collection, entity, id, after) {
  const off = disabled(entity);
  return button(off ? "Enable" : "Disable", () =>
    guarded(async () => {
      await api.call("PATCH", `/${collection}/${encodeURIComponent(id)}`, {
        patch: { disabled_on: off ? null : nowIso() },
        ifMatch: tagOf(entity),
      });
      notify("ok", `${id} ${off ? "enabled" : "disabled"}.`);
      await after();
    }),
  );
}

function deleteButton(collection, entity, id, after) {
  return button(
    "Delete",
    () =>
      guarded(async () => {
        if (!confirm(`Delete ${id}?`)) return;
        await api.call("DELETE", `/${collection}/${encodeURIComponent(id)}`, { ifMatch: tagOf(entity) });
        notify("ok", `${id} deleted.`);
        await after();
      }),
    { class: "danger" },
  );
}

/**
 * Saves a form: POST to create, or PATCH with only the fields that changed and the
 * version the form was filled from. On 412 the form is filled again with the entity as it
 * now is, and the operator told.
 */
async function save(collection, id, original, etag, wanted, reopen) {
  if (!original) {
    return (await api.call("POST", `/${collection}`, { json: wanted })).body;
  }
  const patch = {};
  for (const [k, v] of Object.entries(wanted)) {
    if (JSON.stringify(original[k] ?? null) !== JSON.stringify(v ?? null)) patch[k] = v;
  }
  try {
    return (await api.call("PATCH", `/${collection}/${encodeURIComponent(id)}`, { patch, ifMatch: etag })).body;
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 412) {
      const fresh = await api.call("GET", `/${collection}/${encodeURIComponent(id)}`);
      reopen(fresh.body, fresh.etag);
      notify(
        "conflict",
        el(
          "p",
          {},
          `Someone else changed ${id} since you opened it: it is now at version ${fresh.body.version}. `,
          "Nothing was saved. The form shows the current values; make your change again.",
        ),
      );
      return null;
    }
    throw e;
  }
}

/** A form with `fields`, a submit button and a cancel button. */
function form(title, fields, submitLabel, onSubmit, onCancel) {
  const f = el(
    "form",
    { class: "card", "aria-label": title },
    el("h3", {}, title),
    fields,
    el(
      "div",
      { class: "actions" },
      el("button", { type: "submit", class: "primary" }, submitLabel),
      button("Cancel", onCancel),
    ),
  );
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(() => onSubmit(f));
  });
  return f;
}

// ---- API resources -------------------------------------------------------------------

async function resourceServers() {
  const servers = await api.all("resource-servers");
  const rows = servers.map((rs) => [
    button(rs.id, () => guarded(() => resourceServer(rs.id)), { class: "link" }),
    rs.name ?? "",
    rs.audience ?? "",
    rs.upstream ?? "",
    (rs.scopes || []).join(" "),
    disabled(rs) ? "disabled" : "enabled",
    source(rs),
    rs.source === "store"
      ? el(
          "span",
          { class: "row-actions" },
          toggleButton("resource-servers", rs, rs.id, resourceServers),
          deleteButton("resource-servers", rs, rs.id, resourceServers),
        )
      : "",
  ]);
  replace(
    main,
    heading("API resources", button("Create API resource", () => rsForm(null, null), { class: "primary" })),
    table(
      "Resource servers of this realm",
      ["Id", "Name", "Indicator (audience)", "Upstream", "Scopes", "State", "Source", ""],
      rows,
    ),
  );
}

function rsForm(rs, etag) {
  const realm = api.current();
  const f = form(
    rs ? `Edit ${rs.id}` : "Create API resource",
    [
      rs ? null : field("Id", text("id", "", { required: true }), "Letters, digits, - and _: how the API names it."),
      field("Name", text("name", rs?.name)),
      field("Indicator (audience)", text("audience", rs?.audience, { required: true }), "The aud its tokens carry."),
      field("Upstream", text("upstream", rs?.upstream, { required: true }), "Where allowed requests go."),
      field(
        "Access-token TTL",
        text("access_token_ttl", rs ? rs.access_token_ttl : "3600s"),
        "Lifetime of tokens issued for it, e.g. 3600s or 1h.",
      ),
      field(
        "Signing algorithm",
        select("signing_alg", [["", "the realm's default"], ...realm.algorithms], rs?.signing_alg ?? ""),
      ),
    ],
    rs ? "Save" : "Create",
    async (f) => {
      const wanted = {
        name: value(f, "name"),
        audience: value(f, "audience"),
        upstream: value(f, "upstream"),
        access_token_ttl: value(f, "access_token_ttl"),
        signing_alg: value(f, "signing_alg"),
      };
      if (!rs) wanted.id = value(f, "id");
      if (!rs) for (const k of Object.keys(wanted)) if (wanted[k] === null) delete wanted[k];
      const saved = await save("resource-servers", rs?.id, rs, etag, wanted, rsForm);
      if (!saved) return;
      await resourceServer(saved.id);
      if (saved.client_secret) {
        notify(
          "ok",
          el("p", {}, `${saved.id} created. Its own credentials, for introspection and revocation:`),
          el("p", {}, "client_id ", el("code", {}, saved.client_id)),
          secretBox("Client secret", saved.client_secret),
        );
      } else {
        notify("ok", `${saved.id} saved (version ${saved.version}).`);
      }
    },
    () => (rs ? resourceServer(rs.id) : resourceServers()),
  );
  replace(main, f);
  f.querySelector("input")?.focus();
}

async function resourceServer(id) {
  const [{ body: rs, etag }, resources] = await Promise.all([
    api.call("GET", `/resource-servers/${encodeURIComponent(id)}`),
    api.all("protected-resources"),
  ]);
  const stored = rs.source === "store";
  const descriptions = rs.scope_descriptions || {};
  const defaults = rs.default_scopes || [];
  const scopes = rs.scopes || [];
  const reopen = () => resourceServer(id);
  const scopeRows = scopes.map((s) => [
    el("code", {}, s),
    descriptions[s] ?? "",
    defaults.includes(s) ? "default" : "",
    stored
      ? button(
          "Remove",
          () =>
            guarded(async () => {
              await api.call("DELETE", `/resource-servers/${encodeURIComponent(id)}/scopes/${encodeURIComponent(s)}`, {
                ifMatch: etag,
              });
              notify("ok", `Scope ${s} removed.`);
              await reopen();
            }),
          { "aria-label": `Remove scope ${s}` },
        )
      : "",
  ]);
  const addScope = stored
    ? form(
        "Add a scope",
        [
          field("Scope name", text("scope", "", { required: true }), "action:entity, e.g. read:orders"),
          field("Description", text("description")),
        ],
        "Add scope",
        async (f) => {
          const name = value(f, "scope");
          await api.call("POST", `/resource-servers/${encodeURIComponent(id)}/scopes`, {
            json: { name, description: value(f, "description") ?? "" },
            ifMatch: etag,
          });
          await reopen();
          notify("ok", `Scope ${name} added.`);
        },
        () => reopen(),
      )
    : null;
  const defaultForm =
    stored && scopes.length
      ? form(
          "Default scopes",
          [checks("Granted when a client asks for none", "default_scopes", scopes, defaults)],
          "Save default scopes",
          async (f) => {
            const saved = await save("resource-servers", id, rs, etag, { default_scopes: ticked(f, "default_scopes") }, reopen);
            if (saved) {
              await reopen();
              notify("ok", "Default scopes saved.");
            }
          },
          () => reopen(),
        )
      : null;
  const mine = resources.filter((pr) => pr.resource_server === id);
  replace(
    main,
    heading(
      rs.name ? `${rs.name} (${rs.id})` : rs.id,
      stored ? button("Edit", () => rsForm(rs, etag)) : null,
      stored ? toggleButton("resource-servers", rs, id, reopen) : null,
      stored ? deleteButton("resource-servers", rs, id, resourceServers) : null,
      button("All API resources", () => guarded(resourceServers)),
    ),
    el(
      "dl",
      { class: "facts" },
      [
        ["Source", source(rs)],
        ["Indicator (audience)", rs.audience],
        ["Upstream", rs.upstream],
        ["Access-token TTL", rs.access_token_ttl ?? "the realm's"],
        ["Signing algorithm", rs.signing_alg ?? "the realm's default"],
        ["State", disabled(rs) ? `disabled since ${rs.disabled_on}` : "enabled"],
        ["Version", rs.version ?? "—"],
      ].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")]),
    ),
    table("Scopes", ["Scope", "Description", "Default", ""], scopeRows),
    addScope,
    defaultForm,
    heading(
      "Protected resources",
      button("Add protected resource", () => guarded(() => prForm(null, null, id))),
    ),
    resourceTable(mine, () => resourceServer(id)),
  );
}

// ---- protected resources -------------------------------------------------------------

function resourceTable(resources, after) {
  return table(
    "Protected resources",
    ["Id", "API resource", "Methods", "Host", "Paths", "Needs", "max_age", "Source", ""],
    resources.map((pr) => [
      pr.id,
      pr.resource_server,
      (pr.methods || []).join(", ") || "any",
      pr.host ?? "any",
      (pr.paths || []).join(" "),
      pr.auth === "none" ? "nothing (open)" : `${pr.scope_match === "any" ? "any of" : "all of"} [${(pr.scopes || []).join(" ")}]`,
      pr.max_age ?? "",
      source(pr),
      pr.source === "store"
        ? el(
            "span",
            { class: "row-actions" },
            button("Edit", () => guarded(() => prOpen(pr.id))),
            deleteButton("protected-resources", pr, pr.id, after),
          )
        : "",
    ]),
  );
}

async function prOpen(id) {
  const { body, etag } = await api.call("GET", `/protected-resources/${encodeURIComponent(id)}`);
  await prForm(body, etag, body.resource_server);
}

async function protectedResources() {
  const resources = await api.all("protected-resources");
  replace(
    main,
    heading("Protected resources", button("Create protected resource", () => guarded(() => prForm(null, null, null)), { class: "primary" })),
    matchBox(),
    resourceTable(resources, protectedResources),
  );
}

/** "Which resource matches `GET /orders/7`?", answered by the gateway's own routing. */
function matchBox() {
  const out = el("div", { class: "answer", role: "status", "aria-live": "polite" });
  const f = el(
    "form",
    { class: "card inline", "aria-label": "Which resource matches?" },
    el("h3", {}, "Which resource matches?"),
    field("Method", select("method", METHODS, "GET")),
    field("Path", text("path", "", { placeholder: "/orders/7", required: true })),
    field("Host", text("host", "", { placeholder: "any" })),
    el("button", { type: "submit" }, "Find"),
    out,
  );
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const query = { method: f.elements.method.value, path: value(f, "path") ?? "" };
      const host = value(f, "host");
      if (host) query.host = host;
      const a = (await api.call("GET", "/match", { query })).body;
      const m = a.matched;
      replace(
        out,
        m
          ? el(
              "p",
              { "data-match": m.id },
              `${a.method} ${a.normalized_path} → `,
              el("strong", {}, m.id),
              ` (API resource ${m.resource_server}, pattern ${m.pattern}) needs `,
              m.auth === "none" ? "nothing (open)" : `${m.scope_match} of [${m.scopes.join(" ")}]`,
              m.max_age !== null ? `, max_age ${m.max_age}s` : "",
              m.in_force ? "" : " — not in force now",
              `; declared in ${m.source}.`,
            )
          : el("p", { "data-match": "" }, `${a.method} ${a.normalized_path}: ${a.detail}.`),
      );
    });
  });
  return f;
}

async function prForm(pr, etag, presetServer) {
  const servers = (await api.all("resource-servers")).filter((rs) => rs.source === "store" || rs.source === "file");
  const serverIds = servers.map((rs) => rs.id);
  const chosen = pr?.resource_server ?? presetServer ?? serverIds[0];
  const scopesOf = (id) => servers.find((rs) => rs.id === id)?.scopes || [];
  const serverSelect = select("resource_server", serverIds, chosen, { required: true });
  const scopeHolder = el("div", {});
  const renderScopes = () =>
    replace(scopeHolder, checks("Required scopes", "scopes", scopesOf(serverSelect.value), pr?.scopes || []));
  serverSelect.addEventListener("change", renderScopes);
  renderScopes();
  const back = () => (presetServer && !pr ? resourceServer(presetServer) : protectedResources());
  const f = form(
    pr ? `Edit ${pr.id}` : "Create protected resource",
    [
      pr ? null : field("Id", text("id", "", { required: true })),
      field("API resource", serverSelect),
      field("Paths", lines("paths", pr?.paths), "One per line: /orders, /orders/*, /orders/**"),
      checks("Methods (none ticked: any)", "methods", METHODS, pr?.methods || []),
      field("Host", text("host", pr?.host), "Empty: any host."),
      field(
        "Access",
        select(
          "auth",
          [
            ["token", "a bearer token (below: what it needs)"],
            ["none", "nothing: open to everyone (health checks, docs)"],
          ],
          pr?.auth ?? "token",
        ),
        "Open resources are still routed, forwarded and logged; no token is checked.",
      ),
      scopeHolder,
      field(
        "Scopes needed",
        select(
          "scope_match",
          [
            ["all", "all of them"],
            ["any", "any one of them"],
          ],
          pr?.scope_match ?? "all",
        ),
      ),
      field("max_age", text("max_age", pr?.max_age ?? ""), "How old the authentication may be, e.g. 300s or 5m. Empty: no limit."),
      field("max_token_lifetime", text("max_token_lifetime", pr?.max_token_lifetime ?? ""), "Longest token lifetime accepted, e.g. 1h. Empty: no limit."),
      field("Valid from", text("valid_from", pr?.valid_from, { placeholder: "2026-01-01T00:00:00Z" })),
      field("Disabled on", text("disabled_on", pr?.disabled_on, { placeholder: "2027-01-01T00:00:00Z" })),
    ],
    pr ? "Save" : "Create",
    async (f) => {
      const methods = ticked(f, "methods");
      const wanted = {
        resource_server: serverSelect.value,
        paths: values(f, "paths"),
        methods: methods.length ? methods : null,
        host: value(f, "host"),
        scopes: ticked(f, "scopes"),
        scope_match: f.elements.scope_match.value,
        max_age: value(f, "max_age"),
        max_token_lifetime: value(f, "max_token_lifetime"),
        valid_from: value(f, "valid_from"),
        disabled_on: value(f, "disabled_on"),
      };
      if (f.elements.auth.value === "none") {
        // An open resource checks no token: what a token needs is refused beside it.
        Object.assign(wanted, { auth: "none", scopes: null, scope_match: null, max_age: null, max_token_lifetime: null });
      } else {
        wanted.auth = null;
      }
      if (!pr) {
        wanted.id = value(f, "id");
        for (const k of Object.keys(wanted)) if (wanted[k] === null) delete wanted[k];
      }
      const saved = await save("protected-resources", pr?.id, pr, etag, wanted, (b, e) => prForm(b, e, presetServer));
      if (!saved) return;
      await back();
      notify("ok", `${saved.id} saved (version ${saved.version}).`);
    },
    back,
  );
  replace(main, f);
  f.querySelector("input")?.focus();
}

// ---- clients -------------------------------------------------------------------------

async function clients() {
  const [list, servers] = await Promise.all([api.all("clients"), api.all("resource-servers")]);
  const rows = list.map((c) => [
    el("code", {}, c.client_id),
    c.name ?? "",
    c.token_endpoint_auth_method ?? "",
    (c.scopes || []).join(" "),
    (c.resource_servers || []).join(" "),
    disabled(c) ? "disabled" : "enabled",
    source(c),
    c.source === "store"
      ? el(
          "span",
          { class: "row-actions" },
          button("Edit", () => clientForm(c, tagOf(c), servers)),
          c.token_endpoint_auth_method === "private_key_jwt"
            ? null
            : button("Regenerate secret", () =>
                guarded(async () => {
                  if (!confirm(`Replace ${c.client_id}'s secret? The current one stops working.`)) return;
                  const a = await api.call("POST", `/clients/${encodeURIComponent(c.client_id)}/secret`, {
                    ifMatch: tagOf(c),
                  });
                  await clients();
                  notify(
                    "ok",
                    el("p", {}, "New secret of ", el("code", {}, c.client_id), ":"),
                    secretBox("Client secret", a.body.client_secret),
                  );
                }),
              ),
          toggleButton("clients", c, c.client_id, clients),
          deleteButton("clients", c, c.client_id, clients),
        )
      : "",
  ]);
  replace(
    main,
    heading("Clients", button("Create client", () => clientForm(null, null, servers), { class: "primary" })),
    table("Clients of this realm", ["Client id", "Name", "Authentication", "Scopes", "API resources", "State", "Source", ""], rows),
  );
}

function clientForm(c, etag, servers) {
  const allScopes = [...new Set(servers.flatMap((rs) => rs.scopes || []))].sort();
  const method = select("token_endpoint_auth_method", AUTH_METHODS, c?.token_endpoint_auth_method ?? "client_secret_basic", {
    disabled: Boolean(c),
  });
  const jwksUri = field("JWKS URL (private_key_jwt)", text("jwks_uri", c?.jwks_uri));
  const sync = () => (jwksUri.hidden = method.value !== "private_key_jwt");
  method.addEventListener("change", sync);
  const f = form(
    c ? `Edit ${c.client_id}` : "Create client",
    [
      c ? null : field("Client id", text("client_id"), "Empty: one is generated."),
      field("Name", text("name", c?.name)),
      field("Authentication", method),
      jwksUri,
      checks("Scopes it may get", "scopes", allScopes, c?.scopes || []),
      checks("API resources it may get tokens for", "resource_servers", servers.map((rs) => rs.id), c?.resource_servers || []),
    ],
    c ? "Save" : "Create",
    async (f) => {
      const wanted = {
        name: value(f, "name"),
        scopes: ticked(f, "scopes"),
        resource_servers: ticked(f, "resource_servers"),
      };
      if (!c) {
        wanted.client_id = value(f, "client_id");
        wanted.token_endpoint_auth_method = method.value;
        if (method.value === "private_key_jwt") wanted.jwks_uri = value(f, "jwks_uri");
        for (const k of Object.keys(wanted)) if (wanted[k] === null) delete wanted[k];
      }
      const saved = await save("clients", c?.client_id, c, etag, wanted, (b, e) => clientForm(b, e, servers));
      if (!saved) return;
      await clients();
      notify(
        "ok",
        el("p", {}, c ? "Saved " : "Created ", el("code", { "data-client-id": saved.client_id }, saved.client_id), "."),
        saved.client_secret ? secretBox("Client secret", saved.client_secret) : null,
      );
    },
    () => clients(),
  );
  replace(main, f);
  sync();
  f.querySelector("input")?.focus();
}

// ---- activity ------------------------------------------------------------------------

async function activity() {
  const holder = el("div", {});
  replace(main, heading("Activity", button("Refresh", () => guarded(draw))), holder);
  async function draw() {
    const [a, changes] = await Promise.all([
      api.call("GET", "/activity").then((r) => r.body),
      api.call("GET", "/changes", { query: { newest: "20" } }).then((r) => r.body),
    ]);
    replace(
      holder,
      chart(a),
      activityTable(a),
      table(
        "Last management changes",
        ["Version", "When", "Who", "What", "Action"],
        changes.items.map((c) => [c.version, new Date(c.at * 1000).toLocaleString(), c.actor, `${c.kind} ${c.id}`, c.action]),
      ),
    );
  }
  await draw();
  refresh = setInterval(() => guarded(draw), 5000);
}

/** Allowed and refused requests per interval: a stacked bar each. */
function chart(a) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    return n;
  };
  const bars = a.buckets.map((b) => {
    let allowed = 0;
    let refused = 0;
    for (const outcomes of Object.values(b.counts)) {
      for (const [outcome, n] of Object.entries(outcomes)) {
        if (outcome === "allowed") allowed += n;
        else refused += n;
      }
    }
    return { allowed, refused, to: b.to };
  });
  const width = 600;
  const height = 120;
  const max = Math.max(1, ...bars.map((b) => b.allowed + b.refused));
  // A fixed slot per interval of the window, newest on the right: the time axis never stretches.
  const slots = Math.max(bars.length, a.window_buckets || bars.length, 1);
  const w = width / slots;
  const offset = slots - bars.length;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "chart", role: "img" });
  const total = bars.reduce((s, b) => s + b.allowed + b.refused, 0);
  const title = svg("title", {});
  title.textContent = `Requests per ${a.interval_seconds} s over the last ${Math.round((slots * a.interval_seconds) / 60)} minutes: ${total} in all`;
  root.append(title);
  bars.forEach((b, i) => {
    const ha = (b.allowed / max) * height;
    const hr = (b.refused / max) * height;
    const x = (offset + i) * w + 1;
    root.append(svg("rect", { x, y: height - ha, width: Math.max(w - 2, 1), height: ha, class: "allowed" }));
    root.append(svg("rect", { x, y: height - ha - hr, width: Math.max(w - 2, 1), height: hr, class: "refused" }));
  });
  return el(
    "figure",
    { class: "card" },
    root,
    el(
      "figcaption",
      {},
      el("span", { class: "key allowed" }, "allowed"),
      " ",
      el("span", { class: "key refused" }, "refused"),
      ` — this gateway's requests per ${a.interval_seconds} s over ${Math.round((slots * a.interval_seconds) / 60)} minutes (highest bar: ${max})`,
    ),
  );
}

function activityTable(a) {
  const rows = [];
  for (const [server, outcomes] of Object.entries(a.totals)) {
    const allowed = outcomes.allowed ?? 0;
    const refusals = Object.entries(outcomes).filter(([o]) => o !== "allowed");
    const refused = refusals.reduce((s, [, n]) => s + n, 0);
    rows.push([server, allowed, refused, refusals.map(([o, n]) => `${o} ${n}`).join(", ")]);
  }
  return table("Requests per API resource (last minutes)", ["API resource", "Allowed", "Refused", "Refusal reasons"], rows);
}

start();
