// Jobs: the list of GET /v1/jobs and one job with its result.
import { ApiError, api, errorBox } from "./api.js";
import { badge, fmt, h, table } from "./dom.js";
import { jsonResult } from "./viewer.js";

const STATES = ["", "queued", "running", "done", "failed"];

function stageTimes(timings) {
  const entries = Object.entries(timings || {});
  return entries.length ? entries.map(([stage, ms]) => `${stage} ${fmt(ms, 1)} ms`).join(", ") : "–";
}

function source(job) {
  return job.source === "dimse" && job.calling_ae ? `DIMSE (${job.calling_ae})` : String(job.source || "–").toUpperCase();
}

function when(iso) {
  return iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–";
}

export async function jobsView(main, params) {
  const state = params.get("state") || "";
  main.append(h("h1", { text: "Jobs" }));
  const filter = h("select#job-state", { name: "state" }, STATES.map((s) => h("option", { value: s, selected: s === state, text: s || "any" })));
  const refresh = h("button#refresh-jobs", { type: "button", text: "Refresh" });
  const list = h("div#job-list", { "aria-live": "polite" });
  main.append(h("div.toolbar", {}, h("div.field", {}, h("label", { for: "job-state", text: "State" }), filter), refresh), list);
  const load = async () => {
    refresh.disabled = true;
    try {
      const query = new URLSearchParams({ limit: "100" });
      if (filter.value) query.set("state", filter.value);
      const { jobs } = await api(`/v1/jobs?${query}`);
      list.replaceChildren(jobs.length ? table(`${jobs.length} jobs, newest first`, ["Job", "State", "Source", "Model", "Created", "Stage times"],
        jobs.map((j) => [h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, text: String(j.id).slice(0, 12) }), badge(j.state),
          source(j), j.model, when(j.created_at), stageTimes(j.timings_ms)])) : h("p", { text: "No jobs." }));
    } catch (error) {
      list.replaceChildren(errorBox(error));
    } finally {
      refresh.disabled = false;
      list.setAttribute("data-loaded", "true");
    }
  };
  refresh.addEventListener("click", load);
  filter.addEventListener("change", load);
  await load();
}

export async function jobView(main, id) {
  main.append(h("p", {}, h("a", { href: "#/jobs", text: "← All jobs" })), h("h1", { text: `Job ${id}` }));
  const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  main.append(h("dl.facts", {}, [
    ["State", badge(job.state)], ["Model", job.model], ["Source", source(job)], ["Format", job.format || "json"],
    ["Created", when(job.created_at)], ["Started", when(job.started_at)], ["Finished", when(job.finished_at)],
    ["Attempts", `${job.attempts} of ${job.max_attempts}`], ["Stage times", stageTimes(job.timings_ms)],
    ["Export", job.export_state || "–"],
  ].flatMap(([t, v]) => [h("dt", { text: t }), h("dd", {}, v)])));
  if (job.error) main.append(errorBox(new ApiError(0, job.error.code, job.error.message, null), "The job failed."));
  if ((job.deliveries || []).length) {
    main.append(h("h2", { text: "Deliveries" }), table(null, ["Destination", "State", "Attempts"],
      job.deliveries.map((d) => [d.destination ?? "–", d.state ?? "–", d.attempts ?? "–"]), [2]));
  }
  const result = h("section#job-result", { "aria-labelledby": "job-result-title" }, h("h2#job-result-title", { text: "Result" }));
  main.append(result);
  if (job.state !== "done" || !job.result_url) {
    result.append(h("p.muted", { text: "No result yet." }));
    return;
  }
  try {
    const response = await api(job.result_url, { as: "response" });
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) result.append(jsonResult(await response.json()));
    else {
      const blob = await response.blob();
      result.append(h("a", { href: URL.createObjectURL(blob), download: `job-${id}-result`, text: `Save the result (${type}, ${blob.size} bytes)` }));
    }
    result.setAttribute("data-loaded", "true");
  } catch (error) {
    result.append(errorBox(error));
  }
}
