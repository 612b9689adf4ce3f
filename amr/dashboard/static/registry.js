/* The registry screen (#/registry/<tab>, admins) over /api/v1/registry, one tab at a time:
   meters (here: searched and paged on the server, an entry edited as JSON, a new CT/VT ratio from a
   date, replaced on its point at a time) and metering points, objects and buses (registry_lists.js).
   Times are shown in the site's zone; a date typed in means the site's midnight (as the API reads it).
   app.js routes here and lends its helpers.
*/
"use strict";

(function () {
  const TEXTS = {
    ru: {
      nav: "Реестр", title: "Реестр счётчиков", search: "Серийный номер, название или точка учёта", find: "Найти",
      tab_meters: "Счётчики", tab_points: "Точки учёта", tab_objects: "Объекты", tab_buses: "Шины",
      first: "В начало", next: "Дальше", page: "Страница {n}", none: "Нет счётчиков", col_serial: "Серийный №",
      col_name: "Название", col_object: "Объект", col_point: "Точка учёта", col_bus: "Шина", col_address: "Адрес",
      col_ratio: "Ктт × Ктн", new_meter: "Новый счётчик", entry: "Запись счётчика (как в TOML, в JSON)",
      save: "Сохранить", remove: "Удалить", remove_meter: "Вывести из реестра", reason: "Причина (в журнал)",
      saved: "Сохранено: версия реестра {v}", removed_on: "снят {d}", installed_on: "установлен {d}",
      removed: "Счётчик {s} выведен из реестра; его показания сохранены", ratio_title: "Новый коэффициент с даты",
      ratio_hint: "Сейчас действует Ктт {ct}, Ктн {vt}. Отправляется то, что вы изменили; дата — с полуночи по времени объекта.",
      since: "С даты", ct: "Ктт", vt: "Ктн", add_ratio: "Добавить", replace_title: "Замена счётчика на точке учёта",
      replace_hint: "Новый счётчик — запись выше с серийным номером нового; старый снимается в указанный момент (время объекта).",
      new_serial: "Серийный № нового", at: "Момент замены", replace: "Заменить",
      replaced: "Точка {p}: {old} снят, {new} установлен", bad_json: "Запись — не JSON-объект",
      confirm_remove: "Вывести счётчик {s} из реестра?", confirm_delete: "Удалить {s}?",
      nothing_changed: "Ничего не изменено.", locale_date: "ru-RU",
      // points, objects, buses (registry_lists.js)
      points_title: "Точки учёта", points_search: "Код точки или объект", points_none: "Нет точек учёта",
      col_code: "Код", col_meter: "Счётчик", col_meters_ever: "Счётчиков (всего)", new_point: "Новая точка учёта",
      point_code: "Код точки учёта", point_object: "Объект (новый создаётся)", point_saved: "Точка {p}: объект «{o}»",
      point_removed: "Точка {p} удалена", open_meter: "Счётчик {s}: ратио и замена", of_object: "Объект: {o}",
      all_points: "Все точки",
      objects_title: "Объекты", objects_filter: "Название объекта", objects_none: "Нет объектов",
      col_points: "Точек учёта", col_meters_now: "Счётчиков", new_object: "Новый объект", object_name: "Название",
      object_saved: "Объект «{o}» сохранён", object_removed: "Объект «{o}» удалён", its_points: "Точки объекта",
      buses_title: "Шины", buses_filter: "Имя шины", buses_none: "Нет шин", col_kind: "Протокол", col_url: "Адрес линии",
      new_bus: "Новая шина", bus_entry: "Запись шины (как в TOML, в JSON): протокол и его настройки",
      bus_secrets: "Пароли и ключи показаны как ********: оставленные так, они сохраняются прежними; чтобы сменить, впишите новые.",
      bus_saved: "Шина {b} сохранена: версия реестра {v}", bus_removed: "Шина {b} удалена",
    },
    en: {
      nav: "Registry", title: "Meter registry", search: "Serial, name or metering point", find: "Find",
      tab_meters: "Meters", tab_points: "Metering points", tab_objects: "Objects", tab_buses: "Buses",
      first: "First page", next: "Next", page: "Page {n}", none: "No meters", col_serial: "Serial", col_name: "Name",
      col_object: "Object", col_point: "Metering point", col_bus: "Bus", col_address: "Address", col_ratio: "CT × VT",
      new_meter: "New meter", entry: "The meter's entry (as in the TOML, as JSON)", save: "Save", remove: "Remove",
      remove_meter: "Take out of the registry", reason: "Reason (for the audit trail)", saved: "Saved: registry version {v}",
      removed_on: "removed {d}", installed_on: "installed {d}",
      removed: "Meter {s} taken out of the registry; its readings are kept", ratio_title: "A new ratio from a date",
      ratio_hint: "CT {ct}, VT {vt} in effect now. What you change is sent; a date means the site's midnight.",
      since: "From", ct: "CT", vt: "VT", add_ratio: "Add", replace_title: "Replace the meter on its metering point",
      replace_hint: "The new meter is the entry above with the new one's serial; the old one is removed at that moment (site's time).",
      new_serial: "New meter's serial", at: "Replaced at", replace: "Replace",
      replaced: "Point {p}: {old} removed, {new} installed", bad_json: "The entry is not a JSON object",
      confirm_remove: "Take meter {s} out of the registry?", confirm_delete: "Remove {s}?",
      nothing_changed: "Nothing changed.", locale_date: "en-GB",
      points_title: "Metering points", points_search: "Point code or object", points_none: "No metering points",
      col_code: "Code", col_meter: "Meter", col_meters_ever: "Meters (ever)", new_point: "New metering point",
      point_code: "Metering point code", point_object: "Object (a new one is created)", point_saved: "Point {p}: object “{o}”",
      point_removed: "Point {p} removed", open_meter: "Meter {s}: ratio and replacement", of_object: "Object: {o}",
      all_points: "All points",
      objects_title: "Objects", objects_filter: "Object name", objects_none: "No objects",
      col_points: "Metering points", col_meters_now: "Meters", new_object: "New object", object_name: "Name",
      object_saved: "Object “{o}” saved", object_removed: "Object “{o}” removed", its_points: "Its points",
      buses_title: "Buses", buses_filter: "Bus name", buses_none: "No buses", col_kind: "Protocol", col_url: "Line address",
      new_bus: "New bus", bus_entry: "The bus's entry (as in the TOML, as JSON): its protocol and settings",
      bus_secrets: "Passwords and keys show as ********: left so, they keep their stored values; type new ones to change them.",
      bus_saved: "Bus {b} saved: registry version {v}", bus_removed: "Bus {b} removed",
    },
  };
  const PAGE = 50;
  const TABS = ["meters", "points", "objects", "buses"];
  const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)$/;

  /** Helpers every tab shares, over app.js's: texts, the site's clock, lists, editors, refusals. */
  function makeKit(dash) {
    const { h, api, toast } = dash;
    const t = (key, vars) => {
      let text = (TEXTS[dash.lang()] || TEXTS.ru)[key] || TEXTS.ru[key] || key;
      for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, String(v));
      return text;
    };

    /** The wall clock of the site's zone at `iso`: {year, month, day, hour, minute, second} as text. */
    function wall(iso) {
      const parts = new Intl.DateTimeFormat("en-CA", {
        timeZone: dash.tz(), year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      }).formatToParts(new Date(iso));
      return Object.fromEntries(parts.filter((p) => p.type !== "literal").map((p) => [p.type, p.value]));
    }

    const midnight = (w) => w.hour === "00" && w.minute === "00" && w.second === "00";

    /** A time as the site's: its date alone at the site's midnight, else date and time. */
    function when(iso) {
      if (!iso) return "—";
      const w = wall(iso);
      if (!midnight(w)) return dash.fmtTime(iso);
      return new Intl.DateTimeFormat(t("locale_date"), { timeZone: "UTC", year: "numeric", month: "2-digit", day: "2-digit" })
        .format(new Date(`${w.year}-${w.month}-${w.day}T12:00:00Z`));
    }

    /** An ISO time as the site's: "2026-04-01" at its midnight, else "2026-04-01T12:30:00+03:00". */
    function siteIso(iso) {
      const w = wall(iso);
      const day = `${w.year}-${w.month}-${w.day}`;
      if (midnight(w)) return day;
      const local = Date.UTC(+w.year, +w.month - 1, +w.day, +w.hour, +w.minute, +w.second);
      const minutes = Math.round((local - Math.floor(Date.parse(iso) / 1000) * 1000) / 60000);
      const sign = minutes < 0 ? "-" : "+";
      const abs = Math.abs(minutes);
      const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
      return `${day}T${w.hour}:${w.minute}:${w.second}${offset}`;
    }

    /** An entry of the API with its times written as the site's (dates at its midnight). */
    function sited(value) {
      if (typeof value === "string") return ISO_TIME.test(value) ? siteIso(value) : value;
      if (Array.isArray(value)) return value.map(sited);
      if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, sited(v)]));
      return value;
    }

    /** An editor card: a title, its fields, a reason, its buttons, and where a refusal is shown. */
    function editor(id, ...parts) {
      const title = h("h2", { id: `${id}-title` });
      const reason = h("input", { id: `${id}-reason`, class: "reason", placeholder: t("reason"), "aria-label": t("reason"), maxlength: 1000 });
      const refusal = h("p", { class: "error", role: "alert", id: `${id}-error` });
      const card = h("section", { class: "card editor", id, hidden: true }, title, ...parts);
      return {
        card, reason, refusal,
        show(text) { card.hidden = false; title.textContent = text; refusal.textContent = ""; card.scrollIntoView({ block: "nearest" }); },
        hide() { card.hidden = true; },
        /** Runs `work`; the API's refusal (its message in the chosen language) is shown, never thrown. */
        async run(work) {
          refusal.textContent = "";
          try { await work(); } catch (err) { refusal.textContent = err.message; toast(err.message, "bad"); }
        },
        why: () => encodeURIComponent(reason.value),
      };
    }

    /** A table filled a page at a time by `fetch(after) → {items, next}`; `row(item)` makes its cells. */
    function pagedList(id, headers, fetch, row, open) {
      const pages = [null];
      let index = 0;
      const body = h("tbody");
      const table = h("table", { class: "grid", id: `${id}-table` }, h("thead", {}, h("tr", {}, ...headers)), body);
      const empty = h("p", { class: "muted empty", id: `${id}-empty`, hidden: true });
      const pageNo = h("span", { class: "muted", id: `${id}-page` });
      const next = h("button", { type: "button", id: `${id}-next`, onclick: () => { index += 1; load(); } }, t("next"));
      const first = h("button", { type: "button", id: `${id}-first`, onclick: () => { index = 0; load(); } }, t("first"));
      async function load() {
        const page = await fetch(pages[index]);
        pages[index + 1] = page.next;
        pages.length = index + 2;
        body.replaceChildren(...page.items.map((item) => {
          const [key, cells] = row(item);
          return h("tr", { class: "clickable", tabindex: 0, dataset: { key }, onclick: () => open(item),
            onkeydown: (e) => { if (e.key === "Enter") open(item); } }, ...cells);
        }));
        empty.hidden = page.items.length > 0;
        next.disabled = !page.next;
        first.disabled = index === 0;
        pageNo.textContent = t("page", { n: index + 1 });
      }
      return {
        nodes: [h("div", { class: "table-wrap" }, table), empty, h("div", { class: "toolbar" }, first, next, pageNo)],
        empty, load, restart: () => { pages.length = 1; index = 0; return load(); },
      };
    }

    /** A search box that restarts `list` on Enter or its button. */
    function searchBox(id, placeholder, restart) {
      const box = h("input", { type: "search", id, placeholder, "aria-label": placeholder, maxlength: 100 });
      box.addEventListener("keydown", (e) => { if (e.key === "Enter") restart(); });
      return [box, h("button", { type: "button", onclick: restart }, t("find"))];
    }

    /** The JSON object typed in `textarea`, else an error saying so. */
    function jsonEntry(textarea) {
      let value;
      try { value = JSON.parse(textarea.value); } catch (err) { value = null; }
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(t("bad_json"));
      return value;
    }

    return { ...dash, t, when, sited, editor, pagedList, searchBox, jsonEntry, confirm: (text) => window.confirm(text) };
  }

  function ratioText(kit, value) {
    if (value === undefined || value === null) return "1";
    if (Array.isArray(value)) return value.map((s) => (s.since ? `${s.ratio} (${kit.when(s.since)})` : s.ratio)).join(" → ");
    return String(value);
  }

  /** The ratio in effect now: the last step begun, else the first. */
  function ratioNow(value) {
    if (value === undefined || value === null) return "1";
    if (!Array.isArray(value)) return String(value);
    const now = Date.now();
    const begun = value.filter((s) => !s.since || Date.parse(s.since) <= now);
    return String((begun.length ? begun[begun.length - 1] : value[0]).ratio);
  }

  /** The meters tab; `params.open` opens that meter's entry. */
  function metersTab(kit, params) {
    const { h, api, toast, t, when, sited } = kit;
    let chosen = null;
    let inEffect = { ct: "1", vt: "1" };

    const list = kit.pagedList("registry", [
      ...["col_serial", "col_name", "col_object", "col_point", "col_bus", "col_address"].map((k) => h("th", {}, t(k))),
      h("th", { class: "num" }, t("col_ratio"))], async (after) => {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (search.value.trim()) q.set("search", search.value.trim());
      if (after) q.set("after", after);
      const page = await api(`/registry/meters?${q}`);
      return { items: page.meters, next: page.next };
    }, (m) => [m.serial, [h("td", { class: "mono" }, m.serial), h("td", {}, m.name || "—"), h("td", {}, m.object || "—"),
      h("td", {}, m.point, m.removed ? h("div", { class: "sub" }, t("removed_on", { d: when(m.removed) })) : null),
      h("td", {}, m.bus || "—"), h("td", { class: "mono" }, m.address === undefined ? "—" : String(m.address)),
      h("td", { class: "num" }, `${ratioText(kit, m.ct_ratio)} × ${ratioText(kit, m.vt_ratio)}`)]], open);
    list.empty.textContent = t("none");
    const [search, find] = kit.searchBox("registry-search", t("search"), () => list.restart());

    const entry = h("textarea", { id: "registry-entry", rows: 14, spellcheck: "false", "aria-label": t("entry") });
    const since = h("input", { type: "date", id: "ratio-since", "aria-label": t("since") });
    const ct = h("input", { id: "ratio-ct", placeholder: t("ct"), "aria-label": t("ct"), size: 6, inputmode: "decimal" });
    const vt = h("input", { id: "ratio-vt", placeholder: t("vt"), "aria-label": t("vt"), size: 6, inputmode: "decimal" });
    const ratioHint = h("p", { class: "muted", id: "ratio-hint" });
    const newSerial = h("input", { id: "replace-serial", placeholder: t("new_serial"), "aria-label": t("new_serial"), maxlength: 64 });
    const at = h("input", { type: "datetime-local", id: "replace-at", "aria-label": t("at") });
    const saveButton = h("button", { type: "button", class: "primary", id: "registry-save", onclick: () => form.run(save) }, t("save"));
    const removeButton = h("button", { type: "button", id: "registry-remove", onclick: () => form.run(remove) }, t("remove_meter"));
    const form = kit.editor("registry-editor",
      h("label", {}, t("entry"), entry));
    const chosenOnly = h("div", { class: "chosen-only" },
      h("h3", {}, t("ratio_title")), ratioHint,
      h("div", { class: "toolbar" }, h("label", {}, t("since"), " ", since), h("label", {}, t("ct"), " ", ct),
        h("label", {}, t("vt"), " ", vt), h("button", { type: "button", id: "ratio-add", onclick: () => form.run(addRatio) }, t("add_ratio"))),
      h("h3", {}, t("replace_title")), h("p", { class: "muted" }, t("replace_hint")),
      h("div", { class: "toolbar" }, newSerial, h("label", {}, t("at"), " ", at),
        h("button", { type: "button", id: "replace-go", onclick: () => form.run(replace) }, t("replace"))));
    form.card.append(h("div", { class: "toolbar" }, form.reason, saveButton, removeButton), form.refusal, chosenOnly);

    const root = h("div", { class: "page registry" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("title")), search, find, h("div", { class: "spacer" }),
          h("button", { type: "button", id: "registry-new", onclick: () => open(null) }, t("new_meter"))),
        ...list.nodes),
      form.card);

    function open(meter) {
      chosen = meter;
      form.show(meter ? `${meter.serial} — ${meter.name || ""}` : t("new_meter"));
      entry.value = JSON.stringify(meter ? sited(meter) : { serial: "", name: "", object: "", point: "", bus: "", address: 1 }, null, 2);
      removeButton.hidden = !meter;
      chosenOnly.hidden = !meter;
      inEffect = meter ? { ct: ratioNow(meter.ct_ratio), vt: ratioNow(meter.vt_ratio) } : { ct: "1", vt: "1" };
      ct.value = inEffect.ct;
      vt.value = inEffect.vt;
      ratioHint.textContent = t("ratio_hint", inEffect);
    }

    async function save() {
      const value = kit.jsonEntry(entry);
      const answer = await api(`/registry/meters/${encodeURIComponent(value.serial || "")}?reason=${form.why()}`, { method: "PUT", body: value });
      toast(t("saved", { v: answer.version }), "good");
      open(answer.meter);
      await list.load();
    }

    async function remove() {
      if (!chosen || !kit.confirm(t("confirm_remove", { s: chosen.serial }))) return;
      await api(`/registry/meters/${encodeURIComponent(chosen.serial)}?reason=${form.why()}`, { method: "DELETE" });
      toast(t("removed", { s: chosen.serial }), "good");
      form.hide();
      chosen = null;
      await list.load();
    }

    async function addRatio() {
      // only what the user changed: a ratio left as it is stays as it was
      const body = { since: since.value, reason: form.reason.value };
      if (ct.value.trim() && ct.value.trim() !== inEffect.ct) body.ct_ratio = ct.value.trim();
      if (vt.value.trim() && vt.value.trim() !== inEffect.vt) body.vt_ratio = vt.value.trim();
      if (!("ct_ratio" in body) && !("vt_ratio" in body)) throw new Error(t("nothing_changed"));
      const answer = await api(`/registry/meters/${encodeURIComponent(chosen.serial)}/ratios`, { method: "POST", body });
      toast(t("saved", { v: answer.version }), "good");
      open(answer.meter);
      await list.load();
    }

    async function replace() {
      const value = kit.jsonEntry(entry);
      for (const key of ["installed", "removed"]) delete value[key];  // the old meter's; the new one starts at `at`
      if (newSerial.value.trim()) value.serial = newSerial.value.trim();
      const moment = at.value.length === 16 ? `${at.value}:00` : at.value;  // no offset: the site's time
      const point = chosen.point;
      const answer = await api(`/registry/points/${encodeURIComponent(point)}/replace`, {
        method: "POST", body: { at: moment, meter: value, reason: form.reason.value } });
      toast(t("replaced", { p: point, old: answer.removed.serial, new: answer.installed.serial }), "good");
      newSerial.value = "";
      open(answer.installed);
      await list.load();
    }

    async function refresh(first) {
      if (!first) return;
      await list.load();
      if (params.get("open")) open(await api(`/registry/meters/${encodeURIComponent(params.get("open"))}`));
    }

    return { root, refresh };
  }

  /** The registry view: its tabs, and the chosen one (`dash.tab`, meters by default). */
  function registryView(dash) {
    const kit = makeKit(dash);
    const name = TABS.includes(dash.tab) ? dash.tab : "meters";
    const tabs = window.AMR_REGISTRY_TABS || {};
    const tab = name === "meters" ? metersTab(kit, dash.params) : tabs[name](kit, dash.params);
    const bar = h("nav", { class: "tabs registry-tabs", id: "registry-tabs" }, ...TABS.map((k) => h("a", {
      href: `#/registry/${k}`, class: k === name ? "active" : "", dataset: { tab: k },
    }, kit.t(`tab_${k}`))));
    function h(...args) { return dash.h(...args); }
    tab.root.prepend(bar);
    return { name: "registry", root: tab.root, refresh: tab.refresh };
  }

  window.AMR_REGISTRY = { view: registryView, title: (lang) => (TEXTS[lang] || TEXTS.ru).nav, page: PAGE };
})();
