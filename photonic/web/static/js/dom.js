// Building the page from data without innerHTML: every string from the server (file names,
// agent names, error messages) becomes a text node, never markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A message in place of a section whose data could not be read.
export function notice(message, kind = "info") {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    message);
}

// The plain message for a failed API call; "not available" when the endpoint is missing.
export function problem(error, what) {
  if (error && error.name === "Unavailable") {
    return notice(`${what} is not available on this server yet.`, "unavailable");
  }
  return notice(`Could not load ${what.toLowerCase()}: ${error && error.message}`, "error");
}

// Calls fn at most once at a time; a call while it runs schedules exactly one more run.
export function coalesce(fn, delayMs = 300) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch (e) { console.error(e); }
    running = false;
    if (again) { again = false; schedule(); }
  };
  const schedule = () => { if (timer === null) timer = setTimeout(run, delayMs); };
  return schedule;
}

// A thumbnail that says so when there is no preview (unsupported file, or no thumbnailer).
export function thumb(sha256, size, alt) {
  const img = h("img", { src: `/thumb/${encodeURIComponent(sha256)}?size=${size}`, alt,
    loading: "lazy", decoding: "async", class: "thumb" });
  img.addEventListener("error", () => {
    img.replaceWith(h("span", { class: "thumb thumb-missing", role: "img",
      "aria-label": `${alt} (no preview)` }, "No preview"));
  }, { once: true });
  return img;
}
