// The served versions: each one's share of requests, model type, threshold, data windows, the gate's
// decision, test metrics with their intervals and its model card (in a sandboxed frame); the line that says
// what serves, and the file form's choice of version.
import { api, describe, showMessage } from "./api.js";
import { $, option } from "./dom.js";

const METRIC_NAMES = { roc_auc: "ROC-AUC", pr_auc: "PR-AUC", ece: "ECE", brier: "Brier" };

function versionCard(v) {
  const card = document.createElement("article");
  card.className = "version";
  card.dataset.role = v.role;
  card.dataset.version = v.version;
  const h = document.createElement("h3");
  h.textContent = (v.role === "champion" ? "Champion" : "Challenger") + ": version " + v.version +
    " \u00b7 " + v.share + " % of requests";
  const dl = document.createElement("dl");
  const rows = [
    ["model", v.model_type || "?"],
    ["serving threshold", v.threshold.toFixed(3)],
    ["trained on", v.tags.train_window],
    ["tested on", v.tags.test_window],
    ["gate", v.tags.gate ? v.tags.gate + (v.tags.gate_reason ? ": " + v.tags.gate_reason : "") : null],
    ["backtest ROC-AUC", v.backtest_roc_auc != null ? Number(v.backtest_roc_auc).toFixed(4) : null],
  ];
  for (const [k, val] of rows) {
    if (val == null || val === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = val;
    dl.append(dt, dd);
  }
  card.append(h, dl);
  const names = Object.keys(METRIC_NAMES).filter((k) => k in v.metrics);
  if (names.length) {
    const table = document.createElement("table");
    table.className = "t metrics";
    const caption = document.createElement("caption");
    caption.className = "note";
    caption.textContent = "Test window (95 % bootstrap interval)";
    const head = document.createElement("tr");
    for (const t of ["metric", "value", "95 % interval"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = t;
      head.append(th);
    }
    table.append(caption, head);
    for (const k of names) {
      const tr = document.createElement("tr");
      tr.dataset.metric = k;
      const interval = v.intervals[k];
      for (const text of [METRIC_NAMES[k], v.metrics[k].toFixed(4),
        interval ? interval[0].toFixed(4) + " \u2013 " + interval[1].toFixed(4) : "\u2013"]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      table.append(tr);
    }
    card.append(table);
  }
  if (v.note) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = v.note;
    card.append(p);
  }
  if (v.card) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = "Show the model card of version " + v.version;
    button.addEventListener("click", () => showCard(v, button));
    card.append(button);
  }
  return card;
}

async function showCard(v, button) {
  const box = $("card-box");
  const frame = $("card-frame");
  button.disabled = true;
  try {
    const page = await api("card/" + encodeURIComponent(v.role));
    $("card-title").textContent = "Model card of version " + v.version;
    frame.title = "Model card of version " + v.version;
    frame.srcdoc = page;
    box.hidden = false;
    showMessage("");
  } catch (e) {
    showMessage("The model card of version " + v.version + " cannot be shown: " + describe(e));
  } finally {
    button.disabled = false;
  }
}

export async function loadVersions() {
  const data = await api("versions");
  $("versions-list").replaceChildren(...data.versions.map(versionCard));
  const parts = data.versions.map((v) => v.role + " version " + v.version + " (" + v.share + " %)");
  const serving = $("serving");
  serving.textContent = "Serving: " + parts.join(", ") + (data.canary_percent > 0 ? " \u00b7 canary live" : "");
  const role = $("file-role");
  const previous = role.value;
  role.replaceChildren(...data.versions.map((v) => option(v.role, v.role + " (version " + v.version + ")")));
  if (data.versions.some((v) => v.role === previous)) role.value = previous;
}
