// Conflicts: a photo changed on a computer while the server held another version of it.
// Both versions side by side (preview and camera details); the photographer picks which one
// is current. Nothing is deleted: the other one stays as an older version.

import { getJSON, postJSON } from "../api.js";
import { coalesce, h, notice, problem, replace, thumb } from "../dom.js";
import { bytes, when } from "../format.js";
import { subscribe } from "../live.js";

export const title = "Conflicts";

async function details(sha256, box) {
  try {
    const info = await getJSON(`/api/v1/content/${encodeURIComponent(sha256)}`);
    const exif = info.exif || {};
    const rows = [["Size", bytes(info.size)], ["Taken", exif.taken], ["Camera", exif.camera],
      ["Lens", exif.lens], ["Exposure", exif.exposure], ["ISO", exif.iso]]
      .filter(([, v]) => v !== undefined && v !== null && v !== "");
    replace(box, h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])));
  } catch (e) {
    replace(box, problem(e, "Camera details"));
  }
}

function side(heading, sha256, note) {
  const box = h("div", { class: "muted" }, "Loading details…");
  details(sha256, box);
  return h("figure", { class: "side" },
    h("figcaption", {}, h("strong", {}, heading), note ? h("br") : "", note || ""),
    thumb(sha256, 1024, heading),
    h("p", {}, h("code", { class: "sha", title: sha256 }, `SHA-256 ${sha256.slice(0, 16)}…`)),
    box);
}

function conflictCard(c, refresh) {
  const status = h("p", { role: "status", class: "muted" });
  const resolve = (keep) => async (event) => {
    for (const b of event.target.parentElement.querySelectorAll("button")) b.disabled = true;
    status.textContent = "Saving your choice…";
    try {
      await postJSON("/api/v1/conflicts/resolve", { keep, ids: [c.id] });
      status.textContent = "Done.";
    } catch (e) {
      status.textContent = `Could not resolve: ${e.message}`;
    }
    refresh();
  };
  const path = `${c.agent_id}/${c.watch_name}/${c.rel_path}`;
  return h("article", { class: "card conflict", "data-conflict": String(c.id) },
    h("h2", {}, c.rel_path),
    h("p", { class: "muted" }, `${path} · noticed ${when(c.created_ms)}`),
    h("div", { class: "sides" },
      side("On the server now", c.server_sha256, "the current version"),
      side(`New from ${c.agent_id}`, c.incoming_sha256,
        `changed ${when(Math.round(Number(c.incoming_mtime_ns) / 1e6))}`)),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: resolve("server") }, "Keep the server's version"),
      h("button", { type: "button", onclick: resolve("incoming") }, `Keep the new version from ${c.agent_id}`)),
    h("p", { class: "muted small" }, "The version you do not pick is kept as an older version; nothing is deleted."),
    status);
}

export async function render(root) {
  const box = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  root.append(h("h1", {}, "Conflicts"), box);
  let shown = null; // the ids on screen: redrawn only when they change (keeps the previews)
  const refresh = coalesce(async () => {
    try {
      const { conflicts } = await getJSON("/api/v1/conflicts");
      const ids = conflicts.map((c) => c.id).join(",");
      if (ids === shown) return;
      shown = ids;
      replace(box, conflicts.length ? conflicts.map((c) => conflictCard(c, refresh))
        : notice("No conflicts: every photo has one current version."));
    } catch (e) {
      shown = null;
      replace(box, problem(e, "The list of conflicts"));
    }
  });
  refresh();
  return subscribe((e) => {
    if (e.kind !== "job" && e.kind !== "job_progress" && e.kind !== "paused") refresh();
  });
}
