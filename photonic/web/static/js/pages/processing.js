// Processing: drop photos or a ZIP, choose what to do with them, upload (with progress),
// watch each photo's job live, then download each result or all of them as one ZIP.

import { getJSON, upload } from "../api.js";
import { coalesce, h, notice, problem, replace } from "../dom.js";
import { baseName, bytes, count, jobActive, jobState } from "../format.js";
import { subscribe } from "../live.js";
import { outputLinks, progressBar, progressMessage, showProgress } from "./jobs.js";

export const title = "Processing";
const FALLBACK_WATCH_MS = 15000; // events carry progress and states; only a safety net

// The parameters each job kind takes (photonic/server/jobs/kinds.py); empty means default.
const KINDS = {
  bgremove: {
    label: "Cut out the subject (transparent background)",
    fields: [
      { name: "threshold", label: "Edge threshold (0 to 1)", min: 0, max: 1, step: 0.05,
        placeholder: "default" },
      { name: "feather", label: "Soften the edge (pixels, 0 to 50)", min: 0, max: 50, step: 1,
        placeholder: "default" },
    ],
  },
  facecrop: {
    label: "Crop to the face",
    fields: [
      { name: "margin", label: "Margin around the face (0 to 2 × the face)", min: 0, max: 2,
        step: 0.05, placeholder: "default" },
      { name: "size", label: "Output size (pixels, 16 to 4096)", min: 16, max: 4096, step: 1,
        integer: true, placeholder: "original" },
      { name: "which", label: "Which faces", choices: [["largest", "The largest face"],
        ["all", "Every face"]] },
    ],
  },
};

function field(kind, f) {
  const id = `${kind}-${f.name}`;
  const input = f.choices
    ? h("select", { id, name: f.name }, f.choices.map(([v, t]) => h("option", { value: v }, t)))
    : h("input", { id, name: f.name, type: "number", min: String(f.min), max: String(f.max),
      step: String(f.step), placeholder: f.placeholder, inputmode: "decimal" });
  return h("div", { class: "field" }, h("label", { for: id }, f.label), input);
}

function optionsOf(kind, form) {
  const params = {};
  for (const f of KINDS[kind].fields) {
    const el = form.querySelector(`#${kind}-${f.name}`);
    if (!el || el.value === "") continue;
    params[f.name] = f.choices ? el.value : (f.integer ? parseInt(el.value, 10) : Number(el.value));
  }
  return params;
}

function watchView(job, children) {
  const list = children.length ? children : [job];
  const finished = !jobActive(job.state);
  const done = list.filter((c) => c.state === "JOB_STATE_COMPLETED").length;
  return [
    h("p", { class: "lead", role: "status" },
      finished ? `Finished: ${done} of ${count(list.length, "photo")} done.`
        : `Working: ${done} of ${count(list.length, "photo")} done…`),
    h("ul", { class: "children", id: "upload-files" }, list.map((c) => h("li", { "data-job": c.jobId },
      h("span", { class: "child-name" }, baseName(c.inputPath) || c.jobId),
      progressBar(c), h("span", { class: `state state-${c.state}` }, jobState(c.state)),
      progressMessage(c), c.error ? h("span", { class: "error" }, c.error) : "",
      outputLinks(c)))),
    job.kind === "batch" ? h("p", {}, h("a", {
      class: `download button${finished ? "" : " disabled"}`, id: "download-all",
      href: `/api/v1/jobs/${encodeURIComponent(job.jobId)}/results.zip`,
      "aria-disabled": finished ? "false" : "true",
    }, "Download all results (ZIP)")) : "",
  ];
}

