// Small hand-written SVG charts: horizontal bars and lines. Each is an <svg role="img"> with a
// title (its accessible name) and the numbers as text, so nothing is told by colour alone.
import { fmt } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
// Colours with at least 4.5:1 contrast on white (WCAG AA for the text drawn in them).
export const PALETTE = ["#0b5cad", "#b34d00", "#146c2e", "#7b1fa2", "#b3261e", "#00695c", "#4a5561", "#8a4b00",
  "#283593", "#ad1457", "#33691e", "#5d4037"];

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function frame(width, height, title) {
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "aria-label": title });
  svg.append(s("title", {}, title));
  return svg;
}

/** Bars of `items` [{label, value}] (null values drawn as "n/a"); `unit` after each number. */
export function barChart(title, items, { unit = "", max } = {}) {
  const row = 30, labelWidth = 160, width = 440, barMax = width - labelWidth - 95;
  const height = Math.max(1, items.length) * row + 12;
  const svg = frame(width, height, title);
  const top = max ?? Math.max(1e-12, ...items.map((i) => (typeof i.value === "number" ? Math.abs(i.value) : 0)));
  items.forEach((item, k) => {
    const y = 6 + k * row;
    const label = item.label.length > 20 ? `${item.label.slice(0, 19)}…` : item.label;
    svg.append(s("text", { x: labelWidth - 6, y: y + 20, "text-anchor": "end", "font-size": 14, fill: "#1b1f24" }, label));
    if (typeof item.value === "number") {
      const w = Math.max(1, (Math.abs(item.value) / top) * barMax);
      const color = PALETTE[k % PALETTE.length];
      svg.append(s("rect", { x: labelWidth, y: y + 4, width: w, height: row - 8, fill: color, "data-value": item.value }));
      svg.append(s("text", { x: labelWidth + w + 5, y: y + 20, "font-size": 14, fill: "#1b1f24" }, `${fmt(item.value)}${unit}`));
    } else {
      svg.append(s("text", { x: labelWidth + 5, y: y + 20, "font-size": 14, fill: "#4a5561" }, "n/a"));
    }
  });
  return svg;
}

/**
 * Lines of `series` [{name, points: [{t: Date, y: number|null}]}] over time; a null y breaks a
 * line. `bands` [{y, label}]: dashed reference lines (e.g. the PSI alert level).
 */
export function lineChart(title, series, { bands = [], spanMs = 3600000 } = {}) {
  const legendRows = Math.ceil(Math.max(1, series.length) / 3);
  const width = 560, left = 48, right = 12, top = 12, bottom = 30 + legendRows * 14, height = 190 + bottom;
  const svg = frame(width, height, title);
  const all = series.flatMap((x) => x.points).filter((p) => typeof p.y === "number");
  const times = series.flatMap((x) => x.points).map((p) => p.t.getTime());
  // The time axis is `spanMs` up to the latest point (or now): an hour reads as an hour.
  const t1 = Math.max(...times, Date.now()), t0 = Math.min(...times, t1 - spanMs);
  const yMax = Math.max(...all.map((p) => p.y), ...bands.map((b) => b.y), 1e-9) * 1.1;
  const X = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const Y = (y) => top + (1 - y / yMax) * (height - top - bottom);
  svg.append(s("line", { x1: left, y1: Y(0), x2: width - right, y2: Y(0), stroke: "#4a5561" }));
  svg.append(s("line", { x1: left, y1: top, x2: left, y2: Y(0), stroke: "#4a5561" }));
  for (const y of [0, yMax / 2, yMax / 1.1]) {
    svg.append(s("text", { x: left - 4, y: Y(y) + 4, "text-anchor": "end", "font-size": 11, fill: "#1b1f24" }, fmt(y, 2)));
  }
  for (const t of [t0, t1]) {
    const d = new Date(t);
    svg.append(s("text", { x: X(t), y: Y(0) + 14, "text-anchor": t === t0 ? "start" : "end", "font-size": 11, fill: "#1b1f24" },
      d.toISOString().slice(11, 16) + " UTC"));
  }
  for (let m = 15; m < (t1 - t0) / 60000; m += 15) {  // a tick every 15 minutes back from the end
    svg.append(s("line", { x1: X(t1 - m * 60000), y1: Y(0), x2: X(t1 - m * 60000), y2: Y(0) + 4, stroke: "#4a5561" }));
  }
  for (const band of bands) {
    svg.append(s("line", { x1: left, y1: Y(band.y), x2: width - right, y2: Y(band.y), stroke: "#b3261e", "stroke-dasharray": "4 3" }));
    svg.append(s("text", { x: width - right, y: Y(band.y) - 3, "text-anchor": "end", "font-size": 11, fill: "#b3261e" }, band.label));
  }
  series.forEach((line, k) => {
    const color = PALETTE[k % PALETTE.length];
    let d = "", pen = "M";
    for (const p of line.points) {
      if (typeof p.y !== "number") { pen = "M"; continue; }
      d += `${pen}${X(p.t.getTime()).toFixed(1)},${Y(p.y).toFixed(1)} `;
      pen = "L";
    }
    if (d) svg.append(s("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    for (const p of line.points) {
      if (typeof p.y === "number") svg.append(s("circle", { cx: X(p.t.getTime()), cy: Y(p.y), r: 2.5, fill: color }));
    }
    // The legend, under the axis, wrapping every 3 entries.
    const lx = left + (k % 3) * 170, ly = height - bottom + 34 + Math.floor(k / 3) * 14;
    svg.append(s("rect", { x: lx, y: ly - 9, width: 10, height: 10, fill: color }));
    svg.append(s("text", { x: lx + 14, y: ly, "font-size": 11, fill: "#1b1f24" }, line.name.length > 24 ? `${line.name.slice(0, 23)}…` : line.name));
  });
  return svg;
}

/** A colour swatch for a legend (SVG: no inline style needed under the page's CSP). */
export function swatch(color, label) {
  const svg = s("svg", { viewBox: "0 0 12 12", width: 14, height: 14, class: "swatch-svg", "aria-hidden": "true" });
  svg.append(s("rect", { x: 0.5, y: 0.5, width: 11, height: 11, fill: color, stroke: "#1b1f24" }));
  return svg;
}
