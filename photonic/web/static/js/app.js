// The dashboard's shell: the session (for the CSRF token), the live-events indicator, and
// hash routing (#/page?query) to one small module per page. A page's render(root, params)
// may return a function that stops it (timers, live subscriptions) when another page opens.

import { loadSession, postJSON } from "./api.js";
import { h, notice, replace } from "./dom.js";
import * as live from "./live.js";
import * as conflicts from "./pages/conflicts.js";
import * as jobs from "./pages/jobs.js";
import * as library from "./pages/library.js";
import * as overview from "./pages/overview.js";
import * as photo from "./pages/photo.js";
import * as processing from "./pages/processing.js";
import * as safety from "./pages/safety.js";

const PAGES = { overview, safety, library, photo, conflicts, jobs, processing };
const LIVE_TEXT = { websocket: "live (websocket)", polling: "live (polling)",
  reconnecting: "reconnecting" };

const main = document.getElementById("main");
let stopPage = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "overview", arg: rest.map(decodeURIComponent).join("/"),
    params: new URLSearchParams(query) };
}

async function show() {
  if (stopPage) { stopPage(); stopPage = null; }
  const { name, arg, params } = parseHash();
  const page = PAGES[name];
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    const current = link.dataset.page === name || (name === "photo" && link.dataset.page === "library");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!page) {
    replace(main, h("h1", {}, "Not found"), notice("There is no such page.", "error"));
    return;
  }
  const root = h("section", { class: `page page-${name}` });
  replace(main, root);
  document.title = `${page.title} · photonic`;
  try {
    stopPage = (await page.render(root, { arg, params })) || null;
  } catch (e) {
    console.error(e);
    root.append(notice(`This page failed to load: ${e.message}`, "error"));
  }
}

function showLive(state) {
  const el = document.getElementById("live");
  el.textContent = LIVE_TEXT[state] || state;
  el.className = `live live-${state}`;
}

async function logout() {
  try { await postJSON("/api/v1/logout", {}); } finally { location.assign("/login"); }
}

async function boot() {
  const session = await loadSession();
  document.getElementById("who").textContent = `Signed in as ${session.name}`;
  document.getElementById("logout").addEventListener("click", logout);
  live.onStatus(showLive);
  live.start();
  window.addEventListener("hashchange", show);
  await show();
}

boot().catch((e) => {
  replace(main, notice(`The dashboard could not start: ${e.message}`, "error"));
});
