// Building DOM nodes from parts, never from markup strings: text is always text.

/** h("tag.class#id", {attr: value, onclick: fn}, ...children) — children are nodes, strings or arrays. */
export function h(spec, attrs = {}, ...children) {
  const [, tag, rest] = /^([a-z0-9]+)(.*)$/i.exec(spec);
  const el = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A number for people: `digits` significant decimals, "–" for null. */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return value.toFixed(abs >= 100 ? 1 : digits);
}

/** A step / variant status as a coloured badge with its word (colour is never the only cue). */
export function badge(status) {
  const word = String(status || "unknown").toUpperCase();
  const kind = { OK: "ok", WRITTEN: "ok", PASS: "ok", DONE: "ok", RUNNING: "warn", FAIL: "fail", FAILED: "fail", ERROR: "fail", WARN: "warn", WARNING: "warn",
                 SKIPPED: "skipped" }[word] || "skipped";
  return h(`span.badge.${kind}`, { text: word });
}

/** A table from column headings and rows of cells; `numeric` marks right-aligned columns. */
export function table(caption, headings, rows, numeric = []) {
  return h("div.table-wrap", {},
    h("table", {},
      caption ? h("caption", { class: "muted", text: caption }) : null,
      h("thead", {}, h("tr", {}, headings.map((t, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null, text: t })))),
      h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell, i) =>
        h("td", { class: numeric.includes(i) ? "num" : null }, cell instanceof Node ? cell : fmt(cell))))))));
}

export function unavailable(what) {
  return h("p.unavailable", { text: `${what}: not available.` });
}
