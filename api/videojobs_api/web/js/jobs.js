// "My jobs": the caller's jobs newest first, filtered by phase, paged by cursor, kept live over SSE.

import { contract, follow, request } from "./api.js";
import { alertBox, eta, fill, h, phaseBadge, progressBar, stageName, when } from "./dom.js";

const PAGE_SIZE = 20; // the API's default; `#/jobs?limit=N` asks for other pages (1–100)

function cells(job) {
  return [
    h("td", { "data-label": "Phase" }, phaseBadge(job.phase)),
    h("td", { "data-label": "Stage" }, stageName(job.stage)),
    h("td", { "data-label": "Progress" }, progressBar(job.progress, `Progress of ${job.id}`)),
    h("td", { "data-label": "Ready in" }, job.phase === "Running" ? eta(job.estimated_completion_time) : "—"),
    h("td", { "data-label": "Created" }, when(job.created_at)),
  ];
}

function row(job) {
  const topic = h("th", { scope: "row", "data-label": "Topic" }, h("a", { href: `#/jobs/${job.id}` }, job.request.topic));
  return h("tr", { "data-job-id": job.id }, topic, cells(job));
}

/** Render the list into `view`; the returned AbortController ends its live updates. */
export async function jobsView(view, { status = "", limit = PAGE_SIZE } = {}) {
  const live = new AbortController();
  const spec = await contract();
  const phases = spec.components.schemas.Phase.enum;
  const filter = h(
    "select",
    { id: "status-filter" },
    h("option", { value: "" }, "All"),
    phases.map((phase) => h("option", { value: phase, selected: phase === status }, phase)),
  );
  filter.addEventListener("change", () => {
    const query = new URLSearchParams(filter.value ? { status: filter.value } : {});
    if (limit !== PAGE_SIZE) query.set("limit", limit);
    location.hash = query.size ? `#/jobs?${query}` : "#/jobs";
  });
  const body = h("tbody");
  const errors = h("div");
  const more = h("button", { type: "button", hidden: true, "data-action": "more" }, "Load more");
  const empty = h("p", { class: "empty", hidden: true }, "No jobs yet. ", h("a", { href: "#/new" }, "Make a video"), ".");
  const headings = ["Topic", "Phase", "Stage", "Progress", "Ready in", "Created"];
  const table = h(
    "table",
    { class: "jobs" },
    h("caption", { class: "visually-hidden" }, "Your jobs, newest first"),
    h("thead", {}, h("tr", {}, headings.map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  fill(
    view,
    h("h1", {}, "My jobs"),
    h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status "), filter, h("a", { class: "button primary", href: "#/new" }, "New video")),
    errors,
    empty,
    h("div", { class: "table-wrap" }, table),
    more,
  );

  let cursor = null;
  const load = async () => {
    const query = new URLSearchParams({ limit });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await request("GET", `/v1/videos/jobs?${query}`, { signal: live.signal });
      body.append(...page.data.map(row));
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
      empty.hidden = body.rows.length > 0;
      fill(errors);
    } catch (error) {
      if (error.name !== "AbortError") fill(errors, alertBox(error.message));
    }
  };
  more.addEventListener("click", load);
  await load();

  const onStatus = async (job) => {
    const existing = body.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
    if (existing) {
      existing.replaceChildren(existing.firstChild, ...cells(job));
      if (status && job.phase !== status) existing.remove();
    } else if (!status || job.phase === status) {
      try {
        const whole = await request("GET", `/v1/videos/jobs/${job.id}`, { signal: live.signal });
        if (!body.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`)) body.prepend(row(whole));
        empty.hidden = true;
      } catch {
        // deleted meanwhile: nothing to show
      }
    }
  };
  follow("/v1/videos/events", onStatus, { signal: live.signal, resume: false }).catch((error) =>
    fill(errors, alertBox(error.message)),
  );
  return live;
}
