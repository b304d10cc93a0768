// The page of the arrest model server. Plain JavaScript: no framework, no build step, nothing loaded from
// elsewhere. Every data call goes to /ui/api/ on the same server, with the API token when the server has one
// (kept in sessionStorage: gone when the tab closes).
"use strict";

(function () {
  const API = "api/";
  const TOKEN_KEY = "arrest-ui-token";
  const FIELD_LABELS = {
    date: "date and time",
    primary_type: "crime type",
    iucr: "IUCR code",
    description: "description",
    location_description: "location description",
    domestic: "domestic",
    beat: "beat",
    district: "police district",
    ward: "ward",
    community_area: "community area",
    fbi_code: "FBI code",
    location: "place (coordinates)",
  };
  const SVG_NS = "http://www.w3.org/2000/svg";

  const state = { config: null, choices: null, areas: null, codes: new Map(), areaDefaults: new Map() };
  const $ = (id) => document.getElementById(id);

  // -- talking to the server ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    const headers = Object.assign({}, opts.headers);
    if (token()) headers["Authorization"] = "Bearer " + token();
    opts.headers = headers;
    let response;
    try {
      response = await fetch(API + path, opts);
    } catch (e) {
      throw new ApiError(
        "The model server at " + location.origin + " does not answer: it may be stopped or restarting " +
          "(locally, make serve starts it). Try again in a moment.",
        0
      );
    }
    const type = response.headers.get("content-type") || "";
    if (response.ok) {
      return type.includes("application/json") ? response.json() : response.text();
    }
    let message = "";
    if (type.includes("application/json")) {
      try {
        const body = await response.json();
        message = body && body.error ? String(body.error) : "";
      } catch (e) {
        message = "";
      }
    }
    if (!message) {
      message = "The server answered " + response.status + " " + (response.statusText || "") +
        " without an explanation (a proxy in between may have refused the request).";
    }
    if (response.status === 401) askForToken(message);
    throw new ApiError(message, response.status);
  }

  function describe(error) {
    if (error instanceof ApiError) {
      if (error.status === 401) return "The server refused the API token: " + error.message;
      if (error.status === 413) return "Too large: " + error.message;
      if (error.status === 504) return "Too slow: " + error.message;
      if (error.status >= 500) return "The server failed: " + error.message;
      return error.message;
    }
    return "Something went wrong in the page: " + (error && error.message ? error.message : String(error));
  }

  function show(box, text) {
    box.textContent = text;
    box.hidden = !text;
  }

  function showMessage(text, kind) {
    const box = $("message");
    box.className = "message" + (kind ? " " + kind : "");
    show(box, text);
  }

  // -- the token --------------------------------------------------------------------------------------------

  function askForToken(reason) {
    const had = token();
    $("main").hidden = true;
    $("token").hidden = false;
    $("serving").textContent = "Waiting for the API token.";
    showMessage(had ? "The server refused the token: " + reason : "", had ? "" : "info");
    $("token-input").value = "";
    $("token-input").focus();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    try {
      sessionStorage.setItem(TOKEN_KEY, value);
    } catch (e) {
      showMessage("This browser does not allow session storage: the token cannot be kept.");
      return;
    }
    $("token").hidden = true;
    start();
  });

  // -- the form's choices -----------------------------------------------------------------------------------

  function option(value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }

  function fillTypes() {
    const select = $("f-type");
    select.replaceChildren();
    const types = state.choices.primary_types || [];
    for (const t of types) select.append(option(t.name, t.name));
    const top = types.slice().sort((a, b) => (b.rows || 0) - (a.rows || 0))[0];
    if (top) select.value = top.name;
  }

  function codesOf(typeName) {
    const type = (state.choices.primary_types || []).find((t) => t.name === typeName);
    if (type && type.codes && type.codes.length) return type.codes;
    return state.choices.codes || [];
  }

  function fillCodes() {
    const select = $("f-iucr");
    const previous = select.value;
    select.replaceChildren();
    state.codes.clear();
    const codes = codesOf($("f-type").value);
    for (const c of codes) {
      state.codes.set(c.iucr, c);
      select.append(option(c.iucr, c.description ? c.iucr + " \u2014 " + c.description : c.iucr));
    }
    const keep = codes.find((c) => c.iucr === previous);
    const top = codes.slice().sort((a, b) => (b.rows || 0) - (a.rows || 0))[0];
    if (keep) select.value = keep.iucr;
    else if (top) select.value = top.iucr;
    const note = $("f-iucr-note");
    note.hidden = state.choices.grouped !== false;
    note.textContent = "This model version lists its IUCR codes without their crime types: any code can be chosen.";
  }

  function fillLocations() {
    const select = $("f-location");
    select.replaceChildren(option("", "(not given)"));
    const places = state.choices.location_descriptions || [];
    for (const p of places) select.append(option(p.name, p.name));
    const top = places.slice().sort((a, b) => (b.rows || 0) - (a.rows || 0))[0];
    if (top) select.value = top.name;
  }

  function fillAreas() {
    const select = $("f-area");
    select.replaceChildren(option("", "(not given)"));
    const names = new Map(((state.areas && state.areas.areas) || []).map((a) => [a.area, a.name]));
    state.areaDefaults.clear();
    const known = new Set();
    for (const a of state.choices.community_areas || []) {
      state.areaDefaults.set(a.area, a);
      known.add(a.area);
    }
    for (const a of (state.areas && state.areas.areas) || []) known.add(a.area);
    const ordered = Array.from(known).sort((x, y) => Number(x) - Number(y) || x.localeCompare(y));
    for (const area of ordered) {
      select.append(option(area, names.has(area) ? area + " " + names.get(area) : "area " + area));
    }
  }

  function defaultDate() {
    const now = new Date();
    now.setSeconds(0, 0);
    const pad = (n) => String(n).padStart(2, "0");
    return now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) + "T" +
      pad(now.getHours()) + ":" + pad(now.getMinutes());
  }

  // -- the map ---------------------------------------------------------------------------------------------

  function drawMap() {
    const box = $("map-box");
    box.replaceChildren();
    const areas = state.areas && state.areas.areas;
    if (!areas || !areas.length) {
      const p = document.createElement("p");
      p.className = "map-empty";
      p.textContent = "No map: " + ((state.areas && state.areas.reason) || "the server has no community area boundaries") +
        ". Type the latitude and longitude, or choose the community area in the list.";
      box.append(p);
      $("map-note").hidden = true;
      return;
    }
    const proj = state.areas.projection;
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + proj.width + " " + proj.height);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Map of Chicago's " + areas.length +
      " community areas; the chosen area is highlighted. The Community area list chooses an area with the keyboard.");
    svg.id = "map";
    for (const a of areas) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", a.path);
      path.setAttribute("class", "area");
      path.dataset.area = a.area;
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = a.area + " " + a.name;
      path.append(title);
      svg.append(path);
    }
    const marker = document.createElementNS(SVG_NS, "circle");
    marker.setAttribute("r", "5");
    marker.setAttribute("class", "marker");
    marker.setAttribute("visibility", "hidden");
    marker.id = "marker";
    svg.append(marker);
    svg.addEventListener("click", (event) => {
      const target = event.target.closest ? event.target.closest("path.area") : null;
      const point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      const local = point.matrixTransform(svg.getScreenCTM().inverse());
      const lon = proj.lon0 + local.x / proj.kx;
      const lat = proj.lat_max - local.y / proj.ky;
      $("f-lat").value = lat.toFixed(6);
      $("f-lon").value = lon.toFixed(6);
      if (target) chooseArea(target.dataset.area, false);
      placeMarker();
    });
    box.append(svg);
  }

  function placeMarker() {
    const marker = $("marker");
    if (!marker || !state.areas || !state.areas.projection) return;
    const proj = state.areas.projection;
    const lat = parseFloat($("f-lat").value);
    const lon = parseFloat($("f-lon").value);
    if (!isFinite(lat) || !isFinite(lon)) {
      marker.setAttribute("visibility", "hidden");
      return;
    }
    marker.setAttribute("cx", ((lon - proj.lon0) * proj.kx).toFixed(1));
    marker.setAttribute("cy", ((proj.lat_max - lat) * proj.ky).toFixed(1));
    marker.setAttribute("visibility", "visible");
  }

  function highlight(area) {
    for (const path of document.querySelectorAll("#map path.area")) {
      path.classList.toggle("selected", path.dataset.area === area);
    }
  }

  function chooseArea(area, movePoint) {
    $("f-area").value = area || "";
    highlight(area);
    const defaults = state.areaDefaults.get(area) || {};
    $("f-beat").value = defaults.beat || "";
    $("f-district").value = defaults.district || "";
    $("f-ward").value = defaults.ward || "";
    if (movePoint) {
      const shape = ((state.areas && state.areas.areas) || []).find((a) => a.area === area);
      $("f-lat").value = shape ? shape.latitude.toFixed(6) : "";
      $("f-lon").value = shape ? shape.longitude.toFixed(6) : "";
    }
    placeMarker();
  }

  // -- what if ---------------------------------------------------------------------------------------------

  function record() {
    const text = (id) => $(id).value.trim();
    const code = state.codes.get($("f-iucr").value) || {};
    const date = text("f-date");
    const out = {
      date: date && date.length === 16 ? date + ":00" : date,
      primary_type: text("f-type"),
      iucr: text("f-iucr"),
      description: code.description || null,
      fbi_code: code.fbi_code || null,
      location_description: text("f-location") || null,
      domestic: $("f-domestic").checked,
    };
    const optional = { community_area: "f-area", beat: "f-beat", district: "f-district", ward: "f-ward",
      latitude: "f-lat", longitude: "f-lon" };
    for (const [field, id] of Object.entries(optional)) out[field] = text(id) || null;
    return out;
  }

  function percent(p) {
    return (100 * p).toFixed(1) + " %";
  }

  function signed(v) {
    return (v >= 0 ? "+" : "\u2212") + Math.abs(v).toFixed(3);
  }

  function answerCard(answer) {
    const card = document.createElement("article");
    card.className = "answer";
    card.dataset.role = answer.role;
    card.dataset.version = answer.version;
    const h = document.createElement("h3");
    h.textContent = (answer.role === "champion" ? "Champion" : "Challenger") + " \u00b7 version " + answer.version + " ";
    const share = document.createElement("span");
    share.className = "share";
    share.textContent = "(" + answer.share + " % of requests)";
    h.append(share);
    const prob = document.createElement("p");
    prob.className = "prob";
    const value = document.createElement("span");
    value.className = "value";
    value.dataset.probability = String(answer.arrest_probability);
    value.textContent = percent(answer.arrest_probability);
    prob.append(value, document.createTextNode(" probability of an arrest (calibrated)"));
    const decision = document.createElement("p");
    decision.className = "decision " + (answer.arrest ? "yes" : "no");
    decision.dataset.arrest = String(answer.arrest);
    decision.textContent = (answer.arrest ? "Arrest predicted" : "No arrest predicted") +
      ": the probability is " + (answer.arrest ? "at or above" : "below") + " the serving threshold " +
      percent(answer.threshold) + ".";
    const h4 = document.createElement("h4");
    h4.textContent = "Why: each field's contribution (log-odds of the uncalibrated score)";
    const legend = document.createElement("div");
    legend.className = "legend";
    legend.setAttribute("aria-hidden", "true");
    const away = document.createElement("span");
    away.textContent = "\u2190 away from an arrest";
    const toward = document.createElement("span");
    toward.textContent = "towards an arrest \u2192";
    legend.append(away, toward);
    const list = document.createElement("ol");
    list.className = "bars";
    const largest = Math.max(1e-9, ...answer.contributions.map((c) => Math.abs(c.value)));
    for (const c of answer.contributions) {
      const item = document.createElement("li");
      item.className = "bar " + (c.value >= 0 ? "toward" : "away");
      item.dataset.field = c.field;
      item.dataset.value = String(c.value);
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = FIELD_LABELS[c.field] || c.field;
      const track = document.createElement("span");
      track.className = "track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = (50 * Math.abs(c.value) / largest).toFixed(2) + "%";
      track.append(fill);
      const num = document.createElement("span");
      num.className = "num";
      num.textContent = signed(c.value);
      item.append(label, track, num);
      list.append(item);
    }
    const sum = document.createElement("p");
    sum.className = "note";
    sum.textContent = "Base value " + signed(answer.base_value) + " plus the contributions = log-odds " +
      signed(answer.log_odds) + " of the model's raw score; calibration maps it to " +
      percent(answer.arrest_probability) + ".";
    card.append(h, prob, decision, h4, legend, list, sum);
    return card;
  }

  $("record-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("explain");
    const error = $("record-error");
    show(error, "");
    if (!$("f-date").value) {
      show(error, "Enter the date and time of the report.");
      $("f-date").focus();
      return;
    }
    button.disabled = true;
    try {
      const body = await api("explain", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ record: record() }),
      });
      $("answers").replaceChildren(...body.answers.map(answerCard));
      loadVersions().catch(() => {}); // what serves may have changed (a canary, a promotion) since the page opened
    } catch (e) {
      $("answers").replaceChildren();
      show(error, describe(e));
    } finally {
      button.disabled = false;
    }
  });

  // -- served versions -------------------------------------------------------------------------------------

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

  async function loadVersions() {
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

  // -- a file ----------------------------------------------------------------------------------------------

  function size(n) {
    return n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB";
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
    const limit = state.config.max_body_bytes;
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

  // -- start -----------------------------------------------------------------------------------------------

  async function start() {
    showMessage("");
    try {
      state.config = await api("config");
      $("file-limit").textContent = state.config.max_rows.toLocaleString("en") + " records and " +
        size(state.config.max_body_bytes);
      const [choices, areas] = await Promise.all([api("choices"), api("areas")]);
      state.choices = choices;
      state.areas = areas;
      fillTypes();
      fillCodes();
      fillLocations();
      fillAreas();
      drawMap();
      if (!$("f-date").value) $("f-date").value = defaultDate();
      $("token").hidden = true;
      $("main").hidden = false;
      await loadVersions();
      document.body.dataset.ready = "true";
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // the token form is showing
      $("serving").textContent = "Not connected.";
      showMessage(describe(e));
    }
  }

  $("f-type").addEventListener("change", fillCodes);
  $("f-area").addEventListener("change", () => chooseArea($("f-area").value, true));
  $("f-lat").addEventListener("change", placeMarker);
  $("f-lon").addEventListener("change", placeMarker);

  start();
})();
