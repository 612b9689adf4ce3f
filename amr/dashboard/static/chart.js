/* Consumption bar chart in plain SVG: axes with units, one bar per bucket, gaps marked.

   AmrChart.render(series, options) -> <svg>
     series: the API's ConsumptionSeries (buckets with start, end, local_start, value, complete, gaps)
     options: {step: "30min"|"day"|"month", unit: "кВт·ч", now: Date, t: translate, number: format,
               months: [...], partialBelow: 0.95}
   Each bar is <rect class="bar" data-start data-value>; a bucket without any reading (and not in
   the future) is <g class="gap"> (a faint band with a hatched strip on the axis); a bucket whose readings cover less than `partialBelow` of it
   is drawn as a partial bar (class "bar partial") with its coverage in the tooltip; the bucket that
   holds `now` (today, this month) is not over and is drawn pale too (class "bar partial current",
   data-current="true"), "to date" in its tooltip.
*/
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 960, H = 300, M = { left: 70, right: 26, top: 18, bottom: 42 };

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
      if (m * power >= value) return m * power;
    }
    return 10 * power;
  }

  function coverage(bucket) {
    const start = Date.parse(bucket.start), end = Date.parse(bucket.end);
    let missing = 0;
    for (const g of bucket.gaps || []) missing += Date.parse(g.end) - Date.parse(g.start);
    return end > start ? Math.max(0, 1 - missing / (end - start)) : 0;
  }

  function label(bucket, step, months) {
    const s = bucket.local_start; // 2026-03-09T13:30:00+03:00
    if (step === "30min") return s.slice(11, 16);
    if (step === "day") return String(Number(s.slice(8, 10)));
    return months[Number(s.slice(5, 7)) - 1];
  }

  function rangeText(bucket, step) {
    const s = bucket.local_start;
    if (step !== "30min") return s.slice(0, step === "day" ? 10 : 7);
    const minutes = Number(s.slice(11, 13)) * 60 + Number(s.slice(14, 16)) + 30;
    const end = `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
    return `${s.slice(0, 10)} ${s.slice(11, 16)}–${end}`;
  }

  function showLabel(index, count, step, bucket) {
    if (step === "30min") return bucket.local_start.slice(14, 16) === "00" && Number(bucket.local_start.slice(11, 13)) % 3 === 0;
    if (step === "day") return count <= 16 || index % 2 === 0;
    return true;
  }

  function render(series, options) {
    const t = options.t, number = options.number;
    const step = series.step;
    const buckets = series.buckets || [];
    const now = options.now ? options.now.getTime() : Date.now();
    const partialBelow = options.partialBelow === undefined ? 0.95 : options.partialBelow;
    const values = buckets.map((b) => (b.value === null || b.value === undefined ? null : Number(b.value)));
    const max = niceMax(Math.max(0, ...values.filter((v) => v !== null)));
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    const slot = plotW / Math.max(1, buckets.length);
    const y = (v) => M.top + plotH - (v / max) * plotH;

    const svg = el("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", id: "chart",
      "data-step": step, "data-channel": series.channel, "data-unit": series.unit,
      "aria-label": `${t("consumption")}, ${options.unit}`,
    });
    const defs = el("defs");
    const pattern = el("pattern", { id: "gap-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
    pattern.appendChild(el("rect", { width: 6, height: 6, class: "gap-bg" }));
    pattern.appendChild(el("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "gap-line" }));
    defs.appendChild(pattern);
    svg.appendChild(defs);

    // horizontal grid and the y axis with its unit
    const ticks = 5;
    for (let i = 0; i <= ticks; i++) {
      const v = (max / ticks) * i;
      const yy = y(v);
      svg.appendChild(el("line", { x1: M.left, x2: W - M.right, y1: yy, y2: yy, class: i === 0 ? "axis" : "grid" }));
      svg.appendChild(el("text", { x: M.left - 6, y: yy + 4, class: "tick y" }, number(v, max < 10 ? 2 : max < 100 ? 1 : 0)));
    }
    svg.appendChild(el("text", { x: 14, y: M.top + plotH / 2, class: "unit", transform: `rotate(-90 14 ${M.top + plotH / 2})` }, options.unit));
    svg.appendChild(el("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH, class: "axis" }));

    const bars = el("g", { class: "bars" });
    buckets.forEach((bucket, i) => {
      const x = M.left + i * slot;
      const value = values[i];
      const future = Date.parse(bucket.start) >= now;
      const range = rangeText(bucket, step);
      if (value === null) {
        if (future) return;
        const gap = el("g", { class: "gap", "data-start": bucket.start });
        gap.appendChild(el("rect", { x: x + 0.5, y: M.top, width: Math.max(1, slot - 1), height: plotH, class: "gap-area" }));
        gap.appendChild(el("rect", { x: x + 0.5, y: M.top + plotH - 10, width: Math.max(1, slot - 1), height: 10, class: "gap-strip" }));
        gap.appendChild(el("title", {}, `${range}: ${t("legend_gap")}`));
        bars.appendChild(gap);
        return;
      }
      const cov = coverage(bucket);
      const current = Date.parse(bucket.start) <= now && now < Date.parse(bucket.end); // the period is not over
      const partial = current || cov < partialBelow;
      const width = Math.max(1, slot * 0.72);
      const top = y(value);
      // a bucket taken from interval data says how its intervals are known (the API's `intervals` counts)
      const counts = bucket.intervals || null;
      const status = !counts ? "" : counts.estimated ? "estimated" : counts.incomplete ? "incomplete"
        : counts.missing ? "missing" : "measured";
      const kind = current ? "bar partial current" : partial ? "bar partial" : "bar";
      const rect = el("rect", {
        x: x + (slot - width) / 2, y: top, width, height: Math.max(value > 0 ? 1 : 0, M.top + plotH - top),
        class: status === "estimated" || status === "incomplete" ? `${kind} ${status}` : kind,
        "data-start": bucket.start, "data-local": bucket.local_start, "data-value": bucket.value,
        "data-complete": String(bucket.complete), "data-current": String(current),
        "data-basis": bucket.basis || "registers", "data-status": status,
      });
      const marks = status === "estimated" || status === "incomplete" ? ` (${t("interval_" + status)})` : "";
      const note = marks + (current ? ` (${t("to_date")})`
        : bucket.complete ? "" : ` (${t("coverage", { p: (Math.floor(cov * 1000) / 10).toString() })})`);
      rect.appendChild(el("title", {}, `${range}: ${number(bucket.value)} ${options.unit}${note}`));
      bars.appendChild(rect);
    });
    svg.appendChild(bars);

    // x axis labels
    buckets.forEach((bucket, i) => {
      if (!showLabel(i, buckets.length, step, bucket)) return;
      const x = M.left + i * slot + (step === "30min" ? 0 : slot / 2);
      svg.appendChild(el("line", { x1: x, x2: x, y1: M.top + plotH, y2: M.top + plotH + 4, class: "axis" }));
      svg.appendChild(el("text", { x, y: M.top + plotH + 18, class: "tick x" }, label(bucket, step, options.months)));
    });
    if (step === "30min" && buckets.length) {
      const x = M.left + buckets.length * slot;
      svg.appendChild(el("text", { x, y: M.top + plotH + 18, class: "tick x" }, "24:00"));
    }
    return svg;
  }

  window.AmrChart = { render, coverage, niceMax };
})();
