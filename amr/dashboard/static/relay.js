/* The relay card of a meter page (dispatchers and admins, meters whose protocol switches a relay).

   AmrRelay.card(serial, helpers) -> {root, refresh(protocolCapabilities)}
     helpers: {h, t, api, toast, fmtTime}
   Shows the last state read back (#relay-state[data-state]), the newest commands (#relay-commands li
   [data-status]) and a form: a reason (required, kept in the audit trail) and the actions
   disconnect / reconnect / read, each queued through POST /dispatch/meters/{serial}/relay.
*/
"use strict";

(function () {
  function card(serial, helpers) {
    const { h, t, api, toast, fmtTime } = helpers;
    const path = `/dispatch/meters/${encodeURIComponent(serial)}/relay`;
    const stateBox = h("div", { id: "relay-state" });
    const list = h("ul", { class: "events", id: "relay-commands" });
    const reason = h("input", { type: "text", id: "relay-reason", maxlength: "1000", placeholder: t("relay_reason") });
    const buttons = ["disconnect", "reconnect", "read"].map((action) => h("button", {
      type: "button", dataset: { action }, class: action === "disconnect" ? "danger" : "",
      onclick: () => send(action),
    }, t(`relay_${action}`)));
    const root = h("section", { class: "card", id: "relay-card", hidden: true },
      h("div", { class: "toolbar" }, h("h2", {}, t("relay")), h("div", { class: "spacer" }), stateBox),
      h("div", { class: "toolbar" }, reason, ...buttons),
      h("h3", {}, t("relay_commands")), list);

    async function send(action) {
      if (!reason.value.trim()) {
        toast(t("relay_reason_needed"), "bad");
        reason.focus();
        return;
      }
      if (action === "disconnect" && !window.confirm(t("relay_confirm"))) return;
      try {
        await api(path, { method: "POST", body: { action, reason: reason.value.trim() } });
        reason.value = "";
        toast(t("relay_queued"), "good");
      } catch (err) {
        toast(`${t("error")}: ${err.message}`, "bad");
      }
      await load();
    }

    function stateText(state, supplied) {
      if (!state) return t("relay_unknown");
      return `${t(`relay_state_${state}`)}${supplied === false ? ` · ${t("relay_no_supply")}` : ""}`;
    }

    async function load() {
      const status = await api(path);
      stateBox.dataset.state = status.state || "";
      stateBox.replaceChildren(h("strong", {}, stateText(status.state, status.supplied)),
        status.read_at ? h("span", { class: "sub" }, ` ${fmtTime(status.read_at, true)}`) : "");
      list.replaceChildren(...(status.commands.length ? status.commands.map((c) => h("li", {
        class: { done: "ok", failed: "bad", expired: "bad" }[c.status] || "partial",
        dataset: { id: String(c.id), status: c.status, action: c.action },
      }, h("span", { class: "when" }, fmtTime(c.requested_at, true)), " ",
        h("strong", {}, `${t(`relay_${c.action}`)}: ${t(`relay_status_${c.status}`)}`),
        c.state ? ` → ${stateText(c.state, c.supplied)}` : "",
        h("div", { class: "sub" }, `${c.requested_by}: ${c.reason}`),
        c.error ? h("div", { class: "sub" }, c.error) : "")) : [h("li", { class: "muted" }, t("relay_none"))]));
    }

    async function refresh(capabilities) {
      root.hidden = !(capabilities || []).includes("relay");
      if (!root.hidden) await load();
    }

    return { root, refresh };
  }

  window.AmrRelay = { card };
})();
