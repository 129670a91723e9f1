// Overview: each computer (agent) with its state, what it still has to upload and a
// pause/resume button; then the servers, the agents' connections and the workers.

import { getJSON, postJSON } from "../api.js";
import { coalesce, h, notice, problem, replace } from "../dom.js";
import { ago, bytes, count, duration } from "../format.js";
import { subscribe } from "../live.js";

export const title = "Overview";
const REFRESH_MS = 5000; // heartbeats carry no event; read the status again now and then

const STATES = {
  offline: "Offline", connecting: "Connecting", syncing: "Uploading",
  monitoring: "Up to date", conflict: "Needs you: a conflict", error: "Has a problem",
};

function stateText(agent) {
  if (agent.paused) return "Paused";
  if (agent.state === "monitoring" && agent.queue_depth > 0) return "Waiting to upload";
  return STATES[agent.state] || agent.state;
}

function speed(agent) {
  const rate = agent.rate_bytes_per_s;
  if (!rate) return "–";
  const eta = agent.eta_s === null || agent.eta_s === undefined ? "" : `, ${duration(agent.eta_s)} left`;
  return `${bytes(rate)}/s${eta}`;
}

function pauseButton(agent, refresh) {
  const label = agent.paused ? "Resume uploads" : "Pause uploads";
  return h("button", {
    type: "button", class: agent.paused ? "" : "quiet",
    "aria-label": `${label} from ${agent.agent_id}`,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await postJSON(`/api/v1/agents/${encodeURIComponent(agent.agent_id)}/pause`,
          { paused: !agent.paused });
      } catch (e) {
        alert(`Could not change ${agent.agent_id}: ${e.message}`);
      }
      refresh();
    },
  }, label);
}

function agentRow(agent, refresh) {
  const missing = agent.missing_watches || [];
  return h("tr", { "data-agent": agent.agent_id },
    h("th", { scope: "row" }, agent.agent_id),
    h("td", { class: `state state-${agent.paused ? "paused" : agent.state}` }, stateText(agent)),
    h("td", {}, ago(agent.last_seen_ms)),
    h("td", {}, agent.queue_depth ? `${count(agent.queue_depth, "file")} (${bytes(agent.bytes_pending)})` : "Nothing"),
    h("td", {}, speed(agent)),
    h("td", { class: missing.length ? "warn" : "" },
      missing.length ? `Missing: ${missing.join(", ")}` : "All present"),
    h("td", {}, `${count(agent.photos, "photo")}, ${bytes(agent.bytes_stored)}`),
    h("td", {}, (agent.open_conflicts || []).length
      ? h("a", { href: "#/conflicts" }, count(agent.open_conflicts.length, "conflict")) : "None"),
    h("td", {}, pauseButton(agent, refresh)));
}

function agentsTable(agents, refresh) {
  if (!agents.length) return notice("No computer has connected to this server yet.");
  return h("table", { class: "grid", id: "agents" },
    h("caption", { class: "sr-only" }, "Computers that send photos to this server"),
    h("thead", {}, h("tr", {}, ["Computer", "State", "Last seen", "Still to upload",
      "Speed", "Watched folders", "On the server", "Conflicts", ""].map(
      (t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, agents.map((a) => agentRow(a, refresh))));
}

function topologyView(topology) {
  const servers = topology.servers || [];
  const agents = topology.agents || [];
  const workers = topology.workers || [];
  return [
    h("h3", {}, "Servers"),
    servers.length ? h("ul", { class: "plain" }, servers.map((s) => h("li", {},
      h("strong", {}, s.name), ` · ${s.grpc}`, s.version ? ` · version ${s.version}` : "",
      s.self ? " (this one)" : ""))) : notice("No server listed."),
    h("h3", {}, "Connections"),
    agents.length ? h("ul", { class: "plain" }, agents.map((a) => h("li", {},
      h("strong", {}, a.agent_id), a.connected ? " is connected" : " is not connected",
      a.server ? ` to ${a.server}` : "", ` · last seen ${ago(a.last_seen_ms)}`)))
      : notice("No computer is connected."),
    h("h3", {}, "Workers (computers that process photos)"),
    workers.length ? h("ul", { class: "plain", id: "workers" }, workers.map((w) => h("li", {},
      h("strong", {}, w.worker_id), ` can do ${(w.capabilities || []).join(", ") || "nothing yet"}`,
      ` · ${count(w.slots, "job")} at a time`,
      ` · ${(w.running || []).length ? `working on ${count(w.running.length, "job")}` : "idle"}`)))
      : notice("No worker is connected."),
  ];
}

function backupLine(node) {
  const waiting = node.versions_pending
    ? `${count(node.versions_pending, "photo")} (${bytes(node.bytes_pending)}) still to copy` +
      (node.lag_s ? `, the oldest waiting ${duration(node.lag_s)}` : "")
    : "Up to date";
  return h("li", { "data-node": node.name },
    h("strong", {}, node.name), ` · ${node.endpoint} · `,
    h("span", { class: node.connected ? "" : "warn" },
      node.connected ? "Reachable" : `Not reachable${node.last_error ? `: ${node.last_error}` : ""}`),
    ` · ${waiting} · holds ${count(node.objects_confirmed, "photo")}`,
    node.encrypted ? h("p", { class: "warn key-warning" }, `Encrypted: ${node.key_warning}`) : "");
}

function backupsView(replication) {
  const nodes = replication.nodes || [];
  if (!nodes.length) {
    return notice("No backup server is set up: this server holds the only copy of your " +
      "photos (storage.backup_nodes in server.yaml adds one).");
  }
  return [
    h("p", {}, `A photo counts as safe once it is in ${count(replication.min_copies, "copy", "copies")}` +
      " (this server and its backup servers)."),
    h("ul", { class: "plain", id: "backups" }, nodes.map(backupLine)),
  ];
}

export async function render(root) {
  const agentsBox = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const topologyBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const backupsBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  root.append(h("h1", {}, "Overview"),
    h("h2", {}, "Computers"), agentsBox,
    h("h2", {}, "Backups"), backupsBox,
    h("h2", {}, "Servers and workers"), topologyBox);

  const refresh = coalesce(async () => {
    try {
      const { agents } = await getJSON("/api/v1/agents");
      replace(agentsBox, agentsTable(agents, refresh));
    } catch (e) {
      replace(agentsBox, problem(e, "The list of computers"));
    }
    try {
      replace(topologyBox, topologyView(await getJSON("/api/v1/topology")));
    } catch (e) {
      replace(topologyBox, problem(e, "The map of servers and workers"));
    }
    try {
      replace(backupsBox, backupsView(await getJSON("/api/v1/replication")));
    } catch (e) {
      replace(backupsBox, problem(e, "The list of backup servers"));
    }
  });
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  // A job's progress (several a second while one runs) changes nothing shown here.
  const unsubscribe = subscribe((e) => { if (e.kind !== "job_progress") refresh(); });
  return () => { clearInterval(timer); unsubscribe(); };
}
