// Small helpers over the page's elements, shared by the page's modules.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Put `text` in `box` and show it; hide the box when there is no text. */
export function show(box, text) {
  box.textContent = text;
  box.hidden = !text;
}

/** An <option> of a <select>. */
export function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}
