/* Tabs of the registry screen (registry.js) for metering points, objects and buses, each paged and
   searched on the server: listed, created, edited and removed, with the API's refusal shown in the
   chosen language. `kit`: registry.js's helpers. */
"use strict";

(function () {
  const PAGE = 50;

  /** A hash route's parameter, encoded to survive app.js decoding the whole hash once. */
  const param = (value) => encodeURIComponent(encodeURIComponent(value));

  /** A list of `/registry/<path>` paged and searched by the API (its page in `answer[path]`, `answer.next`);
      the box searches as one types (after a pause) or on Enter. */
  function serverList(kit, path, headers, placeholder, row, open) {
    const { h, api } = kit;
    const box = h("input", { type: "search", id: `${path}-filter`, placeholder, "aria-label": placeholder, maxlength: 100 });
    const list = kit.pagedList(path, headers, async (after) => {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (box.value.trim()) q.set("search", box.value.trim());
      if (after) q.set("after", after);
      const page = await api(`/registry/${path}?${q}`);
      return { items: page[path], next: page.next };
    }, row, open);
    let pause = null;
    box.addEventListener("input", () => { clearTimeout(pause); pause = setTimeout(() => list.restart(), 250); });
    box.addEventListener("keydown", (e) => { if (e.key === "Enter") { clearTimeout(pause); list.restart(); } });
    return { filter: box, list, reload: () => list.load() };
  }

  function pointsTab(kit, params) {
    const { h, api, toast, t } = kit;
    const ofObject = params.get("object");
    let chosen = null;
    const list = kit.pagedList("points", [h("th", {}, t("col_code")), h("th", {}, t("col_object")), h("th", {}, t("col_meter")),
      h("th", { class: "num" }, t("col_meters_ever"))], async (after) => {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (search.value.trim()) q.set("search", search.value.trim());
      if (ofObject) q.set("object", ofObject);
      if (after) q.set("after", after);
      const page = await api(`/registry/points?${q}`);
      return { items: page.points, next: page.next };
    }, (p) => [p.code, [h("td", { class: "mono" }, p.code), h("td", {}, p.object), h("td", { class: "mono" }, p.meter || "—"),
      h("td", { class: "num" }, String(p.meters))]], open);
    list.empty.textContent = t("points_none");
    const [search, find] = kit.searchBox("points-search", t("points_search"), () => list.restart());

    const code = h("input", { id: "point-code", maxlength: 100, "aria-label": t("point_code") });
    const object = h("input", { id: "point-object", maxlength: 200, "aria-label": t("point_object") });
    const meterLink = h("a", { id: "point-meter", class: "button" });
    const removeButton = h("button", { type: "button", id: "point-remove", onclick: () => form.run(remove) }, t("remove"));
    const form = kit.editor("point-editor",
      h("div", { class: "fields" }, h("label", {}, t("point_code"), code), h("label", {}, t("point_object"), object)));
    form.card.append(h("div", { class: "toolbar" }, form.reason,
      h("button", { type: "button", class: "primary", id: "point-save", onclick: () => form.run(save) }, t("save")), removeButton),
    form.refusal, meterLink);

    const root = h("div", { class: "page registry" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("points_title")), search, find,
          ofObject ? h("a", { href: "#/registry/points", class: "chip", id: "points-of-object" }, t("of_object", { o: ofObject }), " ×") : null,
          h("div", { class: "spacer" }),
          h("button", { type: "button", id: "point-new", onclick: () => open(null) }, t("new_point"))),
        ...list.nodes),
      form.card);

    function open(point) {
      chosen = point;
      form.show(point ? point.code : t("new_point"));
      code.value = point ? point.code : "";
      code.readOnly = !!point;
      object.value = point ? point.object : ofObject || "";
      removeButton.hidden = !point;
      meterLink.hidden = !(point && point.meter);
      if (point && point.meter) {
        meterLink.href = `#/registry/meters?open=${param(point.meter)}`;
        meterLink.textContent = t("open_meter", { s: point.meter });
      }
    }

    async function save() {
      const answer = await api(`/registry/points/${encodeURIComponent(code.value.trim())}?reason=${form.why()}`, {
        method: "PUT", body: { object: object.value } });
      toast(t("point_saved", { p: answer.point, o: answer.object }), "good");
      open({ code: answer.point, object: answer.object, meter: chosen ? chosen.meter : null, meters: chosen ? chosen.meters : 0 });
      await list.load();
    }

    async function remove() {
      if (!chosen || !kit.confirm(t("confirm_delete", { s: chosen.code }))) return;
      await api(`/registry/points/${encodeURIComponent(chosen.code)}?reason=${form.why()}`, { method: "DELETE" });
      toast(t("point_removed", { p: chosen.code }), "good");
      form.hide();
      chosen = null;
      await list.load();
    }

    return { root, refresh: (first) => (first ? list.load() : Promise.resolve()) };
  }

  function objectsTab(kit) {
    const { h, api, toast, t } = kit;
    let chosen = null;
    const list = serverList(kit, "objects", [h("th", {}, t("object_name")), h("th", { class: "num" }, t("col_points")),
      h("th", { class: "num" }, t("col_meters_now"))], t("objects_filter"),
    (o) => [o.name, [h("td", {}, o.name), h("td", { class: "num" }, String(o.points)), h("td", { class: "num" }, String(o.meters))]],
    open);
    list.list.empty.textContent = t("objects_none");

    const name = h("input", { id: "object-name", maxlength: 200, "aria-label": t("object_name") });
    const pointsLink = h("a", { id: "object-points" }, t("its_points"));
    const removeButton = h("button", { type: "button", id: "object-remove", onclick: () => form.run(remove) }, t("remove"));
    const form = kit.editor("object-editor", h("div", { class: "fields" }, h("label", {}, t("object_name"), name)));
    form.card.append(h("div", { class: "toolbar" }, form.reason,
      h("button", { type: "button", class: "primary", id: "object-save", onclick: () => form.run(save) }, t("save")), removeButton),
    form.refusal, pointsLink);

    const root = h("div", { class: "page registry" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("objects_title")), list.filter, h("div", { class: "spacer" }),
          h("button", { type: "button", id: "object-new", onclick: () => open(null) }, t("new_object"))),
        ...list.list.nodes),
      form.card);

    function open(object) {
      chosen = object;
      form.show(object ? object.name : t("new_object"));
      name.value = object ? object.name : "";
      removeButton.hidden = !object;
      pointsLink.hidden = !object;
      if (object) pointsLink.href = `#/registry/points?object=${param(object.name)}`;
    }

    async function save() {
      const path = encodeURIComponent(chosen ? chosen.name : name.value.trim());
      const answer = await api(`/registry/objects/${path}?reason=${form.why()}`, { method: "PUT", body: { name: name.value } });
      toast(t("object_saved", { o: answer.name }), "good");
      await list.reload();
      open({ name: answer.name, points: chosen ? chosen.points : 0, meters: chosen ? chosen.meters : 0 });
    }

    async function remove() {
      if (!chosen || !kit.confirm(t("confirm_delete", { s: chosen.name }))) return;
      await api(`/registry/objects/${encodeURIComponent(chosen.name)}?reason=${form.why()}`, { method: "DELETE" });
      toast(t("object_removed", { o: chosen.name }), "good");
      form.hide();
      chosen = null;
      await list.reload();
    }

    return { root, refresh: (first) => (first ? list.reload() : Promise.resolve()) };
  }

  function busesTab(kit) {
    const { h, api, toast, t } = kit;
    let chosen = null;
    const protocol = (kind) => {
      const known = (kit.protocols() || []).find((p) => p.kind === kind);
      return known ? known.labels[kit.lang()] || known.labels.en || kind : kind;
    };
    const list = serverList(kit, "buses", [h("th", {}, t("col_bus")), h("th", {}, t("col_kind")), h("th", {}, t("col_url"))],
      t("buses_filter"),
      (b) => [b.name, [h("td", { class: "mono" }, b.name), h("td", {}, protocol(b.kind)), h("td", { class: "mono" }, b.url || "—")]],
      open);
    list.list.empty.textContent = t("buses_none");

    const entry = h("textarea", { id: "bus-entry", rows: 12, spellcheck: "false", "aria-label": t("bus_entry") });
    const removeButton = h("button", { type: "button", id: "bus-remove", onclick: () => form.run(remove) }, t("remove"));
    const form = kit.editor("bus-editor", h("label", {}, t("bus_entry"), entry), h("p", { class: "muted" }, t("bus_secrets")));
    form.card.append(h("div", { class: "toolbar" }, form.reason,
      h("button", { type: "button", class: "primary", id: "bus-save", onclick: () => form.run(save) }, t("save")), removeButton),
    form.refusal);

    const root = h("div", { class: "page registry" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", {}, t("buses_title")), list.filter, h("div", { class: "spacer" }),
          h("button", { type: "button", id: "bus-new", onclick: () => open(null) }, t("new_bus"))),
        ...list.list.nodes),
      form.card);

    function open(bus) {
      chosen = bus;
      form.show(bus ? bus.name : t("new_bus"));
      entry.value = JSON.stringify(bus ? kit.sited(bus) : { name: "", kind: "modbus-tcp", url: "tcp://192.0.2.10:502" }, null, 2);
      removeButton.hidden = !bus;
    }

    async function save() {
      const value = kit.jsonEntry(entry);
      const answer = await api(`/registry/buses/${encodeURIComponent(value.name || "")}?reason=${form.why()}`, { method: "PUT", body: value });
      toast(t("bus_saved", { b: answer.bus.name, v: answer.version }), "good");
      await list.reload();
      open(answer.bus);
    }

    async function remove() {
      if (!chosen || !kit.confirm(t("confirm_delete", { s: chosen.name }))) return;
      await api(`/registry/buses/${encodeURIComponent(chosen.name)}?reason=${form.why()}`, { method: "DELETE" });
      toast(t("bus_removed", { b: chosen.name }), "good");
      form.hide();
      chosen = null;
      await list.reload();
    }

    return { root, refresh: (first) => (first ? list.reload() : Promise.resolve()) };
  }

  window.AMR_REGISTRY_TABS = { points: pointsTab, objects: objectsTab, buses: busesTab };
})();
