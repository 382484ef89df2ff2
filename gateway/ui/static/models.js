// Models: the catalog, one model's card, its export report and its drift over the last hour.
import { api, errorBox, isUnavailable } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { badge, fmt, h, table, unavailable } from "./dom.js";

const enc = encodeURIComponent;

/** The catalog with each model's details (a model whose details fail still shows its row). */
export async function loadCatalog() {
  const { models } = await api("/v1/models");
  const details = await Promise.allSettled(models.map((m) => api(`/v1/models/${enc(m.name)}`)));
  return models.map((m, k) => ({ ...m, detail: details[k].status === "fulfilled" ? details[k].value : null }));
}

/** The catalog's models whose names extend `name` (e.g. ct_nodule_segmenter_int8). */
function variantsOf(name, models) {
  return models.filter((m) => m.name.startsWith(`${name}_`)).map((m) => m.name);
}

function modalities(detail) {
  const inputs = (detail?.inputs || []).map((i) => [i.name, i.modality, Array.isArray(i.shape) ? `[${i.shape.join(", ")}]` : ""].filter(Boolean).join(" "));
  return inputs.join("; ") || "–";
}

function labelsOf(detail) {
  const labels = detail?.labels;
  if (!labels) return "–";
  if (Array.isArray(labels)) return labels.map((l) => (typeof l === "object" ? l.label ?? l.name ?? JSON.stringify(l) : l)).join(", ");
  return Object.entries(labels).map(([k, v]) => (typeof v === "object" ? `${k}` : `${k}: ${v}`)).join(", ");
}

function readiness(model) {
  if (model.servable === false) return [badge("FAIL"), ` not servable: ${model.reason || ""}`];
  const ready = model.detail?.ready ?? String(model.state).toUpperCase() === "READY";
  return [badge(ready ? "OK" : "WARN"), ready ? " ready" : ` ${model.state || "not ready"}`];
}

function facts(pairs) {
  return h("dl.facts", {}, pairs.flatMap(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]));
}

function modelFacts(model, models) {
  const d = model.detail;
  return facts([
    ["Task", d?.task || "–"],
    ["Version", model.version || "–"],
    ["Readiness", readiness(model)],
    ["Inputs", modalities(d)],
    ["Labels", labelsOf(d)],
    ["Variants", variantsOf(model.name, models).join(", ") || "–"],
  ]);
}

export async function catalogView(main) {
  main.append(h("h1", { text: "Models" }));
  const models = await loadCatalog();
  if (!models.length) { main.append(h("p", { text: "No models in the repository." })); return; }
  main.append(h("ul.cards", { "aria-label": "Models" }, models.map((m) =>
    h("li.card", { "data-model": m.name },
      h("h2", {}, h("a", { href: `#/models/${enc(m.name)}`, text: m.name })),
      m.detail?.description ? h("p.muted", { text: m.detail.description }) : null,
      modelFacts(m, models)))));
}

function summary(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "object") return String(value);
  const text = Array.isArray(value) ? value.map(summary).join(", ")
    : Object.entries(value).filter(([, v]) => v !== null && v !== false && v !== "").map(([k, v]) => `${k}: ${summary(v)}`).join(", ");
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}

export async function modelView(main, name) {
  const models = await loadCatalog();
  const model = models.find((m) => m.name === name) || { name, detail: await api(`/v1/models/${enc(name)}`) };
  const d = model.detail || {};
  main.append(h("p", {}, h("a", { href: "#/models", text: "← All models" })),
    h("h1", { text: name }),
    d.description ? h("p", { text: d.description }) : null,
    modelFacts(model, models));
  const pre = Object.fromEntries(Object.entries(d.preprocessing || {}).filter(([, v]) =>
    v !== null && v !== undefined && !(typeof v === "object" && !Object.keys(v).length)));
  main.append(h("h2", { text: "Preprocessing" }),
    Object.keys(pre).length ? facts(Object.entries(pre).map(([k, v]) => [k, summary(v)])) : unavailable("Preprocessing"));
  const report = h("section#report", { "aria-labelledby": "report-title" }, h("h2#report-title", { text: "Export report" }), h("p.muted", { text: "Loading…" }));
  const drift = h("section#drift", { "aria-labelledby": "drift-title" }, h("h2#drift-title", { text: "Drift, last hour" }), h("p.muted", { text: "Loading…" }));
  main.append(report, drift);
  await Promise.all([fill(report, () => reportView(name), "Export report"), fill(drift, () => driftView(name), "Drift scores")]);
}

/** Replace a section's body by what `build` makes, "not available" on a 404/422, or the error. */
async function fill(section, build, what) {
  const heading = section.firstChild;
  let body;
  try { body = await build(); } catch (error) { body = isUnavailable(error) ? unavailable(what) : errorBox(error); }
  section.replaceChildren(heading, ...[body].flat());
  section.setAttribute("data-loaded", "true");
}

