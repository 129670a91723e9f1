// One photo: a large preview, where it came from, its SHA-256 and camera details, every
// version the server keeps, the jobs that took it as input and the files they made.

import { getJSON } from "../api.js";
import { h, notice, problem, replace, thumb } from "../dom.js";
import { baseName, bytes, jobKind, jobState, shortSha, when } from "../format.js";
import { folderLink } from "./library.js";

export const title = "Photo";

function download(sha256, label) {
  return h("a", { href: `/download/${encodeURIComponent(sha256)}`, download: "" }, label);
}

function facts(photo) {
  const exif = photo.exif || {};
  const rows = [
    ["From", `${photo.agent_id}, folder “${photo.watch_name}”`],
    ["Path", photo.rel_path],
    ["Taken", photo.capture_time_ms ? when(photo.capture_time_ms) : (exif.taken || "unknown")],
    ["Camera", exif.camera], ["Lens", exif.lens], ["Exposure", exif.exposure],
    ["ISO", exif.iso], ["Focal length", exif.focal_length],
    ["Size", bytes(photo.size)],
    ["SHA-256", h("code", { class: "sha" }, photo.sha256)],
  ].filter(([, v]) => v !== undefined && v !== null && v !== "");
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function versions(list) {
  if (!list || !list.length) return notice("Only this version is kept.");
  return h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, ["Version", "Saved", "From", "Size", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, list.map((v) => h("tr", {},
      h("td", {}, h("code", { title: v.sha256 }, shortSha(v.sha256)), v.current ? " (current)" : ""),
      h("td", {}, when(v.committed_ms)), h("td", {}, v.agent_id || ""),
      h("td", {}, bytes(v.size)), h("td", {}, download(v.sha256, "Download"))))));
}

function jobsList(jobs) {
  if (!jobs || !jobs.length) return notice("No job has processed this photo yet.");
  return h("ul", { class: "plain" }, jobs.map((j) => h("li", {},
    h("a", { href: `#/jobs?job=${encodeURIComponent(j.jobId)}` }, jobKind(j)),
    ` · ${jobState(j.state)} · ${when(Number(j.createdUnixMs))}`)));
}

function derivedList(files) {
  if (!files || !files.length) return notice("No processed file yet.");
  return h("ul", { class: "tiles" }, files.map((f) => h("li", { class: "tile" },
    thumb(f.sha256, 256, f.name || baseName(f.library_path)),
    h("span", { class: "tile-name" }, f.name || baseName(f.library_path)),
    h("span", { class: "tile-meta muted" }, f.kind || "", " · ", download(f.sha256, "Download")))));
}

export async function render(root, { arg }) {
  root.append(h("p", { class: "muted" }, "Loading…"));
  let photo;
  try {
    photo = await getJSON(`/api/v1/photos/${encodeURIComponent(arg)}`);
  } catch (e) {
    replace(root, h("h1", {}, "Photo"), problem(e, "The photo page"));
    return;
  }
  const folder = photo.library_path.split("/").slice(0, -1).join("/");
  replace(root,
    h("p", {}, folderLink(folder, `← Back to ${folder || "the library"}`)),
    h("h1", {}, baseName(photo.library_path)),
    h("div", { class: "photo-layout" },
      h("figure", { class: "photo-large" }, thumb(photo.sha256, 1024, baseName(photo.library_path)),
        h("figcaption", {}, download(photo.sha256, "Download the original"))),
      h("div", {}, facts(photo))),
    h("h2", {}, "Versions"), versions(photo.versions),
    h("h2", {}, "Jobs"), jobsList(photo.jobs),
    h("h2", {}, "Processed files"), derivedList(photo.derived));
}
