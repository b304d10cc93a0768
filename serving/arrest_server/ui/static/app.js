// The page of the arrest model server. Plain JavaScript modules: no framework, no build step, nothing loaded
// from elsewhere. This one fills the what-if form with the served models' choices, shows their answers and
// starts the page; api.js talks to the server, map.js places the report, versions.js shows the served
// versions, file.js scores a file.
import { ApiError, api, describe, keepToken, showMessage } from "./api.js";
import { $, option, show } from "./dom.js";
import { showLimits } from "./file.js";
import { showAreas } from "./map.js";
import { loadVersions } from "./versions.js";

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

const state = { choices: null, codes: new Map() };

// -- the form's choices -----------------------------------------------------------------------------------

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

function defaultDate() {
  const now = new Date();
  now.setSeconds(0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  return now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) + "T" +
    pad(now.getHours()) + ":" + pad(now.getMinutes());
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

// -- the token --------------------------------------------------------------------------------------------

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  if (!keepToken(value)) {
    showMessage("This browser does not allow session storage: the token cannot be kept.");
    return;
  }
  $("token").hidden = true;
  start();
});

// -- start -----------------------------------------------------------------------------------------------

async function start() {
  showMessage("");
  try {
    showLimits(await api("config"));
    const [choices, areas] = await Promise.all([api("choices"), api("areas")]);
    state.choices = choices;
    fillTypes();
    fillCodes();
    fillLocations();
    showAreas(areas, choices.community_areas || []);
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

start();
