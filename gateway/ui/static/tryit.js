// Try it: pick a model, choose or drop DICOM files (or a ZIP), see the answer.
import { api, errorBox } from "./api.js";
import { h } from "./dom.js";
import { loadCatalog } from "./models.js";
import { probabilities, sliceViewer } from "./viewer.js";

const SEGMENTATION = /segment/i;

/** The request body for the chosen files: one ZIP, one instance, or several as form data. */
export function bodyOf(files) {
  if (files.length === 1 && /\.zip$/i.test(files[0].name)) return { body: files[0], headers: { "Content-Type": "application/zip" } };
  if (files.length === 1) return { body: files[0], headers: { "Content-Type": "application/dicom" } };
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  return { body: form, headers: {} };  // the browser writes multipart/form-data with its boundary
}

function predictUrl(model, format) {
  return `/v1/models/${encodeURIComponent(model)}/predict?format=${format}`;
}

function filenameOf(response, fallback) {
  const match = /filename="?([^";]+)"?/i.exec(response.headers.get("content-disposition") || "");
  return match ? match[1] : fallback;
}

/** Buttons that re-send the same files as NIfTI / SEG / SR and offer the answer as a download. */
function downloads(model, files) {
  const status = h("p.muted#download-status", { "aria-live": "polite" });
  const links = h("div.downloads");
  const button = (format, label, ext) => h("button.secondary", {
    type: "button", "data-format": format,
    onclick: async (event) => {
      const btn = event.currentTarget;
      btn.disabled = true;
      status.textContent = `Making ${label}…`;
      try {
        const { body, headers } = bodyOf(files);
        const response = await api(predictUrl(model, format), { method: "POST", body, headers, as: "response" });
        const blob = await response.blob();
        const name = filenameOf(response, `${model}.${ext}`);
        const link = h("a", { href: URL.createObjectURL(blob), download: name, "data-format": format, text: `Save ${label} (${name})` });
        links.append(link);
        status.textContent = `${label} ready.`;
        link.click();
      } catch (error) {
        status.replaceChildren(errorBox(error, `${label} could not be made.`));
      } finally {
        btn.disabled = false;
      }
    },
  }, `Download ${label}`);
  return h("section", { "aria-labelledby": "dl-title" }, h("h3#dl-title", { text: "Downloads" }),
    h("div.downloads", {}, button("nifti", "NIfTI", "nii.gz"), button("seg", "DICOM SEG", "dcm"), button("sr", "DICOM SR", "dcm")),
    links, status);
}

export async function tryView(main) {
  main.append(h("h1", { text: "Try it" }));
  const models = await loadCatalog();
  const usable = models.filter((m) => m.servable !== false);
  const select = h("select#model-select", { name: "model" }, usable.map((m) =>
    h("option", { value: m.name, text: `${m.name}${m.detail?.task ? ` (${m.detail.task})` : ""}` })));
  const input = h("input#file-input", { type: "file", multiple: true, accept: ".dcm,.zip,application/dicom,application/zip,*/*" });
  const chosen = h("p.muted#file-list", { "aria-live": "polite", text: "No files chosen." });
  let files = [];
  const setFiles = (list) => {
    files = [...list];
    chosen.textContent = files.length ? `${files.length} file${files.length > 1 ? "s" : ""}: ${files.slice(0, 3).map((f) => f.name).join(", ")}${files.length > 3 ? ", …" : ""}` : "No files chosen.";
  };
  input.addEventListener("change", () => setFiles(input.files));
  const drop = h("label.drop", { for: "file-input" },
    h("span", { text: "DICOM files or a ZIP: choose, or drop them here" }), h("br"), input);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setFiles(e.dataTransfer.files); });
  const run = h("button#run", { type: "submit", text: "Run model" });
  const result = h("section#result", { "aria-live": "polite", "aria-label": "Result" });
  const form = h("form#try-form", {},
    h("div.field", {}, h("label", { for: "model-select", text: "Model" }), select),
    h("div.field", {}, drop, chosen), run);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!files.length) { result.replaceChildren(h("p.error", { role: "alert", text: "Choose at least one file first." })); return; }
    const model = models.find((m) => m.name === select.value);
    const segmentation = SEGMENTATION.test(model?.detail?.task || "");
    run.disabled = true;
    result.replaceChildren(h("p.muted", { text: "Running…" }));
    result.removeAttribute("data-state");
    try {
      const { body, headers } = bodyOf(files);
      const answer = await api(predictUrl(select.value, segmentation ? "viewer" : "json"), { method: "POST", body, headers });
      result.replaceChildren(h("h2", { text: `Answer of ${select.value}` }),
        ...(segmentation ? [sliceViewer(answer), downloads(select.value, files)] : [probabilities(answer)]));
      result.setAttribute("data-state", "done");
    } catch (error) {
      result.replaceChildren(errorBox(error, "The model could not answer."));
      result.setAttribute("data-state", "error");
    } finally {
      run.disabled = false;
    }
  });
  main.append(form, result);
}
