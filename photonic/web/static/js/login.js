// The login page: sends the token as JSON to POST /login (which sets the session cookie),
// then opens the dashboard. Without JavaScript the form posts the field itself.
const form = document.getElementById("login");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const reply = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token: form.token.value.trim() }),
    });
    if (reply.ok) {
      location.assign("/");
      return;
    }
    error.textContent = reply.status === 401
      ? "That token is not known to this server. Check it and try again."
      : `The server refused the login (${reply.status}).`;
  } catch {
    error.textContent = "The server cannot be reached. Is photonic running?";
  }
  error.hidden = false;
  button.disabled = false;
  form.token.focus();
});
