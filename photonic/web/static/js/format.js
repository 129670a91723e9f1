// Numbers and times in words a photographer reads at a glance.

const UNITS = ["bytes", "KB", "MB", "GB", "TB"];

export function bytes(n) {
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) { value /= 1000; unit += 1; }
  return unit === 0 ? `${value} ${value === 1 ? "byte" : "bytes"}`
    : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export function count(n, one, many = `${one}s`) {
  const value = Number(n) || 0;
  return `${value.toLocaleString()} ${value === 1 ? one : many}`;
}

export function ago(ms) {
  const t = Number(ms) || 0;
  if (!t) return "never";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 10) return "just now";
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleString();
}

export function when(ms) {
  const t = Number(ms) || 0;
  return t ? new Date(t).toLocaleString() : "unknown";
}

export function duration(seconds) {
  const s = Math.round(Number(seconds));
  if (!Number.isFinite(s) || s < 0) return "–";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function shortSha(sha) {
  return sha ? `${sha.slice(0, 12)}…` : "";
}

export function baseName(path) {
  const parts = String(path || "").split("/");
  return parts[parts.length - 1] || path;
}

const STATES = {
  JOB_STATE_PENDING: "Waiting",
  JOB_STATE_READING: "Starting",
  JOB_STATE_PROCESSING: "Working",
  JOB_STATE_COMPLETED: "Done",
  JOB_STATE_FAILED: "Failed",
  JOB_STATE_CANCELLED: "Cancelled",
};

export function jobState(state) {
  return STATES[state] || String(state || "").replace("JOB_STATE_", "").toLowerCase();
}

export function jobActive(state) {
  return ["JOB_STATE_PENDING", "JOB_STATE_READING", "JOB_STATE_PROCESSING"].includes(state);
}

const KINDS = { bgremove: "Cut out the subject", facecrop: "Crop to the face",
  lightroom: "Lightroom develop and export" };

export function jobKind(job) {
  const kind = job.kind === "batch" ? job.batchKind : job.kind;
  return KINDS[kind] || kind || "job";
}
