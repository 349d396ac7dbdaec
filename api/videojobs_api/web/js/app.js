// The page's entry: sign-in, and a hash router over the views (#/jobs, #/new, #/jobs/<id>).

import { ApiError, request, session } from "./api.js";
import { alertBox, fill, h } from "./dom.js";
import { createView } from "./form.js";
import { jobView } from "./job.js";
import { jobsView } from "./jobs.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
let current = null; // the shown view's live updates, ended when another is shown

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signInView(message) {
  const key = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "current-password",
    required: true,
    "aria-describedby": "api-key-hint",
  });
  const errors = h("div", {}, alertBox(message));
  const form = h(
    "form",
    { class: "panel narrow", novalidate: true, "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    key,
    h(
      "p",
      { class: "hint", id: "api-key-hint" },
      "Kept in this tab only, until you close it. `videojobs serve` on a laptop prints its key when it starts.",
    ),
    errors,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = key.value.trim();
    try {
      await request("GET", "/v1/videos/jobs?limit=1", { key: candidate });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      fill(errors, alertBox(error.message));
      key.setAttribute("aria-invalid", "true");
      key.focus();
      return;
    }
    session.signIn(candidate);
    route();
  });
  fill(view, form);
  key.focus();
}

async function route() {
  current?.abort();
  current = null;
  nav.hidden = !session.key;
  if (!session.key) {
    signInView();
    return;
  }
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("#nav a").forEach((link) => {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${parts[0] || "jobs"}` && parts.length < 2);
  });
  try {
    if (parts[0] === "new") {
      document.title = "New video · videojobs";
      await createView(view, (job) => navigate(`#/jobs/${job.id}`));
    } else if (parts[0] === "jobs" && parts[1]) {
      document.title = "Job · videojobs";
      current = await jobView(view, decodeURIComponent(parts[1]), navigate);
      document.title = `${document.getElementById("job-title").textContent} · videojobs`;
    } else {
      document.title = "My jobs · videojobs";
      const params = new URLSearchParams(query || "");
      const limit = Number(params.get("limit")) || undefined;
      current = await jobsView(view, { status: params.get("status") || "", limit });
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    fill(view, h("h1", {}, "Something went wrong"), alertBox(error.message), h("p", {}, h("a", { href: "#/jobs" }, "Back to my jobs")));
  }
  view.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
window.addEventListener("videojobs:unauthenticated", () => {
  session.signOut();
  current?.abort();
  nav.hidden = true;
  signInView("The API key is no longer valid. Sign in again.");
});
document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  navigate("#/jobs");
});
route();
