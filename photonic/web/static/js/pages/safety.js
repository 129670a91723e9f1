// Safe to format? Per shoot: how many photos are only on the computer, on the server and
// verified, copied elsewhere and processed, with a plain verdict: a card may be formatted only
// when no photo of the shoot is on the computer alone.

import { getJSON } from "../api.js";
import { coalesce, h, notice, problem, replace } from "../dom.js";
import { count, when } from "../format.js";
import { subscribe } from "../live.js";

export const title = "Safe to format?";
const FILE_EVENTS = new Set(["file_committed", "file_deduplicated", "resync"]);

function verdict(shoot) {
  if (shoot.on_agent_only === 0) {
    return h("p", { class: "verdict verdict-safe" },
      h("strong", {}, "Safe to format the card."),
      ` Every photo of this shoot is on the server and verified.`);
  }
  return h("p", { class: "verdict verdict-unsafe" },
    h("strong", {}, "Not yet: do not format the card."),
    ` ${count(shoot.on_agent_only, "photo")} ${shoot.on_agent_only === 1 ? "is" : "are"} still only on ${shoot.agent_id}.`);
}

function shootCard(shoot) {
  const span = shoot.end_ms && shoot.end_ms !== shoot.start_ms
    ? `${when(shoot.start_ms)} – ${when(shoot.end_ms)}` : when(shoot.start_ms);
  return h("article", { class: "card shoot" },
    h("h2", {}, `${shoot.folder || "(top folder)"}`),
    h("p", { class: "muted" }, `${shoot.agent_id} · ${span}`,
      shoot.camera ? ` · ${shoot.camera}` : ""),
    verdict(shoot),
    shoot.on_server_verified ? h("p", {}, h("a", {
      href: `#/library?folder=${encodeURIComponent(`${shoot.agent_id}/${shoot.folder}`)}` +
        `&from=${shoot.start_ms}&to=${shoot.end_ms}`, class: "shoot-photos" },
      "See this shoot's photos on the server")) : "",
    h("dl", { class: "facts" },
      h("dt", {}, "Photos in the shoot"), h("dd", {}, String(shoot.total)),
      h("dt", {}, `On ${shoot.agent_id} only`), h("dd", { class: shoot.on_agent_only ? "warn" : "" },
        String(shoot.on_agent_only)),
      h("dt", {}, "On the server, verified"), h("dd", {}, String(shoot.on_server_verified)),
      h("dt", {}, "Copies kept by photonic"), h("dd", {},
        shoot.copies > 1 ? `${shoot.copies} (server and backups)` : `${shoot.copies} (the server only, no backup yet)`),
      h("dt", {}, "Processed"), h("dd", {}, String(shoot.processed))));
}

export async function render(root) {
  const box = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  root.append(h("h1", {}, "Is it safe to format the card?"),
    h("p", { class: "lead" }, "Each shoot below says whether all of its photos have reached the server. ",
      "Only then is it safe to erase the memory card or delete the photos from the computer."),
    box);
  const refresh = coalesce(async () => {
    try {
      const { shoots } = await getJSON("/api/v1/shoots?limit=20");
      replace(box, shoots.length ? shoots.map(shootCard)
        : notice("No shoot has been seen yet."));
    } catch (e) {
      replace(box, problem(e, "The safety check by shoot"));
    }
  });
  refresh();
  const unsubscribe = subscribe((e) => { if (FILE_EVENTS.has(e.kind)) refresh(); });
  const timer = setInterval(refresh, 10000);
  return () => { unsubscribe(); clearInterval(timer); };
}
