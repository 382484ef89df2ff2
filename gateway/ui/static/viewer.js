// Results as the page shows them: the slice viewer of format=viewer, probabilities as bars,
// the measurements table.
import { barChart, swatch } from "./charts.js";
import { h, table } from "./dom.js";

/** The slice viewer: the gateway's rendered slice (overlay burnt in), a labelled slider, the legend. */
export function sliceViewer(doc) {
  const slices = doc.slices || [];
  const start = Math.max(0, slices.findIndex((s) => s.index === doc.default_slice));
  const total = doc.shape ? doc.shape[0] : slices.length;
  const img = h("img#slice-image", { alt: "", width: 512, height: 512 });
  const slider = h("input#slice-slider", { type: "range", min: 0, max: Math.max(0, slices.length - 1), step: 1, value: start });
  const status = h("output#slice-status", { for: "slice-slider", "aria-live": "polite" });
  const show = (k) => {
    const slice = slices[k];
    if (!slice) return;
    img.src = `data:image/png;base64,${slice.png}`;
    img.alt = `Slice ${slice.index + 1} of ${total} with the label overlay; ${slice.foreground_voxels} foreground voxels`;
    img.setAttribute("data-index", slice.index);
    const text = `Slice ${slice.index + 1} of ${total}`;
    slider.setAttribute("aria-valuetext", text);
    status.textContent = `${text} · ${slice.foreground_voxels} foreground voxels`;
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  show(start);
  const legend = h("ul.legend", { "aria-label": "Labels" }, (doc.labels || []).map((l) =>
    h("li", {}, swatch(l.color), `${l.label} (${l.value})`)));
  return h("div.viewer", {},
    h("div", {}, img,
      h("div.field", {}, h("label", { for: "slice-slider", text: "Slice" }), slider, status),
      doc.stride && doc.stride > 1 ? h("p.muted", { text: `Every ${doc.stride}th slice is shown.` }) : null),
    h("div", {}, h("h3", { text: "Labels" }), legend,
      h("h3", { text: "Measurements" }), measurementsTable(doc.measurements)));
}

/** Per-label measurements: volume (mL), components, largest diameter (mm). */
export function measurementsTable(measurements) {
  if (!measurements || !measurements.length) return h("p.muted", { text: "No measurements." });
  return h("div#measurements", {}, table(null, ["Label", "Voxels", "Volume (mL)", "Components", "Largest diameter (mm)"],
    measurements.map((m) => [m.label, m.voxels, m.volume_ml, m.components, m.largest_diameter_mm]), [1, 2, 3, 4]));
}

/** Probabilities of a classification answer as bars (per instance when there are several). */
export function probabilities(answer) {
  const groups = answer.instances?.length
    ? answer.instances.map((inst, k) => ({ name: `Instance ${k + 1}`, probs: inst.probabilities || [] }))
    : [{ name: answer.model, probs: answer.probabilities || [] }];
  return h("div#probabilities", {},
    answer.top_label ? h("p", {}, "Top label: ", h("strong#top-label", { text: answer.top_label })) : null,
    h("div.charts", {}, groups.map((g) => h("figure", {}, h("figcaption", { text: `Probabilities — ${g.name}` }),
      barChart(`Probabilities, ${g.name}`, g.probs.map((p) => ({ label: p.label, value: p.probability })), { max: 1 })))),
    table(null, ["Label", "Probability"], groups.flatMap((g) => g.probs.map((p) => [p.label, p.probability])), [1]));
}

/** Any JSON answer: probabilities, measurements, else the document itself. */
export function jsonResult(answer) {
  if (answer && Array.isArray(answer.slices)) return sliceViewer(answer);
  if (answer && (answer.probabilities || answer.instances?.some?.((i) => i.probabilities))) return probabilities(answer);
  if (answer && answer.measurements) return measurementsTable(answer.measurements);
  return h("pre", { text: JSON.stringify(answer, null, 2) });
}
