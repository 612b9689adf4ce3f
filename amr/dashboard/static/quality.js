/* Power-quality line chart in plain SVG: one line per phase (or the total) over time, with limits.

   AmrQuality.render(series, options) -> <svg>
     series: the API's QualitySeries (units, samples with ts and a value or null per quantity, events)
     options: {group: "voltage"|"current"|"power"|"power_factor"|"frequency", t: translate,
               number: format, timeText: (iso) -> text, limits: {min, max} | null, unit: text}
   Each line is <polyline class="q-line q-l1" data-quantity>; each sample a <circle data-ts data-value>
   with its tooltip; a limit is a dashed <line class="q-limit" data-limit>; an event marks its sample
   (class "q-event").
*/
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 960, H = 260, M = { left: 70, right: 26, top: 18, bottom: 36 };
  const GROUPS = {
    voltage: ["voltage_l1", "voltage_l2", "voltage_l3"],
    current: ["current_l1", "current_l2", "current_l3"],
    power: ["power_l1", "power_l2", "power_l3", "power_total"],
    power_factor: ["power_factor_l1", "power_factor_l2", "power_factor_l3", "power_factor_total"],
    frequency: ["frequency"],
  };

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(series, options) {
    const quantities = GROUPS[options.group] || [];
    const samples = series.samples || [];
    const times = samples.map((s) => Date.parse(s.ts));
    const values = [];
    for (const s of samples) for (const q of quantities) if (s[q] !== null && s[q] !== undefined) values.push(s[q]);
    const limits = options.limits || {};
    for (const v of [limits.min, limits.max]) if (typeof v === "number") values.push(v);
    let low = Math.min(...values), high = Math.max(...values);
    if (!values.length) { low = 0; high = 1; }
    if (high - low < 1e-9) { low -= 1; high += 1; }
    const pad = (high - low) * 0.08;
    low -= pad; high += pad;
    const t0 = times.length ? Math.min(...times) : 0, t1 = times.length ? Math.max(...times) : 1;
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    const x = (time) => M.left + (t1 > t0 ? (time - t0) / (t1 - t0) : 0.5) * plotW;
    const y = (v) => M.top + plotH - ((v - low) / (high - low)) * plotH;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart quality", role: "img", id: "quality-chart",
      "data-group": options.group, "aria-label": `${options.t("quality")}, ${options.unit}` });
    const ticks = 4;
    for (let i = 0; i <= ticks; i++) {
      const v = low + ((high - low) / ticks) * i;
      svg.appendChild(el("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: i === 0 ? "axis" : "grid" }));
      svg.appendChild(el("text", { x: M.left - 6, y: y(v) + 4, class: "tick y" }, options.number(v, high - low < 5 ? 2 : 1)));
    }
    svg.appendChild(el("text", { x: 14, y: M.top + plotH / 2, class: "unit", transform: `rotate(-90 14 ${M.top + plotH / 2})` }, options.unit));
    for (const [kind, v] of [["min", limits.min], ["max", limits.max]]) {
      if (typeof v !== "number") continue;
      svg.appendChild(el("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "q-limit", "data-limit": kind }));
      svg.appendChild(el("text", { x: W - M.right - 4, y: y(v) - 4, class: "tick limit" }, `${kind} ${options.number(v, 2)}`));
    }
    const flagged = new Set((series.events || []).map((e) => `${e.ts}|${e.quantity}`));
    quantities.forEach((q, index) => {
      const points = [];
      const dots = el("g", { class: `q-dots q-${index + 1}` });
      samples.forEach((s, i) => {
        const v = s[q];
        if (v === null || v === undefined) return;
        points.push(`${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`);
        const bad = flagged.has(`${s.ts}|${q}`);
        const dot = el("circle", { cx: x(times[i]), cy: y(v), r: bad ? 4 : 2.5, class: bad ? "q-event" : "q-dot",
          "data-ts": s.ts, "data-value": v, "data-quantity": q });
        dot.appendChild(el("title", {}, `${options.timeText(s.ts)} · ${options.t(`q_${q}`)}: ${options.number(v, 2)} ${options.unit}`));
        dots.appendChild(dot);
      });
      if (!points.length) return;
      svg.appendChild(el("polyline", { points: points.join(" "), class: `q-line q-${index + 1}`, "data-quantity": q }));
      svg.appendChild(dots);
    });
    svg.appendChild(el("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH, class: "axis" }));
    if (times.length) {
      svg.appendChild(el("text", { x: M.left, y: H - 12, class: "tick x q-from" }, options.timeText(samples[0].ts)));
      svg.appendChild(el("text", { x: W - M.right, y: H - 12, class: "tick x q-to" },
        options.timeText(samples[samples.length - 1].ts)));
    }
    return svg;
  }

  window.AmrQuality = { render, GROUPS };
})();
