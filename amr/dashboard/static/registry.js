/* The registry screen (#/registry, admins): meters of the registry searched and paged on the server,
   one meter's entry edited as JSON (saved, taken out of the registry, a new CT/VT ratio from a date,
   replaced on its point at a time), over /api/v1/registry. app.js routes here and lends its helpers.
*/
"use strict";

(function () {
  const TEXTS = {
    ru: {
      nav: "Реестр", title: "Реестр счётчиков", search: "Серийный номер, название или точка учёта", find: "Найти",
      first: "В начало", next: "Дальше", page: "Страница {n}", none: "Нет счётчиков", col_serial: "Серийный №",
      col_name: "Название", col_object: "Объект", col_point: "Точка учёта", col_bus: "Шина", col_address: "Адрес",
      col_ratio: "Ктт × Ктн", new_meter: "Новый счётчик", entry: "Запись счётчика (как в TOML, в JSON)",
      save: "Сохранить", remove: "Вывести из реестра", reason: "Причина (в журнал)", saved: "Сохранено: версия реестра {v}",
      removed: "Счётчик {s} выведен из реестра; его показания сохранены", ratio_title: "Новый коэффициент с даты",
      since: "С даты", ct: "Ктт", vt: "Ктн", add_ratio: "Добавить", replace_title: "Замена счётчика на точке учёта",
      replace_hint: "Новый счётчик — запись выше с его серийным номером; старый снимается в указанный момент.",
      at: "Момент замены", replace: "Заменить", replaced: "Точка {p}: {old} снят, {new} установлен", bad_json: "Запись — не JSON-объект",
      confirm_remove: "Вывести счётчик {s} из реестра?",
    },
    en: {
      nav: "Registry", title: "Meter registry", search: "Serial, name or metering point", find: "Find",
      first: "First page", next: "Next", page: "Page {n}", none: "No meters", col_serial: "Serial", col_name: "Name",
      col_object: "Object", col_point: "Metering point", col_bus: "Bus", col_address: "Address", col_ratio: "CT × VT",
      new_meter: "New meter", entry: "The meter's entry (as in the TOML, as JSON)", save: "Save",
      remove: "Take out of the registry", reason: "Reason (for the audit trail)", saved: "Saved: registry version {v}",
      removed: "Meter {s} taken out of the registry; its readings are kept", ratio_title: "A new ratio from a date",
      since: "From", ct: "CT", vt: "VT", add_ratio: "Add", replace_title: "Replace the meter on its metering point",
      replace_hint: "The new meter is the entry above with its serial; the old one is removed at that moment.",
      at: "Replaced at", replace: "Replace", replaced: "Point {p}: {old} removed, {new} installed", bad_json: "The entry is not a JSON object",
      confirm_remove: "Take meter {s} out of the registry?",
    },
  };
  const PAGE = 50;

  function ratioText(value) {
    if (value === undefined || value === null) return "1";
    if (Array.isArray(value)) return value.map((s) => (s.since ? `${s.ratio} (${s.since.slice(0, 10)})` : s.ratio)).join(" → ");
    return String(value);
  }

  /** The registry view; `dash` lends app.js's helpers: h, api, toast, lang(). */
  function registryView(dash) {
    const { h, api, toast } = dash;
    const t = (key, vars) => {
      let text = (TEXTS[dash.lang()] || TEXTS.ru)[key] || key;
      for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, String(v));
      return text;
    };
    const pages = [null]; // the cursor each page starts after
    let index = 0;
    let chosen = null;

    const search = h("input", { type: "search", id: "registry-search", placeholder: t("search"), "aria-label": t("search"), maxlength: 100 });
    const body = h("tbody");
    const table = h("table", { class: "grid", id: "registry-table" }, h("thead", {}, h("tr", {},
      ...["col_serial", "col_name", "col_object", "col_point", "col_bus", "col_address"].map((k) => h("th", {}, t(k))),
      h("th", { class: "num" }, t("col_ratio")))), body);
    const empty = h("p", { class: "muted empty", hidden: true }, t("none"));
    const pageNo = h("span", { class: "muted", id: "registry-page" });
    const nextButton = h("button", { type: "button", id: "registry-next" }, t("next"));
    const firstButton = h("button", { type: "button", id: "registry-first" }, t("first"));

    const entry = h("textarea", { id: "registry-entry", rows: 14, spellcheck: "false", "aria-label": t("entry") });
    const reason = h("input", { id: "registry-reason", placeholder: t("reason"), "aria-label": t("reason"), maxlength: 1000 });
    const since = h("input", { type: "date", id: "ratio-since", "aria-label": t("since") });
    const ct = h("input", { id: "ratio-ct", placeholder: t("ct"), "aria-label": t("ct"), size: 6 });
    const vt = h("input", { id: "ratio-vt", placeholder: t("vt"), "aria-label": t("vt"), size: 6, value: "1" });
    const at = h("input", { type: "datetime-local", id: "replace-at", "aria-label": t("at") });
    const editor = h("section", { class: "card", id: "registry-editor", hidden: true },
      h("h2", { id: "registry-editor-title" }, t("new_meter")),
      h("label", {}, t("entry"), entry),
      h("div", { class: "toolbar" }, reason,
        h("button", { type: "button", class: "primary", id: "registry-save", onclick: save }, t("save")),
        h("button", { type: "button", id: "registry-remove", onclick: remove }, t("remove"))),
      h("h3", {}, t("ratio_title")),
      h("div", { class: "toolbar" }, h("label", {}, t("since"), " ", since), ct, vt,
        h("button", { type: "button", id: "ratio-add", onclick: addRatio }, t("add_ratio"))),
      h("h3", {}, t("replace_title")), h("p", { class: "muted" }, t("replace_hint")),
      h("div", { class: "toolbar" }, h("label", {}, t("at"), " ", at),
        h("button", { type: "button", id: "replace-go", onclick: replace }, t("replace"))));

    const root = h("div", { class: "page registry" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("title")), search,
          h("button", { type: "button", onclick: () => { pages.length = 1; index = 0; load(); } }, t("find")),
          h("div", { class: "spacer" }),
          h("button", { type: "button", id: "registry-new", onclick: () => open(null) }, t("new_meter"))),
        h("div", { class: "table-wrap" }, table), empty,
        h("div", { class: "toolbar" }, firstButton, nextButton, pageNo)),
      editor);
    search.addEventListener("keydown", (e) => { if (e.key === "Enter") { pages.length = 1; index = 0; load(); } });
    firstButton.addEventListener("click", () => { index = 0; load(); });
    nextButton.addEventListener("click", () => { index += 1; load(); });

    function entryBody() {
      let value;
      try { value = JSON.parse(entry.value); } catch (err) { value = null; }
      if (!value || typeof value !== "object" || Array.isArray(value)) { toast(t("bad_json"), "bad"); return null; }
      return value;
    }

    function open(meter) {
      chosen = meter;
      editor.hidden = false;
      document.getElementById("registry-editor-title").textContent = meter ? `${meter.serial} — ${meter.name || ""}` : t("new_meter");
      entry.value = JSON.stringify(meter || { serial: "", name: "", object: "", point: "", bus: "", address: 1 }, null, 2);
      editor.scrollIntoView({ block: "nearest" });
    }

    async function run(work) {
      try { await work(); } catch (err) { toast(`${err.status ? `${err.status} ` : ""}${err.message}`, "bad"); }
    }

    async function save() {
      const value = entryBody();
      if (!value) return;
      await run(async () => {
        const serial = encodeURIComponent(value.serial || "");
        const answer = await api(`/registry/meters/${serial}?reason=${encodeURIComponent(reason.value)}`, { method: "PUT", body: value });
        toast(t("saved", { v: answer.version }), "good");
        open(answer.meter);
        await load();
      });
    }

    async function remove() {
      if (!chosen || !window.confirm(t("confirm_remove", { s: chosen.serial }))) return;
      await run(async () => {
        await api(`/registry/meters/${encodeURIComponent(chosen.serial)}?reason=${encodeURIComponent(reason.value)}`, { method: "DELETE" });
        toast(t("removed", { s: chosen.serial }), "good");
        editor.hidden = true;
        chosen = null;
        await load();
      });
    }

    async function addRatio() {
      if (!chosen) return;
      await run(async () => {
        const answer = await api(`/registry/meters/${encodeURIComponent(chosen.serial)}/ratios`, {
          method: "POST", body: { since: since.value, ct_ratio: ct.value, vt_ratio: vt.value || "1", reason: reason.value } });
        toast(t("saved", { v: answer.version }), "good");
        open(answer.meter);
        await load();
      });
    }

    async function replace() {
      const value = entryBody();
      if (!chosen || !value) return;
      await run(async () => {
        const moment = at.value.length === 16 ? `${at.value}:00` : at.value;
        const answer = await api(`/registry/points/${encodeURIComponent(chosen.point)}/replace`, {
          method: "POST", body: { at: moment, meter: value, reason: reason.value } });
        toast(t("replaced", { p: chosen.point, old: answer.removed.serial, new: answer.installed.serial }), "good");
        open(answer.installed);
        await load();
      });
    }

    async function load() {
      const params = new URLSearchParams({ limit: String(PAGE) });
      if (search.value.trim()) params.set("search", search.value.trim());
      if (pages[index]) params.set("after", pages[index]);
      const page = await api(`/registry/meters?${params}`);
      pages[index + 1] = page.next;
      pages.length = index + 2;
      body.replaceChildren(...page.meters.map((m) => h("tr", {
        class: "clickable", tabindex: 0, dataset: { serial: m.serial },
        onclick: () => open(m), onkeydown: (e) => { if (e.key === "Enter") open(m); },
      }, h("td", { class: "mono" }, m.serial), h("td", {}, m.name || "—"), h("td", {}, m.object || "—"),
        h("td", {}, m.point), h("td", {}, m.bus || "—"), h("td", { class: "mono" }, m.address === undefined ? "—" : String(m.address)),
        h("td", { class: "num" }, `${ratioText(m.ct_ratio)} × ${ratioText(m.vt_ratio)}`))));
      empty.hidden = page.meters.length > 0;
      nextButton.disabled = !page.next;
      firstButton.disabled = index === 0;
      pageNo.textContent = t("page", { n: index + 1 });
    }

    return { name: "registry", root, refresh: (first) => (first ? load() : Promise.resolve()) };
  }

  window.AMR_REGISTRY = { view: registryView, title: (lang) => (TEXTS[lang] || TEXTS.ru).nav };
})();
