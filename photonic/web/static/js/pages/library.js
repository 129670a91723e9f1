// Library: the server's photo tree one folder at a time (computer / watched folder / ...),
// with lazily loaded thumbnails; a new photo appears as soon as the server commits it.

import { getJSON } from "../api.js";
import { coalesce, h, notice, problem, replace, thumb } from "../dom.js";
import { bytes, count } from "../format.js";
import { subscribe } from "../live.js";

export const title = "Library";
const REFRESH_ON = new Set(["file_committed", "file_deduplicated", "resync", "job"]);

export function folderLink(folder, label) {
  const hash = folder ? `#/library?folder=${encodeURIComponent(folder)}` : "#/library";
  return h("a", { href: hash }, label);
}

function crumbs(folder) {
  const parts = folder ? folder.split("/").filter(Boolean) : [];
  const items = [h("li", {}, parts.length ? folderLink("", "Library") : h("span", { "aria-current": "page" }, "Library"))];
  parts.forEach((part, i) => {
    const path = parts.slice(0, i + 1).join("/");
    items.push(h("li", {}, i === parts.length - 1
      ? h("span", { "aria-current": "page" }, part) : folderLink(path, part)));
  });
  return h("nav", { "aria-label": "Folder path", class: "crumbs" }, h("ol", {}, items));
}

function photoTile(photo) {
  return h("li", { class: "tile", "data-sha256": photo.sha256 },
    h("a", { href: `#/photo/${photo.id}`, title: photo.library_path },
      thumb(photo.sha256, 256, photo.name),
      h("span", { class: "tile-name" }, photo.name)),
    h("span", { class: "tile-meta muted" }, bytes(photo.size)));
}

function levelView(level) {
  const folder = level.folder || "";
  const parts = [];
  if (level.folders.length) {
    parts.push(h("h2", {}, "Folders"), h("ul", { class: "folders" }, level.folders.map(
      (name) => h("li", {}, folderLink(folder ? `${folder.replace(/\/$/, "")}/${name}` : name,
        name)))));
  }
  if (level.photos.length) {
    parts.push(h("h2", {}, count(level.photos.length, "photo")),
      h("ul", { class: "tiles", id: "photos" }, level.photos.map(photoTile)));
  }
  if (level.truncated) parts.push(notice("This folder holds more photos than are shown here."));
  if (!parts.length) parts.push(notice("This folder is empty."));
  return parts;
}

// A shoot is a folder's photos taken between two moments (the Safety page links here with
// from= and to=, in ms): the folder's level, its photos narrowed to that span.
function shootSpan(params) {
  const from = Number(params.get("from")), to = Number(params.get("to"));
  return params.has("from") && params.has("to") && Number.isFinite(from) && Number.isFinite(to)
    ? { from, to } : null;
}

function shootLevel(level, span) {
  const photos = level.photos.filter(
    (p) => p.taken_ms >= span.from && p.taken_ms <= span.to);
  return { ...level, folders: [], photos };
}

function shootHeading(folder, span) {
  const when = (ms) => new Date(ms).toLocaleString();
  return h("p", { class: "lead", id: "shoot" },
    `The shoot of ${when(span.from)}${span.to !== span.from ? ` – ${when(span.to)}` : ""}. `,
    folderLink(folder, "Show the whole folder"));
}

export async function render(root, { params }) {
  const folder = (params.get("folder") || "").replace(/\/+$/, "");
  const span = shootSpan(params);
  const box = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  root.append(h("h1", {}, "Library"), crumbs(folder), ...(span ? [shootHeading(folder, span)] : []),
    box);
  const refresh = coalesce(async () => {
    try {
      const level = await getJSON(`/api/v1/library?folder=${encodeURIComponent(folder)}`);
      const shown = span ? shootLevel(level, span) : level;
      replace(box, levelView({ ...shown, folder }));
    } catch (e) {
      replace(box, problem(e, "This folder"));
    }
  }, 200);
  refresh();
  return subscribe((e) => { if (REFRESH_ON.has(e.kind)) refresh(); });
}