function variantLabel(v) {
  return [v.runtime, v.precision].filter(Boolean).join(" ") || v.name || v.model_name || "variant";
}

async function reportView(name) {
  const report = await api(`/v1/models/${enc(name)}/report`);
  const out = [];
  const steps = report.steps || [];
  out.push(h("h3", { text: "Steps" }), table(null, ["Step", "Status", "Detail", "Seconds"],
    steps.map((st) => [st.name, badge(st.status), h("span", { text: summary(st.detail) }), st.seconds]), [3]));
  const variants = report.variants || [];
  if (variants.length) {
    out.push(h("h3", { text: "Difference against PyTorch" }), table(null, ["Variant", "Status", "Output", "Max abs", "Label disagreement", "Decided by"],
      variants.flatMap((v) => ((v.max_difference || []).length ? v.max_difference : [{}]).map((d) =>
        [variantLabel(v), badge(v.status), d.name ?? "–", d.max_abs, d.label_disagreement, h("span", { text: d.decided_by || v.reason || "–" })])), [3, 4]));
    const written = variants.filter((v) => v.status !== "skipped" && v.status !== "SKIPPED");
    const metricKeys = [...new Set(written.flatMap((v) => Object.keys(v.clinical_metrics || {})).filter((k) => !k.includes("[")))];
    if (!metricKeys.length && written.some((v) => typeof v.metric === "number")) metricKeys.push("metric");
    const metricOf = (v, k) => (k === "metric" ? v.metric : v.clinical_metrics?.[k] ?? null);
    out.push(h("h3", { text: "Metrics per variant" }), table(null, ["Variant", "Status", ...metricKeys, "Drop"],
      variants.map((v) => [variantLabel(v), badge(v.status), ...metricKeys.map((k) => metricOf(v, k)), v.metric_drop]),
      metricKeys.map((_, i) => i + 2).concat([metricKeys.length + 2])));
    out.push(h("div.charts", {}, metricKeys.map((k) => h("figure", {}, h("figcaption", { text: `${k} per variant` }),
      barChart(`${k} per variant`, written.map((v) => ({ label: variantLabel(v), value: metricOf(v, k) })))))));
    out.push(h("h3", { text: "Latency per variant" }), table(null, ["Variant", "p50 ms (batch 1)", "p99 ms (batch 1)", "Throughput /s (batch 8)"],
      variants.map((v) => [variantLabel(v), v.latency_ms_p50_batch1, v.latency_ms_p99_batch1, v.throughput_per_s_batch8]), [1, 2, 3]));
    out.push(h("div.charts", {},
      h("figure", {}, h("figcaption", { text: "Latency p50 per variant (ms, batch 1)" }),
        barChart("Latency p50 per variant, milliseconds at batch 1", written.map((v) => ({ label: variantLabel(v), value: v.latency_ms_p50_batch1 })), { unit: " ms" })),
      h("figure", {}, h("figcaption", { text: "Latency p99 per variant (ms, batch 1)" }),
        barChart("Latency p99 per variant, milliseconds at batch 1", written.map((v) => ({ label: variantLabel(v), value: v.latency_ms_p99_batch1 })), { unit: " ms" }))));
  }
  if ((report.warnings || []).length) {
    out.push(h("h3", { text: "Warnings" }), h("ul", {}, report.warnings.map((w) => h("li", { text: summary(w) }))));
  }
  return out;
}

async function driftView(name) {
  const drift = await api(`/v1/models/${enc(name)}/drift`);
  const features = Object.entries(drift.features || {});
  const out = [h("p", { text: `${drift.window_samples} requests in the window; scores are published from ${drift.min_samples}. PSI above 0.25 is significant drift.` })];
  const stats = [...new Set(features.flatMap(([, f]) => Object.keys(f || {})))];
  if (features.length) out.push(table("Current scores", ["Feature", ...stats], features.map(([n, f]) => [n, ...stats.map((k) => f?.[k] ?? null)]), stats.map((_, i) => i + 1)));
  const history = drift.history || [];
  if (!history.length) {
    out.push(h("p.unavailable", { text: "No traffic observed in the last hour." }));
    return out;
  }
  const names = [...new Set(history.flatMap((p) => Object.keys(p.scores || {})))];
  const series = names.map((n) => ({ name: n, points: history.map((p) => ({ t: new Date(p.at), y: p.scores?.[n]?.psi ?? null })) }));
  out.push(h("figure", {}, h("figcaption", { text: "PSI per feature over the last hour" }),
    lineChart("PSI per feature over the last hour", series, { bands: [{ y: 0.25, label: "0.25 significant" }] })));
  return out;
}

