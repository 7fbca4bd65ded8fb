// Building DOM nodes. Values reach the page as text nodes or attributes only (never as HTML),
// so whatever the API returns shows as text.

/**
 * el("button", {type: "button", class: "primary", onclick: go}, "Save")
 * Attributes: `class`, `text` (textContent), `on<event>` (listeners), booleans (true: present,
 * false/null/undefined: absent); anything else through setAttribute. Children: nodes, strings
 * (text nodes), arrays of those; null and false are skipped.
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let nextId = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}
