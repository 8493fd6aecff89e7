// DOM helpers: every node is built with createElement and textContent, never from HTML
// strings, so nothing an entity holds can become markup or script.

let ids = 0;

/** `tag` with `props` (attributes; `on*` functions become listeners) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "value") node.value = v;
    else if (k === "checked") node.checked = Boolean(v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces `node`'s children. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** A labelled form field around `input` (given an id when it has none). */
export function field(label, input, hint) {
  if (!input.id) input.id = "f" + ++ids;
  const hintNode = hint ? el("small", { id: input.id + "-hint", class: "hint" }, hint) : null;
  if (hintNode) input.setAttribute("aria-describedby", hintNode.id);
  return el("div", { class: "field" }, el("label", { for: input.id }, label), input, hintNode);
}

/** A text input named `name`. */
export function text(name, value = "", props = {}) {
  return el("input", { type: "text", name, value: value ?? "", autocomplete: "off", spellcheck: "false", ...props });
}

/** A multi-line input of one value per line. */
export function lines(name, values = [], props = {}) {
  return el("textarea", { name, rows: 3, spellcheck: "false", ...props }, (values || []).join("\n"));
}

/** A select of `options` (`[value, label]` pairs or plain values). */
export function select(name, options, value, props = {}) {
  return el(
    "select",
    { name, ...props },
    options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return el("option", { value: v, selected: v === value }, label);
    }),
  );
}

/** A fieldset of checkboxes named `name`, one per option, `checked` ticked. */
export function checks(legend, name, options, checked = []) {
  return el(
    "fieldset",
    { class: "checks" },
    el("legend", {}, legend),
    options.length === 0 ? el("p", { class: "muted" }, "none defined") : null,
    options.map((o) => {
      const id = "c" + ++ids;
      return el(
        "span",
        { class: "check" },
        el("input", { type: "checkbox", id, name, value: o, checked: checked.includes(o) }),
        el("label", { for: id }, o),
      );
    }),
  );
}

/** The ticked values of the checkboxes named `name` in `form`. */
export function ticked(form, name) {
  return [...form.querySelectorAll(`input[type=checkbox][name="${name}"]`)].filter((c) => c.checked).map((c) => c.value);
}

/** The value of `form`'s field `name`, trimmed; null when empty. */
export function value(form, name) {
  const v = form.elements[name]?.value?.trim();
  return v ? v : null;
}

/** The non-empty lines of `form`'s field `name`. */
export function values(form, name) {
  return (form.elements[name]?.value || "")
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A table with a header row of `columns` and `rows` (arrays of cells). */
export function table(caption, columns, rows) {
  const t = el(
    "table",
    {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)))),
    el(
      "tbody",
      {},
      rows.length === 0
        ? el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, "nothing yet"))
        : rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))),
    ),
  );
  // Wide tables scroll inside their frame on a narrow window.
  return el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, t);
}

/** A button running `action` (its errors shown by `onError`). */
export function button(label, action, props = {}) {
  return el("button", { type: "button", onclick: action, ...props }, label);
}

/** A badge saying where an entity is declared. */
export function source(entity) {
  return entity.source === "file"
    ? el("span", { class: "badge file", title: "declared in a configuration file: read-only here" }, "file (read-only)")
    : el("span", { class: "badge store" }, "store");
}

/** A secret shown once, with a copy button. */
export function secretBox(label, secret) {
  const input = el("input", { type: "text", readonly: true, value: secret, class: "secret", "data-secret": "" });
  const status = el("span", { class: "copied", role: "status" });
  const copy = button("Copy", async () => {
    try {
      await navigator.clipboard.writeText(secret);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    status.textContent = "copied";
  });
  return el(
    "div",
    { class: "once", role: "alert" },
    field(label, input, "Shown once: it is stored only as a hash and cannot be shown again."),
    copy,
    status,
  );
}
