// Jobs: what is running and what ran, with progress bars; a batch opens to its photos;
// a running job can be cancelled, and a failed or cancelled one tried again (submitted anew
// with the same kind, parameters and photos). State changes ("job" events) read the list
// again; progress ("job_progress" events) moves the bar of the job it names in place.

import { getJSON, postJSON } from "../api.js";
import { coalesce, h, notice, problem, replace } from "../dom.js";
import { baseName, jobActive, jobKind, jobState, when } from "../format.js";
import { subscribe } from "../live.js";

export const title = "Jobs";
const LIMIT = 50;
const FALLBACK_REFRESH_MS = 15000; // events carry every change; this is only a safety net

export function progressBar(job) {
  const done = job.state === "JOB_STATE_COMPLETED";
  const value = done ? 1 : Number(job.progress) || 0;
  return h("progress", { max: "1", value: String(value),
    "aria-label": `${jobKind(job)}: ${Math.round(value * 100)}%` }, `${Math.round(value * 100)}%`);
}

// A job_progress event ({job_id, detail: '{"fraction": 0.42, "message": "..."}'}) moves the
// bar and the message of that job wherever root shows it (a card or a batch's photo), without
// reading the job again. A job not shown is left alone: its state changes bring it in.
export function showProgress(root, event) {
  let detail;
  try { detail = JSON.parse(event.detail || "{}"); } catch { return; }
  const value = Math.max(0, Math.min(1, Number(detail.fraction) || 0));
  const percent = `${Math.round(value * 100)}%`;
  for (const el of root.querySelectorAll(`[data-job="${CSS.escape(event.job_id || "")}"]`)) {
    const bar = el.querySelector(":scope > progress");
    if (bar) {
      bar.value = value;
      bar.textContent = percent;
      bar.setAttribute("aria-label", (bar.getAttribute("aria-label") || "").replace(/\d+%$/, percent));
    }
    const note = el.querySelector(":scope > .progress-message");
    if (note && typeof detail.message === "string") note.textContent = detail.message;
  }
}

export function progressMessage(job, tag = "span") {
  return h(tag, { class: "progress-message small" }, jobActive(job.state) ? job.progressMessage || "" : "");
}

async function retry(job) {
  let inputs = job.inputSha256 || [];
  let kind = job.kind;
  if (job.kind === "batch") {
    kind = job.batchKind;
    const { jobs } = await getJSON(`/api/v1/jobs?parent_id=${encodeURIComponent(job.jobId)}&limit=1000`);
    inputs = jobs.flatMap((c) => c.inputSha256 || []);
  }
  return postJSON("/api/v1/jobs", { kind, input_sha256: inputs,
    params_json: job.paramsJson || "", requires: job.requires || [], priority: job.priority || 0 });
}

function actions(job, refresh, status) {
  const act = (label, work) => h("button", { type: "button", class: "quiet",
    "aria-label": `${label} ${jobKind(job)} ${job.jobId}`,
    onclick: async (event) => {
      event.target.disabled = true;
      try { await work(); status.textContent = `${label}: done.`; } catch (e) {
        status.textContent = `${label} failed: ${e.message}`;
      }
      refresh();
    } }, label);
  const out = [];
  if (jobActive(job.state)) {
    out.push(act("Cancel", () => postJSON(`/api/v1/jobs/${encodeURIComponent(job.jobId)}/cancel`, {})));
  }
  if (job.state === "JOB_STATE_FAILED" || job.state === "JOB_STATE_CANCELLED") {
    out.push(act("Retry", () => retry(job)));
  }
  return out;
}

export function outputLinks(job) {
  return (job.outputs || []).map((o) => h("a", { class: "download",
    href: `/download/${encodeURIComponent(o.sha256)}`, download: o.name || "" },
  `Download ${o.name || "result"}`));
}

