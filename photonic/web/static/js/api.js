// The JSON API: same-origin fetches with the session cookie, and the session's CSRF token in
// an X-CSRF-Token header on every POST. A missing endpoint (an older server) is Unavailable,
// so a page can say "not available" instead of breaking.

let csrf = "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export class Unavailable extends Error {
  constructor(path) {
    super(`${path} is not available on this server`);
    this.name = "Unavailable";
  }
}

async function answer(path, reply) {
  if (reply.status === 401) {
    location.assign("/login");
    throw new ApiError(401, "please log in again");
  }
  const type = reply.headers.get("Content-Type") || "";
  if (!type.includes("json")) {
    // The API answers its own errors as JSON; a plain 404/405 means no such route here.
    if (reply.status === 404 || reply.status === 405) throw new Unavailable(path);
    if (!reply.ok) throw new ApiError(reply.status, `the server answered ${reply.status}`);
    return reply.text();
  }
  const body = await reply.json();
  if (!reply.ok) throw new ApiError(reply.status, body.error || `error ${reply.status}`);
  return body;
}

export async function getJSON(path, options = {}) {
  const reply = await fetch(path, { credentials: "same-origin", signal: options.signal,
    headers: { Accept: "application/json" } });
  return answer(path, reply);
}

export async function postJSON(path, body) {
  const reply = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json",
      "X-CSRF-Token": csrf },
    body: JSON.stringify(body ?? {}),
  });
  return answer(path, reply);
}

export async function loadSession() {
  const session = await getJSON("/api/v1/session");
  csrf = session.csrf_token || "";
  return session;
}

// A multipart POST with upload progress (fetch cannot report it): onProgress(sent, total).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener("load", () => {
      const type = xhr.getResponseHeader("Content-Type") || "";
      if (xhr.status === 401) { location.assign("/login"); return; }
      if (!type.includes("json")) {
        reject(xhr.status === 404 || xhr.status === 405 ? new Unavailable(path)
          : new ApiError(xhr.status, `the server answered ${xhr.status}`));
        return;
      }
      let body;
      try { body = JSON.parse(xhr.responseText); } catch { body = {}; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body.error || `error ${xhr.status}`));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload was interrupted")));
    xhr.send(form);
  });
}