function watch(job, box) {
  let timer = null;
  let stopped = false;
  const refresh = coalesce(async () => {
    try {
      const current = await getJSON(`/api/v1/jobs/${encodeURIComponent(job.jobId)}`);
      const children = current.kind === "batch" ? (await getJSON(
        `/api/v1/jobs?parent_id=${encodeURIComponent(job.jobId)}&limit=1000`)).jobs : [];
      replace(box, watchView(current, children));
      clearTimeout(timer);
      if (!stopped && jobActive(current.state)) timer = setTimeout(refresh, FALLBACK_WATCH_MS);
    } catch (e) {
      replace(box, problem(e, "The progress of this upload"));
    }
  }, 100);
  refresh();
  // A state change reads the job (and its photos) again; progress moves one bar in place.
  const unsubscribe = subscribe((e) => {
    if (e.kind === "job_progress") showProgress(box, e);
    else if (e.kind === "job" || e.kind === "resync") refresh();
  });
  return () => { stopped = true; clearTimeout(timer); unsubscribe(); };
}

export async function render(root) {
  let stopWatch = () => {};
  const files = h("input", { id: "files", name: "file", type: "file", multiple: true,
    accept: "image/*,.zip,application/zip", class: "sr-only" });
  const chosen = h("p", { class: "muted", id: "chosen", "aria-live": "polite" }, "No file chosen yet.");
  const drop = h("div", { class: "dropzone" },
    h("label", { for: "files" }, h("strong", {}, "Drop photos or a ZIP here"), h("br"),
      "or click to choose files"), files, chosen);
  const kindPick = h("fieldset", {}, h("legend", {}, "What should be done?"),
    Object.entries(KINDS).map(([kind, k], i) => h("div", { class: "choice" },
      h("input", { type: "radio", name: "kind", id: `kind-${kind}`, value: kind, checked: i === 0 }),
      h("label", { for: `kind-${kind}` }, k.label))));
  const options = h("fieldset", { id: "options" }, h("legend", {}, "Options"));
  const uploadBar = h("progress", { max: "1", value: "0", hidden: true, id: "upload-progress",
    "aria-label": "Upload progress" });
  const status = h("p", { role: "status", id: "upload-status" });
  const submit = h("button", { type: "submit", id: "start" }, "Upload and start");
  const watchBox = h("div", { id: "watch" });
  const form = h("form", { class: "processing" }, drop, kindPick, options, submit, uploadBar, status);
  let picked = [];

  const showOptions = () => {
    const kind = form.querySelector("input[name=kind]:checked").value;
    replace(options, h("legend", {}, "Options (leave empty for the usual)"),
      KINDS[kind].fields.map((f) => field(kind, f)));
  };
  const pick = (list) => {
    picked = [...list];
    chosen.textContent = picked.length
      ? `${count(picked.length, "file")} chosen: ${picked.map((f) => f.name).join(", ")} (${bytes(picked.reduce((n, f) => n + f.size, 0))})`
      : "No file chosen yet.";
  };
  kindPick.addEventListener("change", showOptions);
  files.addEventListener("change", () => pick(files.files));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files);
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!picked.length) { status.textContent = "Choose at least one photo or ZIP first."; return; }
    const kind = form.querySelector("input[name=kind]:checked").value;
    const body = new FormData();
    body.append("kind", kind);
    body.append("params", JSON.stringify(optionsOf(kind, form)));
    for (const f of picked) body.append("file", f, f.name);
    submit.disabled = true;
    uploadBar.hidden = false;
    status.textContent = "Uploading…";
    stopWatch();
    replace(watchBox);
    try {
      const job = await upload("/api/v1/uploads", body, (sent, total) => {
        uploadBar.value = total ? sent / total : 0;
        status.textContent = `Uploading… ${Math.round((100 * sent) / (total || 1))}%`;
      });
      uploadBar.value = 1;
      status.textContent = "Uploaded. The photos are being processed:";
      stopWatch = watch(job, watchBox);
    } catch (err) {
      status.textContent = "";
      replace(watchBox, err.name === "Unavailable"
        ? notice("Uploading from the dashboard is not available on this server yet.", "unavailable")
        : notice(`The upload failed: ${err.message}`, "error"));
    }
    submit.disabled = false;
  });

  showOptions();
  root.append(h("h1", {}, "Processing"),
    h("p", { class: "lead" }, "Send photos to the computers that process them. The results are kept in the library and can be downloaded here."),
    form, watchBox);
  return () => stopWatch();
}
