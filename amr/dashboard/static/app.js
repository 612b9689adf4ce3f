/* The АСКУЭ dispatcher's dashboard: a small single-page app over the amr HTTP API.

   Screens (hash routes): #/login, #/ (overview), #/meter/<serial>, #/rejected, #/exports,
   #/registry/<tab> (admins; registry.js, registry_lists.js).
   The bearer token lives in sessionStorage (this tab only); the language in localStorage.
   Every few seconds the current screen asks the API again (REFRESH_MS).
*/
"use strict";

(function () {
  const API = "/api/v1";
  const REFRESH_MS = 5000;
  const TEXTS = window.AMR_TEXTS;
  const CHANNELS = ["a_plus", "a_minus", "r_plus", "r_minus"];
  const CHANNEL_LABEL = { a_plus: "A+", a_minus: "A−", r_plus: "R+", r_minus: "R−" };
  const CHANNEL_UNIT = { a_plus: "kwh", a_minus: "kwh", r_plus: "kvarh", r_minus: "kvarh" };

  const state = {
    lang: localStorage.getItem("amr.lang") === "en" ? "en" : "ru",
    token: sessionStorage.getItem("amr.token") || null,
    info: null,
    view: null, // {name, params, refresh}
    filters: { search: "", status: "", protocol: "", object: "" },
    chart: { step: "30min", date: null, channel: "a_plus" },
    rejectedStatus: "open",
    lastOk: null,
    failed: false,
    busy: false,
    message: null,
  };

  // ---- helpers --------------------------------------------------------------------------

  function t(key, vars) {
    const table = TEXTS[state.lang];
    let text = key in table ? table[key] : key in TEXTS.ru ? TEXTS.ru[key] : key;
    if (vars) for (const [k, v] of Object.entries(vars)) text = text.replace(`{${k}}`, String(v));
    return text;
  }

  /** node.replaceChildren without the null / false entries (optional parts of a screen). */
  function put(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  /** A decimal string ("1234.567") with group and decimal separators, digits kept exactly. */
  function num(value, decimals) {
    if (value === null || value === undefined || value === "") return "—";
    let text = typeof value === "number" ? value.toFixed(decimals === undefined ? 3 : decimals) : String(value);
    let sign = "";
    if (text.startsWith("-")) { sign = "−"; text = text.slice(1); }
    const [whole, frac] = text.split(".");
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, t("group"));
    return sign + grouped + (frac !== undefined && frac !== "" ? t("decimal") + frac : "");
  }

  function tz() { return state.info ? state.info.timezone : "Europe/Moscow"; }

  function fmtTime(iso, withSeconds) {
    if (!iso) return "—";
    const date = new Date(iso);
    const parts = new Intl.DateTimeFormat(t("locale"), {
      timeZone: tz(), year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: withSeconds ? "2-digit" : undefined, hourCycle: "h23",
    }).format(date);
    return parts.replace(",", "");
  }

  function ago(iso) {
    if (!iso) return t("never");
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 90) return t("ago_s", { n: seconds });
    if (seconds < 5400) return t("ago_m", { n: Math.round(seconds / 60) });
    if (seconds < 172800) return t("ago_h", { n: Math.round(seconds / 3600) });
    return t("ago_d", { n: Math.round(seconds / 86400) });
  }

  function localDate(offsetDays) {
    const base = state.info ? state.info.today : new Date().toISOString().slice(0, 10);
    const d = new Date(base + "T12:00:00Z");
    d.setUTCDate(d.getUTCDate() + (offsetDays || 0));
    return d.toISOString().slice(0, 10);
  }

  function statusBadge(status) {
    const s = status || "unknown";
    return h("span", { class: `badge st-${s}`, dataset: { status: s } }, t(`st_${s}`));
  }

  /** A protocol's name in the chosen language, from the registry's list in `info`. */
  function protocolLabel(kind) {
    const known = ((state.info && state.info.protocols) || []).find((p) => p.kind === kind);
    return known ? known.labels[state.lang] || known.labels.en || kind : kind;
  }

  function protocolText(meter) {
    return meter.protocol ? protocolLabel(meter.protocol) : "—";
  }

  /** The translated message of a driver error code (modbus.busy, timeout, …), else of its kind
   * (ConnectError, ReadTimeout, …, "partial"). */
  function errorText(kind, code) {
    for (const key of [code ? `err_${code}` : null, `err_${kind || "error"}`]) {
      if (key && t(key) !== key) return t(key);
    }
    return t("err_error");
  }

  /** The technical detail of an error, shown on demand. */
  function technical(text) {
    return text ? h("details", { class: "tech" }, h("summary", {}, t("details")), h("code", {}, text)) : null;
  }

  /** What a poll that answered in part left out: the channels (or the read) and the meter's answer. */
  function missingList(missing) {
    return (missing || []).map((m) => h("div", { class: "missing", dataset: { where: m.where, channels: m.channels.join(",") } },
      m.channels.length ? t("missing_what", { what: m.channels.join(", ") }) : t("missing_where", { where: m.where }),
      h("details", { class: "tech" }, h("summary", {}, t("device_answer")), h("code", {}, `${m.where}: ${m.answer}`))));
  }

  function sourceText(source) { return source ? t(`src_${source}`) : "—"; }
  function unit(channel) { return t(`unit_${CHANNEL_UNIT[channel]}`); }

  function toast(text, kind) {
    const box = h("div", { class: `toast ${kind || ""}` }, text);
    document.getElementById("toasts").appendChild(box);
    setTimeout(() => box.remove(), 5000);
  }

  // ---- the API --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { "Accept-Language": state.lang, Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {
        method: opts.method || "GET", headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (err) {
      state.failed = true;
      updateLive();
      throw new ApiError(0, { message: t("offline_api") });
    }
    if (response.status === 401 && state.token) {
      logout(t("session_expired"));
      throw new ApiError(401, { message: t("session_expired") });
    }
    if (opts.raw) {
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      return response;
    }
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    state.failed = false;
    state.lastOk = new Date();
    updateLive();
    return body;
  }

  // ---- shell: header, navigation, routing -------------------------------------------------

  function setLang(lang) {
    state.lang = lang;
    localStorage.setItem("amr.lang", lang);
    document.documentElement.lang = lang;
    document.title = t("title");
    renderShell();
    route();
  }

  function renderShell() {
    const bar = document.getElementById("topbar");
    bar.hidden = !state.info;
    for (const b of document.querySelectorAll("#lang-switch button")) {
      b.classList.toggle("active", b.dataset.lang === state.lang);
      b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
    }
    document.getElementById("logout").textContent = t("sign_out");
    if (!state.info) return;
    document.getElementById("site-name").textContent = state.info.site;
    document.getElementById("who").textContent = `${state.info.login} · ${t(`role_${state.info.role}`)}`;
    const nav = document.getElementById("nav");
    nav.replaceChildren();
    const links = [["#/", state.info.staff ? t("nav_overview") : t("nav_meters"), "overview"]];
    if (state.info.staff) links.push(["#/rejected", t("nav_rejected"), "rejected"]);
    links.push(["#/exports", t("nav_exports"), "exports"]);
    if (state.info.role === "admin" && window.AMR_REGISTRY) links.push(["#/registry", window.AMR_REGISTRY.title(state.lang), "registry"]);
    for (const [href, text, name] of links) {
      const active = state.view && (state.view.name === name || (name === "overview" && state.view.name === "meter"));
      nav.appendChild(h("a", { href, class: active ? "active" : "", dataset: { nav: name } }, text));
    }
    updateLive();
  }

  function updateLive() {
    const live = document.getElementById("live");
    if (!live) return;
    if (state.failed) {
      live.textContent = t("offline_api");
      live.className = "live failed";
    } else if (state.lastOk) {
      live.textContent = `● ${t("updated")} ${fmtTime(state.lastOk.toISOString(), true).slice(-8)}`;
      live.className = "live ok";
    }
  }

  function main() { return document.getElementById("main"); }

  function parseHash() {
    const raw = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
    const [path, query] = raw.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean);
    return { parts, params };
  }

  async function route() {
    if (!state.token) return showLogin();
    if (!state.info) {
      try {
        state.info = await api("/dashboard/info");
      } catch (err) {
        if (err.status !== 401) showLogin(err.message);
        return;
      }
    }
    const { parts, params } = parseHash();
    let view;
    if (parts[0] === "meter" && parts[1]) view = meterView(parts[1], params);
    else if (parts[0] === "rejected" && state.info.staff) view = rejectedView();
    else if (parts[0] === "exports") view = exportsView();
    else if (parts[0] === "registry" && state.info.role === "admin" && window.AMR_REGISTRY) {
      view = window.AMR_REGISTRY.view({  // registry.js
        h, api, toast, fmtTime, tz, lang: () => state.lang, protocols: () => state.info.protocols, tab: parts[1], params });
    }
    else view = overviewView();
    state.view = view;
    renderShell();
    main().replaceChildren(view.root);
    await refresh(true);
  }

  async function refresh(first) {
    const view = state.view;
    if (!view || !view.refresh || (state.busy && !first)) return;
    state.busy = true;
    try {
      await view.refresh(first);
    } catch (err) {
      if (err.status !== 401 && first) toast(`${t("error")}: ${err.message}`, "bad");
    } finally {
      state.busy = false;
    }
  }

  function logout(message) {
    if (state.token) api("/auth/logout", { method: "POST" }).catch(() => {});
    state.token = null;
    state.info = null;
    state.view = null;
    sessionStorage.removeItem("amr.token");
    state.message = message || null;
    renderShell();
    location.hash = "#/login";
    showLogin(message);
  }

  // ---- login ------------------------------------------------------------------------------

  function showLogin(message) {
    state.view = null;
    renderShell();
    const error = h("p", { class: "error", role: "alert", id: "login-error" }, message || state.message || "");
    const form = h("form", { id: "login-form", class: "card login", autocomplete: "on" },
      h("div", { class: "login-head" },
        h("img", { src: "favicon.svg", width: 40, height: 40, alt: "" }),
        h("h1", {}, t("login_title"))),
      h("p", { class: "muted" }, t("login_hint")),
      h("label", {}, t("login"), h("input", { name: "login", autocomplete: "username", required: true, autofocus: true })),
      h("label", {}, t("password"), h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
      error,
      h("button", { type: "submit", class: "primary" }, t("sign_in")),
      h("div", { class: "lang-inline" },
        ...["ru", "en"].map((lang) => h("button", {
          type: "button", class: lang === state.lang ? "link active" : "link", dataset: { lang },
          onclick: () => setLang(lang),
        }, lang === "ru" ? "Русский" : "English"))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      error.textContent = "";
      try {
        const body = await api("/auth/token", { method: "POST", body: { login: data.get("login"), password: data.get("password") } });
        state.token = body.access_token;
        sessionStorage.setItem("amr.token", state.token);
        state.message = null;
        state.info = null;
        if (location.hash === "" || location.hash.startsWith("#/login")) location.hash = "#/";
        else route();
      } catch (err) {
        error.textContent = err.message;
      }
    });
    main().replaceChildren(h("div", { class: "login-wrap" }, form));
  }

  // ---- overview ---------------------------------------------------------------------------

  function overviewView() {
    const staff = state.info.staff;
    const cards = h("section", { class: "cards", id: "summary" });
    const search = h("input", { type: "search", id: "search", placeholder: t("search"), value: state.filters.search });
    const statusSel = h("select", { id: "filter-status" },
      h("option", { value: "" }, t("all_statuses")),
      ...["online", "degraded", "offline", "unknown"].map((s) => h("option", { value: s }, t(`st_${s}`))));
    const protocolSel = h("select", { id: "filter-protocol" }, h("option", { value: "" }, t("all_protocols")));
    const objectSel = h("select", { id: "filter-object" }, h("option", { value: "" }, t("all_objects")));
    const count = h("span", { class: "muted", id: "shown" });
    const head = h("tr", {},
      h("th", {}, t("col_object")), h("th", {}, t("col_meter")), h("th", {}, t("col_serial")),
      h("th", {}, t("col_protocol")), staff ? h("th", {}, t("col_status")) : null, h("th", {}, t("col_last")),
      ...CHANNELS.map((c) => h("th", { class: "num" }, `${CHANNEL_LABEL[c]}, ${unit(c)}`)));
    const body = h("tbody");
    const table = h("table", { class: "grid meters", id: "meters-table" }, h("thead", {}, head), body);
    const empty = h("p", { class: "muted empty", hidden: true }, t("nothing_found"));
    let rows = [];

    function option(select, value, text) {
      if ([...select.options].some((o) => o.value === value)) return;
      select.appendChild(h("option", { value }, text));
    }

    function apply() {
      const f = state.filters;
      const needle = f.search.trim().toLowerCase();
      const shown = rows.filter((m) =>
        (!f.status || m.status === f.status) && (!f.protocol || m.protocol === f.protocol) &&
        (!f.object || m.object === f.object) &&
        (!needle || `${m.serial} ${m.name} ${m.object} ${m.point} ${m.model}`.toLowerCase().includes(needle)));
      body.replaceChildren(...shown.map((m) => h("tr", {
        dataset: { serial: m.serial, status: m.status || "" }, tabindex: 0, class: "clickable",
        onclick: () => { location.hash = `#/meter/${encodeURIComponent(m.serial)}`; },
        onkeydown: (e) => { if (e.key === "Enter") location.hash = `#/meter/${encodeURIComponent(m.serial)}`; },
      },
      h("td", {}, m.object || "—"),
      h("td", {}, h("a", { href: `#/meter/${encodeURIComponent(m.serial)}` }, m.name)),
      h("td", { class: "mono" }, m.serial),
      h("td", {}, protocolText(m)),
      staff ? h("td", { title: m.last_error || "" }, statusBadge(m.status)) : null,
      h("td", { title: fmtTime(m.last_reading, true) }, m.last_reading ? fmtTime(m.last_reading) : "—",
        h("div", { class: "sub" }, ago(m.last_reading))),
      ...CHANNELS.map((c) => h("td", { class: "num", dataset: { channel: c, value: m.values[c] || "" } }, num(m.values[c]))))));
      count.textContent = t("shown_of", { n: shown.length, total: rows.length });
      empty.hidden = shown.length > 0;
    }

    for (const [el, key] of [[search, "search"], [statusSel, "status"], [protocolSel, "protocol"], [objectSel, "object"]]) {
      el.addEventListener("input", () => { state.filters[key] = el.value; apply(); });
    }

    const sharing = h("section", { class: "card", id: "collectors", hidden: true });
    const root = h("div", { class: "page overview" },
      staff ? cards : null,
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, search, staff ? statusSel : null, protocolSel, objectSel, h("div", { class: "spacer" }), count),
        h("div", { class: "table-wrap" }, table), empty),
      staff ? sharing : null);

    /** Collectors sharing the buses through leases (PostgreSQL): who holds which bus, last heartbeats. */
    function showCollectors(report) {
      sharing.hidden = !(report && report.sharing && report.collectors.length);
      if (sharing.hidden) return;
      const stateOf = (c) => (c.alive ? "alive" : c.stopped_at ? "stopped" : "dead");
      const collectors = h("table", { class: "grid", id: "collectors-table" },
        h("thead", {}, h("tr", {}, h("th", {}, t("col_collector")), h("th", {}, t("col_state")),
          h("th", { class: "num" }, t("col_leases")), h("th", {}, t("col_heartbeat")))),
        h("tbody", {}, ...report.collectors.map((c) => h("tr", { dataset: { state: stateOf(c) } },
          h("td", { class: "mono" }, c.id), h("td", {}, t(`cs_${stateOf(c)}`)), h("td", { class: "num" }, String(c.leases)),
          h("td", { title: fmtTime(c.heartbeat_at, true) }, fmtTime(c.heartbeat_at, true),
            h("div", { class: "sub" }, ago(c.heartbeat_at)))))));
      const leases = h("table", { class: "grid", id: "leases-table" },
        h("thead", {}, h("tr", {}, h("th", {}, t("col_lease")), h("th", { class: "num" }, t("col_meters")),
          h("th", {}, t("col_holder")), h("th", {}, t("col_since")))),
        h("tbody", {}, ...report.leases.map((l) => h("tr", {},
          h("td", { class: "mono" }, l.lease), h("td", { class: "num" }, String(l.meters)),
          h("td", { class: "mono" }, l.holder || t("lease_free")), h("td", {}, l.since ? fmtTime(l.since, true) : "—")))));
      put(sharing, h("h2", {}, t("collectors")), h("div", { class: "table-wrap" }, collectors),
        h("details", {}, h("summary", {}, t("bus_leases", { n: report.leases.length })), h("div", { class: "table-wrap" }, leases)));
    }

    function card(kind, label, value, note, href) {
      return h(href ? "a" : "div", { class: `stat ${kind}`, dataset: { kind }, href: href || null },
        h("div", { class: "value", dataset: { value: String(value) } }, num(String(value))),
        h("div", { class: "label" }, label),
        note ? h("div", { class: "note" }, note) : null);
    }

    async function refreshAll() {
      const [summary, meters, collectors] = await Promise.all([
        staff ? api("/dashboard/summary") : Promise.resolve(null),
        api("/dashboard/meters"),
        staff ? api("/dispatch/collectors").catch(() => null) : Promise.resolve(null),
      ]);
      showCollectors(collectors);
      rows = meters;
      for (const m of rows) {
        if (m.protocol) option(protocolSel, m.protocol, protocolLabel(m.protocol));
        if (m.object) option(objectSel, m.object, m.object);
      }
      statusSel.value = state.filters.status;
      protocolSel.value = state.filters.protocol;
      objectSel.value = state.filters.object;
      if (summary) {
        const s = summary.status;
        put(cards,
          card("total", t("meters_total"), summary.meters),
          card("online", t("st_online"), s.online),
          card("degraded", t("st_degraded"), s.degraded),
          card("offline", t("st_offline"), s.offline),
          s.unknown ? card("unknown", t("st_unknown"), s.unknown) : null,
          card("readings", t("readings_today"), summary.readings_today, t("of_expected", { n: summary.expected_today })),
          card("refused", t("refused_today"), summary.refused_today, t("open_in_queue", { n: summary.refused_open }), "#/rejected"));
      }
      apply();
    }

    return { name: "overview", root, refresh: refreshAll };
  }

  // ---- a meter ----------------------------------------------------------------------------

  function meterView(serial, params) {
    const staff = state.info.staff;
    if (params.get("step")) state.chart.step = params.get("step");
    if (params.get("date")) state.chart.date = params.get("date");
    if (params.get("channel")) state.chart.channel = params.get("channel");
    if (!state.chart.date) state.chart.date = localDate(0);
    const title = h("h1", { id: "meter-title" }, serial);
    const subtitle = h("div", { class: "subtitle" });
    const facts = h("dl", { class: "facts", id: "meter-facts" });
    const current = h("table", { class: "grid", id: "current-table" });
    const pollButton = staff && state.info.collector === "running"
      ? h("button", { type: "button", id: "poll-now", onclick: pollNow }, t("poll_now")) : null;

    // chart controls
    const steps = [["30min", t("step_day")], ["day", t("step_month")], ["month", t("step_year")]];
    const tabs = h("div", { class: "tabs", role: "tablist" }, ...steps.map(([step, text]) => h("button", {
      type: "button", role: "tab", dataset: { step }, class: state.chart.step === step ? "active" : "",
      onclick: () => { state.chart.step = step; syncTabs(); loadChart(); },
    }, text)));
    const dateInput = h("input", { type: "date", id: "chart-date", value: state.chart.date });
    dateInput.addEventListener("change", () => { if (dateInput.value) { state.chart.date = dateInput.value; loadChart(); } });
    const channelSel = h("select", { id: "chart-channel" }, ...CHANNELS.map((c) => h("option", { value: c }, `${CHANNEL_LABEL[c]}, ${unit(c)}`)));
    channelSel.value = state.chart.channel;
    channelSel.addEventListener("change", () => { state.chart.channel = channelSel.value; loadChart(); });
    const prev = h("button", { type: "button", class: "icon", title: "←", onclick: () => shift(-1) }, "‹");
    const next = h("button", { type: "button", class: "icon", title: "→", onclick: () => shift(1) }, "›");
    const chartBox = h("div", { class: "chart-box", id: "chart-box" });
    const chartTotal = h("div", { class: "chart-total", id: "chart-total" });
    const legend = h("div", { class: "legend" },
      h("span", { class: "key full" }, t("legend_full")), h("span", { class: "key partial" }, t("legend_partial")),
      h("span", { class: "key current" }, t("legend_current")),
      h("span", { class: "key estimated" }, t("legend_estimated")),
      h("span", { class: "key gap" }, t("legend_gap")));

    // power quality (quality.js): the last day's instantaneous values of one group, limits dashed
    const qualityGroups = Object.keys(window.AmrQuality.GROUPS);
    const qualitySel = h("select", { id: "quality-group" }, ...qualityGroups.map((g) => h("option", { value: g }, t(`q_group_${g}`))));
    const qualityBox = h("div", { class: "chart-box", id: "quality-box" });
    const qualityLegend = h("div", { class: "legend q-legend", id: "quality-legend" });
    const qualityEvents = h("div", { id: "quality-events" });
    const qualityCard = h("section", { class: "card", id: "quality-card", hidden: true },
      h("div", { class: "toolbar" }, h("h2", {}, t("quality")), h("div", { class: "spacer" }), qualitySel),
      h("p", { class: "muted" }, t("quality_hint")), qualityBox, qualityLegend,
      h("h3", {}, t("quality_events")), qualityEvents);
    const relay = staff ? window.AmrRelay.card(serial, { h, t, api, toast, fmtTime }) : null;
    let qualitySeries = null;
    qualitySel.addEventListener("change", () => { if (qualitySeries) drawQuality(qualitySeries); });

    const polls = h("div", { id: "polls" });
    const problems = h("div", { id: "problems" });
    const events = window.AmrEvents.section(serial, { h, api, fmtTime, lang: state.lang, staff, toast }); // events.js
    const historyBody = h("tbody");
    const historyTable = h("table", { class: "grid", id: "history" },
      h("thead", {}, h("tr", {}, h("th", {}, t("col_time")), h("th", {}, t("col_tariff")),
        ...CHANNELS.map((c) => h("th", { class: "num" }, `${CHANNEL_LABEL[c]}, ${unit(c)}`)),
        h("th", { class: "num" }, `${t("col_consumption")}, ${unit("a_plus")}`),
        h("th", {}, t("col_source")), h("th", {}, t("col_flags")))), historyBody);
    const tariffSel = h("select", { id: "history-tariff" }, h("option", { value: "" }, t("all_tariffs")));
    const sourceSel = h("select", { id: "history-source" }, h("option", { value: "" }, t("all_sources")),
      ...["askue", ...new Set((state.info.protocols || []).map((p) => p.source)), "web", "mobile", "operator", "import"].map((s) =>
        h("option", { value: s }, s === "askue" ? "АСКУЭ" : sourceText(s))));
    const more = h("button", { type: "button", id: "history-more", hidden: true, onclick: () => loadHistory(true) }, t("more"));
    let cursor = null;
    let expanded = false;
    let meterInfo = null;

    tariffSel.addEventListener("change", () => loadHistory(false));
    sourceSel.addEventListener("change", () => loadHistory(false));

    const root = h("div", { class: "page meter" },
      h("a", { href: "#/", class: "back" }, t("back")),
      h("div", { class: "meter-head" }, h("div", {}, title, subtitle), h("div", { class: "spacer" }), pollButton),
      h("div", { class: "two" },
        h("section", { class: "card" }, h("h2", {}, t("current_values")), h("div", { class: "table-wrap" }, current)),
        h("section", { class: "card" }, facts)),
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("consumption")), tabs, h("div", { class: "spacer" }), prev, dateInput, next, channelSel),
        chartBox, h("div", { class: "chart-foot" }, legend, chartTotal)),
      relay ? relay.root : null,
      qualityCard,
      staff ? h("section", { class: "card" }, h("h2", {}, t("polls_errors")), h("div", { class: "two" },
        h("div", {}, h("h3", {}, t("recent_polls")), polls), h("div", {}, h("h3", {}, t("problems")), problems))) : null,
      events.root,
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("history")), h("div", { class: "spacer" }), tariffSel, sourceSel),
        h("div", { class: "table-wrap" }, historyTable), more));

    function syncTabs() {
      for (const b of tabs.querySelectorAll("button")) b.classList.toggle("active", b.dataset.step === state.chart.step);
    }

    function shift(direction) {
      const d = new Date(state.chart.date + "T12:00:00Z");
      if (state.chart.step === "30min") d.setUTCDate(d.getUTCDate() + direction);
      else if (state.chart.step === "day") d.setUTCMonth(d.getUTCMonth() + direction, 1);
      else d.setUTCFullYear(d.getUTCFullYear() + direction, 0, 1);
      state.chart.date = d.toISOString().slice(0, 10);
      dateInput.value = state.chart.date;
      loadChart();
    }

    function period() {
      const date = state.chart.date;
      if (state.chart.step === "30min") return { from: date, to: date };
      if (state.chart.step === "day") {
        const first = date.slice(0, 7) + "-01";
        const d = new Date(first + "T12:00:00Z");
        d.setUTCMonth(d.getUTCMonth() + 1, 0);
        return { from: first, to: d.toISOString().slice(0, 10) };
      }
      return { from: date.slice(0, 4) + "-01-01", to: date.slice(0, 4) + "-12-31" };
    }

    let chartAsked = 0;
    async function loadChart() {
      const p = period();
      const q = new URLSearchParams({ step: state.chart.step, from: p.from, to: p.to, channel: state.chart.channel });
      const asked = ++chartAsked;
      const series = await api(`/meters/${encodeURIComponent(serial)}/consumption?${q}`);
      if (asked !== chartAsked) return; // a later choice (date, step, channel) was asked for meanwhile: its answer is drawn
      const svg = window.AmrChart.render(series, {
        t, number: (v, d) => num(typeof v === "number" ? v : v, d), unit: unit(state.chart.channel),
        months: t("months"), now: new Date(),
      });
      const anyValue = series.buckets.some((b) => b.value !== null);
      put(chartBox, svg, anyValue ? null : h("p", { class: "muted overlay" }, t("no_data_period")));
      put(chartTotal,h("span", {}, `${t("total")}: `),
        h("strong", { dataset: { value: series.total || "" } }, `${num(series.total)} ${unit(state.chart.channel)}`));
    }

    async function loadQuality() {
      const series = await api(`/meters/${encodeURIComponent(serial)}/quality`);
      qualitySeries = series;
      qualityCard.hidden = !series.samples.length && !series.events.length;
      if (!qualityCard.hidden) drawQuality(series);
    }

    function drawQuality(series) {
      const group = qualitySel.value;
      const quantities = window.AmrQuality.GROUPS[group];
      const present = quantities.filter((q) => series.samples.some((s) => s[q] !== null && s[q] !== undefined));
      const qunit = t(`qunit_${series.units[quantities[0]]}`);
      const limits = series.limits[group] || null;
      const svg = window.AmrQuality.render(series, { group, t, number: (v, d) => num(v, d), unit: qunit, limits,
        timeText: (iso) => fmtTime(iso, true) });
      put(qualityBox, svg, present.length ? null : h("p", { class: "muted overlay" }, t("no_quality")));
      put(qualityLegend, ...present.map((q) => h("span", { class: `key q-${quantities.indexOf(q) + 1}` }, t(`q_${q}`))));
      const events = series.events.filter((e) => quantities.includes(e.quantity));
      put(qualityEvents, events.length
        ? h("ul", { class: "events" }, ...events.slice(-20).reverse().map((e) => h("li", { class: "bad", dataset: { quantity: e.quantity, kind: e.kind } },
          h("span", { class: "when" }, fmtTime(e.ts, true)), " ", h("strong", {}, t(`q_${e.quantity}`)),
          ` ${num(e.value, 2)} ${qunit} — ${t(`q_${e.kind}`)} ${num(e.threshold, 2)}`)))
        : h("p", { class: "muted" }, t("no_quality_events")));
    }

    function fact(label, value, key) {
      return [h("dt", {}, label), h("dd", { dataset: { fact: key || "" } }, value === null || value === undefined || value === "" ? "—" : value)];
    }

    /** The kind of the meter's last error: a partial answer, or the kind of its newest failed poll. */
    function lastErrorKind(d) {
      const hd = d.health;
      if (hd.status === "degraded" && hd.consecutive_failures === 0) return "partial";
      const failed = (d.polls || []).find((p) => !p.ok);
      return failed ? failed.error_kind : "error";
    }

    function renderDetail(d) {
      meterInfo = d;
      const m = d.meter;
      title.textContent = m.name;
      if (pollButton) pollButton.hidden = !m.protocol || (state.info.protocols || []).some((p) => p.kind === m.protocol && p.push); // push meters report by themselves
      put(subtitle,
        h("span", { class: "mono" }, m.serial), " · ", m.object || "—", " · ", protocolText(m), " ",
        staff ? statusBadge(m.status) : null);
      const hd = d.health;
      facts.replaceChildren(
        ...fact(t("point"), m.point), ...fact(t("model"), m.model),
        ...fact(t("bus"), m.bus ? `${m.bus} (${protocolText(m)})` : null),
        ...fact(t("address"), d.address), ...fact(t("ratio"), `${d.ct_ratio} × ${d.vt_ratio}`),
        ...fact(t("register"), `${d.digits}+${d.decimals}`),
        ...fact(t("accounts"), d.accounts.join(", ")),
        ...(hd ? [
          ...fact(t("last_poll"), hd.last_poll ? `${fmtTime(hd.last_poll, true)} (${ago(hd.last_poll)})` : null, "last_poll"),
          ...fact(t("last_success"), hd.last_success ? fmtTime(hd.last_success, true) : null),
          ...fact(t("last_error"), hd.last_error ? [
            `${hd.last_error_at ? fmtTime(hd.last_error_at, true) + ": " : ""}${errorText(lastErrorKind(d))}`,
            technical(hd.last_error)] : null, "last_error"),
          ...fact(t("polls_failures"), `${hd.polls} / ${hd.failures}`),
        ] : []));
      // current values per tariff
      const rows = d.latest.map((r) => h("tr", { dataset: { tariff: String(r.tariff) } },
        h("th", {}, r.tariff === 0 ? t("tariff_total") : t("tariff_n", { n: r.tariff })),
        ...CHANNELS.map((c) => h("td", { class: "num", dataset: { channel: c, value: r.values[c] || "" } }, num(r.values[c]))),
        h("td", {}, fmtTime(r.timestamp, true), h("div", { class: "sub" }, sourceText(r.source)))));
      current.replaceChildren(
        h("thead", {}, h("tr", {}, h("th", {}, t("col_tariff")), ...CHANNELS.map((c) => h("th", { class: "num" }, `${CHANNEL_LABEL[c]}, ${unit(c)}`)), h("th", {}, t("col_time")))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("no_readings")))));
      if (tariffSel.options.length === 1) {
        tariffSel.appendChild(h("option", { value: "0" }, t("tariff_total")));
        const zones = m.tariffs > 1 ? m.tariffs : 0;
        for (let i = 1; i <= zones; i++) tariffSel.appendChild(h("option", { value: String(i) }, t("tariff_n", { n: i })));
      }
      if (staff) {
        if (d.polls === null) polls.replaceChildren(h("p", { class: "muted" }, t("no_polls")));
        else polls.replaceChildren(h("ul", { class: "events" }, ...d.polls.map((p) => {
          const kind = !p.ok ? "failed" : p.missing && p.missing.length ? "partial" : "ok";
          return h("li", { class: kind === "failed" ? "bad" : kind, dataset: { kind } },
            h("span", { class: "when" }, fmtTime(p.polled_at, true)), " ",
            h("strong", {}, t({ ok: "poll_ok_short", partial: "poll_partial_short", failed: "poll_fail_short" }[kind])),
            ` · ${num(p.seconds, 2)} ${t("sec")} · ${t("attempts", { n: p.attempts })}`,
            p.ok && p.values ? h("div", { class: "sub" }, `A+ ${num(p.values.a_plus)} ${unit("a_plus")}`) : null,
            p.error ? h("div", { class: "sub" }, errorText(p.error_kind, p.error_code), technical(`${p.error_code || p.error_kind || ""}: ${p.error}`)) : null,
            kind === "partial" ? h("div", { class: "sub" }, missingList(p.missing)) : null,
            p.rejected && Object.keys(p.rejected).length ? h("div", { class: "sub bad" }, Object.keys(p.rejected).join(", ")) : null);
        })));
        problems.replaceChildren(d.problems.length
          ? h("ul", { class: "events" }, ...d.problems.map((p) => h("li", { class: { refused: "warn", partial: "partial" }[p.kind] || "bad", dataset: { kind: p.kind, code: p.code } },
            h("span", { class: "when" }, fmtTime(p.at, true)), " ",
            p.kind === "refused"
              ? [h("code", {}, p.code), h("div", { class: "sub" }, p.message)]
              : [h("strong", {}, errorText(p.code)),
                 p.missing && p.missing.length ? h("div", { class: "sub" }, missingList(p.missing)) : h("div", { class: "sub" }, technical(p.message))])))
          : h("p", { class: "muted" }, t("no_problems")));
      }
    }

    async function loadHistory(append) {
      if (!append) { cursor = null; expanded = false; }
      const q = new URLSearchParams({ limit: "25" });
      if (append && cursor) q.set("cursor", cursor);
      if (tariffSel.value) q.set("tariff", tariffSel.value);
      if (sourceSel.value) q.set("source", sourceSel.value);
      const page = await api(`/meters/${encodeURIComponent(serial)}/readings?${q}`);
      cursor = page.next_cursor;
      if (append) expanded = true;
      const rows = page.items.map((r) => h("tr", { dataset: { id: r.id, source: r.source, flags: r.flags.join(",") } },
        h("td", {}, fmtTime(r.timestamp, true)),
        h("td", {}, r.tariff === 0 ? t("tariff_total") : t("tariff_n", { n: r.tariff })),
        ...CHANNELS.map((c) => h("td", { class: "num" }, num(r.values[c]))),
        h("td", { class: "num" }, num(r.consumption.a_plus)),
        h("td", {}, sourceText(r.source)),
        h("td", {}, ...r.flags.map((f) => h("span", { class: `flag f-${f}` }, t(`flag_${f}`))))));
      if (append) historyBody.append(...rows);
      else historyBody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, t("no_readings")))]));
      more.hidden = !cursor;
    }

    async function pollNow() {
      pollButton.disabled = true;
      pollButton.textContent = t("polling");
      try {
        await api(`/dispatch/meters/${encodeURIComponent(serial)}/poll`, { method: "POST" });
        toast(t("poll_ok"), "good");
      } catch (err) {
        toast(`${t("error")}: ${err.message}`, "bad");
      } finally {
        pollButton.disabled = false;
        pollButton.textContent = t("poll_now");
        refresh(false);
      }
    }

    async function refreshMeter(first) {
      try {
        const detail = await api(`/dashboard/meters/${encodeURIComponent(serial)}`);
        renderDetail(detail);
        if (relay) {
          const spec = (state.info.protocols || []).find((p) => p.kind === detail.meter.protocol);
          await relay.refresh(spec ? spec.capabilities : []);
        }
      } catch (err) {
        if (err.status === 404) {
          main().replaceChildren(h("div", { class: "page" }, h("a", { href: "#/", class: "back" }, t("back")), h("p", {}, t("not_found"))));
          state.view = null;
          return;
        }
        throw err;
      }
      await Promise.all([
        loadChart(), loadQuality(), expanded && !first ? Promise.resolve() : loadHistory(false), events.refresh(),
      ]);
    }

    void meterInfo;
    return { name: "meter", root, refresh: refreshMeter };
  }

  // ---- refused readings -------------------------------------------------------------------

  function rejectedView() {
    const body = h("tbody");
    const table = h("table", { class: "grid", id: "rejected-table" }, h("thead", {}, h("tr", {},
      h("th", {}, t("col_received")), h("th", {}, t("col_meter")), h("th", {}, t("col_reading_time")),
      h("th", {}, t("col_tariff")), h("th", {}, t("col_reason")), h("th", { class: "num" }, t("col_value")),
      h("th", { class: "num" }, t("col_previous")), h("th", {}, t("col_source")), h("th", {}, t("col_action")))), body);
    const empty = h("p", { class: "muted empty", hidden: true, id: "queue-empty" }, t("queue_empty"));
    const total = h("span", { class: "muted", id: "queue-total" });
    const statusTabs = h("div", { class: "tabs" }, ...["open", "accepted", "all"].map((s) => h("button", {
      type: "button", dataset: { status: s }, class: state.rejectedStatus === s ? "active" : "",
      onclick: () => {
        state.rejectedStatus = s;
        for (const b of statusTabs.querySelectorAll("button")) b.classList.toggle("active", b.dataset.status === s);
        body.replaceChildren();
        refresh(true);
      },
    }, t(`status_${s}`))));
    const auditBody = h("tbody");
    const audit = h("table", { class: "grid", id: "audit-table" }, h("thead", {}, h("tr", {},
      h("th", {}, t("col_at")), h("th", {}, t("col_actor")), h("th", {}, t("col_action_done")),
      h("th", {}, t("col_subject")), h("th", {}, t("col_why")))), auditBody);
    const auditEmpty = h("p", { class: "muted", hidden: true }, t("audit_empty"));

    const root = h("div", { class: "page rejected" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("rejected_title")), statusTabs, h("div", { class: "spacer" }), total),
        h("p", { class: "muted" }, t("rejected_hint")),
        h("div", { class: "table-wrap" }, table), empty),
      h("section", { class: "card" }, h("h2", {}, t("audit")), h("div", { class: "table-wrap" }, audit), auditEmpty));

    function lowerThan(a, b) {
      // the API's values are decimal strings with three places: compare them exactly, as integers
      if (a === null || a === undefined || b === null || b === undefined) return false;
      return BigInt(String(a).replace(".", "")) < BigInt(String(b).replace(".", ""));
    }

    function values(v, other) {
      const shown = CHANNELS.filter((c) => v[c] !== null && v[c] !== undefined);
      if (!shown.length) return "—";
      return h("div", {}, ...shown.map((c) => h("div", {
        dataset: { channel: c, value: v[c] }, class: other && lowerThan(v[c], other[c]) ? "lower" : null,
      }, `${CHANNEL_LABEL[c]} ${num(v[c])}`)));
    }

    function row(r) {
      const reason = h("input", { class: "reason", placeholder: t("reason_placeholder"), "aria-label": t("reason_placeholder"), maxlength: 1000 });
      const button = h("button", { type: "button", class: "accept primary small" }, t("accept"));
      button.addEventListener("click", async () => {
        if (!reason.value.trim()) { reason.focus(); toast(t("reason_required"), "bad"); return; }
        button.disabled = true;
        try {
          await api(`/dispatch/rejected/${r.id}/accept`, { method: "POST", body: { reason: reason.value.trim() } });
          toast(t("accept_done", { id: r.id }), "good");
          if (state.rejectedStatus === "open") tr.remove();
          await refresh(true);
        } catch (err) {
          toast(`${t("error")}: ${err.message}`, "bad");
          button.disabled = false;
        }
      });
      reason.addEventListener("keydown", (e) => { if (e.key === "Enter") button.click(); });
      const action = r.status === "open"
        ? h("div", { class: "accept-form" }, reason, button)
        : h("div", { class: "sub" }, t("accepted_by", { who: r.resolved_by || "—" }), r.resolution ? h("div", {}, `«${r.resolution}»`) : null);
      const tr = h("tr", { dataset: { id: String(r.id), status: r.status } },
        h("td", {}, fmtTime(r.received_at, true)),
        h("td", {}, h("a", { href: `#/meter/${encodeURIComponent(r.meter)}` }, r.meter_name || r.meter),
          h("div", { class: "sub mono" }, r.meter), r.object ? h("div", { class: "sub" }, r.object) : null),
        h("td", {}, r.timestamp ? fmtTime(r.timestamp, true) : "—"),
        h("td", {}, r.tariff === null ? "—" : r.tariff === 0 ? t("tariff_total") : t("tariff_n", { n: r.tariff })),
        h("td", { class: "reasons", title: r.message || null }, ...r.reasons.map((x) => h("div", {}, h("code", { class: "reason-code" }, x.code), " ", x.message)),
          r.message && state.lang === "en" ? h("div", { class: "sub" }, r.message) : null),
        h("td", { class: "num value" }, values(r.values, r.previous ? r.previous.values : null)),
        h("td", { class: "num previous" }, r.previous ? [values(r.previous.values), h("div", { class: "sub" }, fmtTime(r.previous.timestamp, true))] : "—"),
        h("td", {}, sourceText(r.source)),
        h("td", {}, action));
      return tr;
    }

    async function refreshQueue() {
      const [page, trail] = await Promise.all([
        api(`/dashboard/rejected?status=${state.rejectedStatus}&limit=200`),
        api("/dashboard/audit?limit=50"),
      ]);
      const existing = new Map([...body.children].map((tr) => [tr.dataset.id, tr]));
      const next = page.items.map((r) => {
        const kept = existing.get(String(r.id));
        return kept && kept.dataset.status === r.status ? kept : row(r);
      });
      body.replaceChildren(...next);
      empty.hidden = next.length > 0;
      total.textContent = t("shown_of", { n: page.items.length, total: page.total });
      auditBody.replaceChildren(...trail.map((a) => h("tr", { dataset: { action: a.action, subject: a.subject } },
        h("td", {}, fmtTime(a.at, true)), h("td", {}, a.actor),
        h("td", {}, t(`act_${a.action}`) === `act_${a.action}` ? a.action : t(`act_${a.action}`)),
        h("td", { class: "mono" }, a.subject), h("td", {}, a.reason))));
      auditEmpty.hidden = trail.length > 0;
    }

    return { name: "rejected", root, refresh: refreshQueue };
  }

  // ---- exports ----------------------------------------------------------------------------

  function exportsView() {
    const staff = state.info.staff;
    const day = h("input", { type: "date", id: "export-date", value: localDate(-1) });
    const meterSel = h("select", { id: "export-meter" }, h("option", { value: "" }, t("all_meters")));
    const csvUrl = h("code", { class: "url", id: "csv-url" });
    const xmlUrl = h("code", { class: "url", id: "x80020-url" });

    function urls() {
      const q = new URLSearchParams({ from: day.value, to: day.value });
      if (meterSel.value) q.set("meter", meterSel.value);
      csvUrl.textContent = `GET ${API}/export/readings.csv?${q}`;
      xmlUrl.textContent = `GET ${API}/export/80020?date=${day.value}`;
      return { csv: `/export/readings.csv?${q}`, xml: `/export/80020?date=${encodeURIComponent(day.value)}` };
    }
    day.addEventListener("change", urls);
    meterSel.addEventListener("change", urls);

    async function download(path, fallback, button) {
      button.disabled = true;
      try {
        const response = await api(path, { raw: true });
        const blob = await response.blob();
        const disposition = response.headers.get("Content-Disposition") || "";
        const match = /filename="?([^";]+)"?/.exec(disposition);
        const name = match ? match[1] : fallback;
        const link = h("a", { href: URL.createObjectURL(blob), download: name });
        document.body.appendChild(link);
        link.click();
        setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
        toast(t("downloaded", { name }), "good");
      } catch (err) {
        toast(`${t("error")}: ${err.message}`, "bad");
      } finally {
        button.disabled = false;
      }
    }

    const csvButton = h("button", { type: "button", id: "export-csv", class: "primary" }, t("download"));
    csvButton.addEventListener("click", () => download(urls().csv, `readings_${day.value}.csv`, csvButton));
    const xmlButton = h("button", { type: "button", id: "export-80020", class: "primary" }, t("download"));
    xmlButton.addEventListener("click", () => download(urls().xml, `80020_${day.value}.xml`, xmlButton));
    xmlButton.disabled = !staff || !state.info.export_80020;

    const root = h("div", { class: "page exports" },
      h("section", { class: "card" }, h("h2", {}, t("exports_title")), h("p", { class: "muted" }, t("exports_hint")),
        h("div", { class: "toolbar" }, h("label", {}, t("export_day"), day), h("label", {}, t("export_meter"), meterSel))),
      h("div", { class: "two" },
        h("section", { class: "card export" }, h("h3", {}, t("csv_title")), h("p", {}, t("csv_desc")), csvUrl, csvButton),
        h("section", { class: "card export" }, h("h3", {}, t("x80020_title")), h("p", {}, t("x80020_desc")), xmlUrl,
          !staff ? h("p", { class: "muted" }, t("staff_only")) : !state.info.export_80020 ? h("p", { class: "muted" }, t("x80020_off")) : null,
          xmlButton)));

    async function load(first) {
      if (!first) return;
      const meters = await api("/dashboard/meters");
      for (const m of meters) meterSel.appendChild(h("option", { value: m.serial }, `${m.serial} — ${m.name}`));
      urls();
    }
    urls();
    return { name: "exports", root, refresh: load };
  }

  // ---- start ------------------------------------------------------------------------------

  document.getElementById("lang-switch").addEventListener("click", (e) => {
    const lang = e.target && e.target.dataset ? e.target.dataset.lang : null;
    if (lang) setLang(lang);
  });
  document.getElementById("logout").addEventListener("click", () => logout());
  window.addEventListener("hashchange", () => { if (!location.hash.startsWith("#/login") || !state.token) route(); });
  setInterval(() => { if (!document.hidden && state.token) refresh(false); }, REFRESH_MS);
  setInterval(updateLive, 1000);
  document.documentElement.lang = state.lang;
  document.title = t("title");
  renderShell();
  route();
})();
