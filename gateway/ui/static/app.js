// The page's router: #/models, #/models/{name}, #/try, #/jobs, #/jobs/{id}.
import { errorBox } from "./api.js";
import { h } from "./dom.js";
import { jobView, jobsView } from "./jobs.js";
import { catalogView, modelView } from "./models.js";
import { tryView } from "./tryit.js";

const main = document.getElementById("main");
let rendering = 0;

async function route() {
  const hash = location.hash || "#/models";
  if (!hash.startsWith("#/")) return;  // an in-page anchor, not a view
  const [path, query = ""] = hash.slice(2).split("?");
  const [view, ...rest] = path.split("/").map(decodeURIComponent);
  const params = new URLSearchParams(query);
  const token = ++rendering;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === (view || "models")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const target = h("div.view", { "data-view": view || "models" });
  main.replaceChildren(target);
  main.removeAttribute("data-ready");
  try {
    if (view === "try") await tryView(target);
    else if (view === "jobs" && rest[0]) await jobView(target, rest.join("/"));
    else if (view === "jobs") await jobsView(target, params);
    else if (rest[0]) await modelView(target, rest.join("/"));
    else await catalogView(target);
  } catch (error) {
    if (token === rendering) target.append(errorBox(error));
  }
  if (token === rendering) {
    main.setAttribute("data-ready", "true");
    document.title = `${target.querySelector("h1")?.textContent || "medserve"} · medserve`;
  }
}

window.addEventListener("hashchange", route);
route();
