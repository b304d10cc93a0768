// A file: score an uploaded CSV with the chosen served version, show what was refused and why, and offer the
// scored records as a download (made in the page: nothing is written on the server).
import { api, describe } from "./api.js";
import { $, show } from "./dom.js";

/** The server's limits (the /ui/api/config answer). */
let limits = null;

function size(n) {
  return n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB";
}

/** Keep the server's limits and say them next to the file form. */
export function showLimits(config) {
  limits = config;
  $("file-limit").textContent = config.max_rows.toLocaleString("en") + " records and " +
    size(config.max_body_bytes);
}

$("file-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("file-error");
  const result = $("file-result");
  show(error, "");
  result.replaceChildren();
  const file = $("file-input").files[0];
  if (!file) {
    show(error, "Choose a CSV file first.");
    return;
  }
  const limit = limits.max_body_bytes;
  if (file.size > limit) {
    show(error, "Too large: the file is " + size(file.size) + "; the server accepts at most " +
      size(limit) + " (" + limit.toLocaleString("en") + " bytes, ARREST_SERVER_MAX_BODY_BYTES).");
    return;
  }
  const button = $("file-submit");
  button.disabled = true;
  try {
    const body = await api("score?role=" + encodeURIComponent($("file-role").value), {
      method: "POST",
      headers: { "content-type": "text/csv" },
      body: file,
    });
    showFileResult(file.name, body);
  } catch (e) {
    show(error, describe(e));
  } finally {
    button.disabled = false;
  }
});

function showFileResult(name, body) {
  const result = $("file-result");
  const summary = document.createElement("p");
  summary.className = "summary";
  summary.id = "file-summary";
  summary.dataset.rows = String(body.rows);
  summary.dataset.scored = String(body.scored);
  summary.textContent = "Scored " + body.scored.toLocaleString("en") + " of " + body.rows.toLocaleString("en") +
    " records with the " + body.model_role + ", version " + body.model_version + " (threshold " +
    body.threshold.toFixed(3) + "); " + body.refused.length.toLocaleString("en") + " refused.";
  result.append(summary);
  if (body.scored > 0) {
    const blob = new Blob([body.csv], { type: "text/csv" });
    const link = document.createElement("a");
    link.id = "file-download";
    link.href = URL.createObjectURL(blob);
    link.download = name.replace(/\.csv$/i, "") + "-scored-v" + body.model_version + ".csv";
    link.textContent = "Download the scored records (" + link.download + ")";
    const p = document.createElement("p");
    p.append(link);
    result.append(p);
  }
  if (body.refused.length) {
    const wrap = document.createElement("div");
    wrap.className = "refused";
    const table = document.createElement("table");
    table.className = "t";
    table.id = "refused";
    const caption = document.createElement("caption");
    caption.className = "note";
    caption.textContent = "Refused records (row 1 is the first record after the header line)";
    const head = document.createElement("tr");
    for (const t of ["row", "why (the API's message)"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = t;
      head.append(th);
    }
    table.append(caption, head);
    for (const r of body.refused.slice(0, 500)) {
      const tr = document.createElement("tr");
      tr.dataset.row = String(r.row);
      const a = document.createElement("td");
      a.textContent = String(r.row);
      const b = document.createElement("td");
      b.className = "text";
      b.textContent = r.error;
      tr.append(a, b);
      table.append(tr);
    }
    wrap.append(table);
    result.append(wrap);
    if (body.refused.length > 500) {
      const more = document.createElement("p");
      more.className = "note";
      more.textContent = "and " + (body.refused.length - 500).toLocaleString("en") + " more refused records.";
      result.append(more);
    }
  }
}
