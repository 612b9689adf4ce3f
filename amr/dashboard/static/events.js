/* The meter page's event timeline and clock: events of the meter's journals and of the head-end
   (GET /api/v1/meters/{serial}/events), newest first, coloured by severity; for dispatchers and
   admins the clock's last check (GET /api/v1/dispatch/clock) and «correct the clock»
   (POST /api/v1/dispatch/meters/{serial}/clock with a reason).

   app.js calls window.AmrEvents.section(serial, tools) and puts `root` on the page; `refresh()`
   runs with the page's own refresh. `tools`: {h, api, fmtTime, lang, staff, toast}.
*/
"use strict";

(function () {
  const TEXTS = {
    ru: {
      title: "События и часы", none: "Событий нет", clock: "Часы счётчика", drift: "уход", checked: "проверены",
      correct: "Скорректировать часы", reason: "Причина коррекции часов", corrected: "Часы скорректированы",
      requested: "Коррекция передана сборщику", more: "Ещё", never: "ещё не проверялись", s: "с",
      states: { ok: "в норме", drifting: "уходят", corrected: "скорректированы", set: "установлены",
        refused: "счётчик отказал", uncorrectable: "не исправить", unread: "не прочитаны", unknown: "нет данных",
        requested: "коррекция запрошена" },
    },
    en: {
      title: "Events and clock", none: "No events", clock: "Meter clock", drift: "drift", checked: "checked",
      correct: "Correct the clock", reason: "Why correct the clock", corrected: "Clock corrected",
      requested: "Correction handed to the collector", more: "More", never: "not checked yet", s: "s",
      states: { ok: "right", drifting: "drifting", corrected: "corrected", set: "set", refused: "refused by the meter",
        uncorrectable: "cannot be corrected", unread: "not read", unknown: "no data", requested: "correction asked for" },
    },
  };
  const SEVERITY_CLASS = { critical: "bad", warning: "warn", info: "ok" };
  const STATE_CLASS = { ok: "ok", corrected: "ok", set: "ok", drifting: "partial", refused: "warn", uncorrectable: "bad" };

  function section(serial, tools) {
    const { h, api, fmtTime, staff, toast } = tools;
    const text = TEXTS[tools.lang] || TEXTS.ru;
    const list = h("ul", { class: "events", id: "meter-events" });
    const clock = h("div", { id: "meter-clock", class: "clock-line" });
    const button = staff ? h("button", { type: "button", id: "clock-correct", onclick: correct }, text.correct) : null;
    const root = h("section", { class: "card", id: "events-card" },
      h("div", { class: "toolbar" }, h("h2", {}, text.title), h("div", { class: "spacer" }), button),
      staff ? clock : null, list);

    function seconds(value) {
      return `${value > 0 ? "+" : ""}${value.toFixed(1)} ${text.s}`;
    }

    function renderClock(item) {
      if (!item) { clock.replaceChildren(); return; }
      const state = item.state || "unknown";
      clock.dataset.state = state;
      clock.replaceChildren(
        h("strong", {}, `${text.clock}: `),
        h("span", { class: `badge ${STATE_CLASS[state] || ""}` }, text.states[state] || state),
        item.drift_s === null || item.drift_s === undefined ? null : ` · ${text.drift} ${seconds(item.drift_s)}`,
        item.checked_at ? ` · ${text.checked} ${fmtTime(item.checked_at, true)}` : ` · ${text.never}`,
        item.message ? h("div", { class: "sub" }, item.message) : null);
    }

    function renderEvents(items) {
      if (!items.length) { list.replaceChildren(h("li", { class: "muted" }, text.none)); return; }
      list.replaceChildren(...items.map((e) => h("li", {
        class: SEVERITY_CLASS[e.severity] || "", dataset: { code: e.code, severity: e.severity, source: e.source },
      }, h("span", { class: "when" }, fmtTime(e.timestamp, true)), " ", h("strong", {}, e.text),
        h("div", { class: "sub" }, h("code", {}, e.code), e.source === "head-end" ? " · АСКУЭ" : ""))));
    }

    async function refresh() {
      const page = await api(`/meters/${encodeURIComponent(serial)}/events?limit=50`);
      renderEvents(page.items);
      if (staff) {
        const clocks = await api("/dispatch/clock");
        renderClock(clocks.items.find((c) => c.serial === serial));
      }
    }

    async function correct() {
      const reason = window.prompt(text.reason);
      if (!reason) return;
      button.disabled = true;
      try {
        const result = await api(`/dispatch/meters/${encodeURIComponent(serial)}/clock`, { method: "POST", body: { reason } });
        toast(result.state === "requested" ? text.requested : text.corrected, "good");
      } catch (err) {
        toast(err.message, "bad");
      } finally {
        button.disabled = false;
        await refresh().catch(() => null);
      }
    }

    return { root, refresh };
  }

  window.AmrEvents = { section };
})();