function summary(job) {
  const b = job.batch;
  if (job.kind === "batch" && b) {
    return `${b.completed || 0} of ${b.total || 0} done` + (b.failed ? `, ${b.failed} failed` : "")
      + (b.cancelled ? `, ${b.cancelled} cancelled` : "");
  }
  return job.inputPath ? baseName(job.inputPath) : "";
}

function childList(children) {
  if (!children.length) return notice("No photo in this batch.");
  return h("ul", { class: "children" }, children.map((c) => h("li", { "data-job": c.jobId },
    h("span", { class: "child-name" }, baseName(c.inputPath) || c.jobId),
    progressBar(c), h("span", { class: `state state-${c.state}` }, jobState(c.state)),
    progressMessage(c), c.error ? h("span", { class: "error" }, c.error) : "",
    outputLinks(c))));
}

function jobCard(job, refresh, open) {
  const status = h("p", { role: "status", class: "muted small" });
  const children = h("div", { class: "children-box" });
  const card = h("article", { class: "card job", "data-job": job.jobId },
    h("h2", {}, jobKind(job), h("span", { class: `badge state-${job.state}` }, jobState(job.state))),
    h("p", { class: "muted" }, summary(job), ` · started ${when(Number(job.createdUnixMs))}`,
      job.workerId ? ` · on ${job.workerId}` : ""),
    progressBar(job),
    progressMessage(job, "p"),
    job.error ? h("p", { class: "error" }, job.error) : "",
    h("div", { class: "actions" }, actions(job, refresh, status), outputLinks(job),
      job.kind === "batch" && job.state === "JOB_STATE_COMPLETED"
        ? h("a", { class: "download", href: `/api/v1/jobs/${encodeURIComponent(job.jobId)}/results.zip` },
          "Download all results (ZIP)") : ""),
    status);
  if (job.kind === "batch") {
    // Opened (by a click, or because it was open before a refresh), its toggle event loads
    // the batch's photos.
    const details = h("details", { open: open.has(job.jobId) || undefined },
      h("summary", {}, "Photos in this batch"), children);
    details.addEventListener("toggle", async () => {
      if (details.open) {
        open.add(job.jobId);
        await loadChildren(job, children);
      } else open.delete(job.jobId);
    });
    card.append(details);
  }
  return card;
}

async function loadChildren(job, box) {
  try {
    const { jobs } = await getJSON(`/api/v1/jobs?parent_id=${encodeURIComponent(job.jobId)}&limit=1000`);
    replace(box, childList(jobs));
  } catch (e) {
    replace(box, problem(e, "The photos of this batch"));
  }
}

export async function render(root, { params }) {
  const running = h("div", { id: "jobs-running" });
  const recent = h("div", { id: "jobs-recent" });
  const open = new Set(params.get("job") ? [params.get("job")] : []);
  root.append(h("h1", {}, "Jobs"), h("h2", {}, "Running and waiting"), running,
    h("h2", {}, "Recent"), recent);
  let timer = null;
  const refresh = coalesce(async () => {
    try {
      const { jobs } = await getJSON(`/api/v1/jobs?top_level=1&limit=${LIMIT}`);
      const active = jobs.filter((j) => jobActive(j.state));
      const done = jobs.filter((j) => !jobActive(j.state));
      replace(running, active.length ? active.map((j) => jobCard(j, refresh, open))
        : notice("Nothing is running."));
      replace(recent, done.length ? done.map((j) => jobCard(j, refresh, open))
        : notice("No job has finished yet."));
      clearTimeout(timer);
      if (active.length) timer = setTimeout(refresh, FALLBACK_REFRESH_MS);
    } catch (e) {
      replace(running, problem(e, "The list of jobs"));
    }
  });
  refresh();
  const unsubscribe = subscribe((e) => {
    if (e.kind === "job_progress") showProgress(root, e);
    else if (e.kind === "job" || e.kind === "resync") refresh();
  });
  return () => { unsubscribe(); clearTimeout(timer); };
}
