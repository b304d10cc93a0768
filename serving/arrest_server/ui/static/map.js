// The place of the report: the SVG map of the community areas (from /ui/api/areas), the community area list
// (the keyboard's way to choose an area) and the latitude/longitude; choosing an area fills its most common
// beat, district and ward.
import { $, option } from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** The /ui/api/areas answer: {areas: [{area, name, path, latitude, longitude}], projection, reason}. */
let shapes = null;
/** The served models' most common beat, district and ward by community area. */
const areaDefaults = new Map();

/** Show the community areas: the list and the map. */
export function showAreas(areas, communityAreas) {
  shapes = areas;
  fillAreas(communityAreas);
  drawMap();
}

function fillAreas(communityAreas) {
  const select = $("f-area");
  select.replaceChildren(option("", "(not given)"));
  const names = new Map(((shapes && shapes.areas) || []).map((a) => [a.area, a.name]));
  areaDefaults.clear();
  const known = new Set();
  for (const a of communityAreas) {
    areaDefaults.set(a.area, a);
    known.add(a.area);
  }
  for (const a of (shapes && shapes.areas) || []) known.add(a.area);
  const ordered = Array.from(known).sort((x, y) => Number(x) - Number(y) || x.localeCompare(y));
  for (const area of ordered) {
    select.append(option(area, names.has(area) ? area + " " + names.get(area) : "area " + area));
  }
}

function drawMap() {
  const box = $("map-box");
  box.replaceChildren();
  const areas = shapes && shapes.areas;
  if (!areas || !areas.length) {
    const p = document.createElement("p");
    p.className = "map-empty";
    p.textContent = "No map: " + ((shapes && shapes.reason) || "the server has no community area boundaries") +
      ". Type the latitude and longitude, or choose the community area in the list.";
    box.append(p);
    $("map-note").hidden = true;
    return;
  }
  const proj = shapes.projection;
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
  if (!marker || !shapes || !shapes.projection) return;
  const proj = shapes.projection;
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
  const defaults = areaDefaults.get(area) || {};
  $("f-beat").value = defaults.beat || "";
  $("f-district").value = defaults.district || "";
  $("f-ward").value = defaults.ward || "";
  if (movePoint) {
    const shape = ((shapes && shapes.areas) || []).find((a) => a.area === area);
    $("f-lat").value = shape ? shape.latitude.toFixed(6) : "";
    $("f-lon").value = shape ? shape.longitude.toFixed(6) : "";
  }
  placeMarker();
}

$("f-area").addEventListener("change", () => chooseArea($("f-area").value, true));
$("f-lat").addEventListener("change", placeMarker);
$("f-lon").addEventListener("change", placeMarker);
