// A job's page: live stage-by-stage progress and scenes, the player once it is done, and its actions.

import { ApiError, contract, follow, objectUrl, request } from "./api.js";
import {
  alertBox,
  announce,
  eta,
  fill,
  h,
  phaseBadge,
  progressBar,
  saveAs,
  stageName,
  TERMINAL_PHASES,
  usd,
  when,
} from "./dom.js";

/** Where Kueue holds a queued job: "tenant-a, number 2 in line" (its place, where Kueue reports one). */
function queuePlace(queue) {
  if (!queue.position) return queue.name;
  return queue.position === 1 ? `${queue.name}, next in line` : `${queue.name}, number ${queue.position} in line`;
}

/** A WebVTT chapters track from the metadata's scene times. */
function chaptersVtt(scenes) {
  const stamp = (seconds) => new Date(seconds * 1000).toISOString().slice(11, 23);
  const cues = scenes.map(
    (scene) => `${stamp(scene.start_seconds)} --> ${stamp(scene.end_seconds)}\n${scene.index}. ${scene.title}`,
  );
  return URL.createObjectURL(new Blob([`WEBVTT\n\n${cues.join("\n\n")}\n`], { type: "text/vtt" }));
}

class JobPage {
  constructor(view, job, stages, navigate) {
    this.view = view;
    this.job = job;
    this.stages = stages.filter((stage) => stage !== "initializing");
    this.navigate = navigate;
    this.live = new AbortController();
    this.blobs = [];
    this.thumbnails = new Map(); // a scene thumbnail's path → its blob: URL, fetched once
    this.sceneKey = null;
    this.playerShown = false;
    this.status = h("section", { "aria-labelledby": "status-title", class: "panel" });
    this.actions = h("div", { class: "actions" });
    this.problem = h("div");
    this.scenes = h("ol", { class: "scenes", "aria-label": "Scenes" });
    this.result = h("section", { class: "result", "aria-label": "Video" });
    fill(
      view,
      h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "My jobs")),
      h("h1", { id: "job-title" }, job.request.topic),
      this.problem,
      this.actions,
      this.status,
      this.result,
      h("section", { "aria-labelledby": "scenes-title", class: "panel" }, h("h2", { id: "scenes-title" }, "Scenes"), this.scenes),
    );
  }

  get url() {
    return this.job.urls;
  }

  update(status) {
    this.job = { ...this.job, ...status };
    this.renderStatus();
    this.renderActions();
    this.refreshScenes();
    if (this.job.phase === "Succeeded" && !this.playerShown) {
      this.playerShown = true;
      this.renderResult().catch((error) => {
        if (error.name !== "AbortError") fill(this.problem, alertBox(error.message));
      });
    }
  }

  renderStatus() {
    const job = this.job;
    const current = this.stages.indexOf(job.stage);
    const steps = this.stages.map((stage, index) => {
      const done = index < current || job.phase === "Succeeded";
      const state = done ? "done" : index === current ? "current" : "todo";
      return h(
        "li",
        { class: `step ${state}`, "aria-current": state === "current" ? "step" : null },
        h("span", { class: "visually-hidden" }, done ? "Done: " : state === "current" ? "Now: " : "Next: "),
        stageName(stage),
      );
    });
    const usage = job.usage;
    fill(
      this.status,
      h("h2", { id: "status-title" }, "Progress ", phaseBadge(job.phase)),
      progressBar(job.progress, "Job progress"),
      h("ol", { class: "steps" }, steps),
      h("p", { class: "message", "data-message": "" }, job.message),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Scenes"),
        h("dd", { "data-scenes": job.scenes.ready }, `${job.scenes.rendered} of ${job.scenes.total} rendered`, job.scenes.failed ? `, ${job.scenes.failed} failed` : ""),
        job.queue && [
          h("dt", {}, "In queue"),
          h("dd", { "data-queue": job.queue.position ?? "" }, queuePlace(job.queue)),
        ],
        h("dt", {}, "Ready in"),
        h("dd", {}, TERMINAL_PHASES.has(job.phase) ? "—" : eta(job.estimated_completion_time)),
        h("dt", {}, "LLM calls"),
        h("dd", {}, `${usage.llm_calls} (${usage.total_tokens.toLocaleString()} tokens)`),
        h("dt", {}, "Cost so far"),
        h("dd", { "data-cost": usage.cost_usd }, usd(usage.cost_usd)),
        h("dt", {}, "Created"),
        h("dd", {}, when(job.created_at)),
      ),
    );
    if (job.error) {
      const error = job.error;
      fill(this.problem, alertBox([error.message, error.suggestion].filter(Boolean).join(" ")));
    }
  }

  button(label, action, attributes = {}) {
    const button = h("button", { type: "button", ...attributes }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        fill(this.problem, alertBox(error.message));
        announce(error.message);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  renderActions() {
    const phase = this.job.phase;
    const act = (path) => async () => this.update(await request("POST", path));
    fill(
      this.actions,
      TERMINAL_PHASES.has(phase) ? null : this.button("Cancel job", act(this.url.cancel), { "data-action": "cancel" }),
      phase === "Failed" || phase === "Cancelled"
        ? this.button("Retry", async () => {
            fill(this.problem);
            this.update(await request("POST", this.url.retry));
            this.follow(); // the last stream ended with the failure
          }, { "data-action": "retry", class: "primary" })
        : null,
      this.button("Delete", async () => {
        if (!window.confirm(`Delete "${this.job.request.topic}" and its files?`)) return;
        await request("DELETE", this.url.job);
        this.navigate("#/jobs");
      }, { "data-action": "delete", class: "danger" }),
    );
  }

  async refreshScenes() {
    const { phase, stage, scenes } = this.job;
    const key = `${phase}:${stage}:${scenes.total}:${scenes.rendered}:${scenes.failed}`;
    if (key === this.sceneKey) return;
    this.sceneKey = key;
    let list;
    try {
      list = await request("GET", this.url.scenes, { signal: this.live.signal });
    } catch (error) {
      if (error.name !== "AbortError") fill(this.problem, alertBox(error.message));
      return;
    }
    const items = list.data.map((scene) => {
      const picture = h("div", { class: "scene-thumb" });
      if (scene.thumbnail) {
        if (!this.thumbnails.has(scene.thumbnail)) {
          this.thumbnails.set(scene.thumbnail, objectUrl(scene.thumbnail, { signal: this.live.signal }));
        }
        this.thumbnails
          .get(scene.thumbnail)
          .then((url) => fill(picture, h("img", { src: url, alt: `Scene ${scene.index}: ${scene.title}`, width: 160 })))
          .catch(() => this.thumbnails.delete(scene.thumbnail)); // tried again at the next change
      }
      return h(
        "li",
        { class: `scene ${scene.state}`, "data-scene": scene.index, "data-state": scene.state },
        picture,
        h("span", { class: "scene-title" }, `${scene.index}. ${scene.title}`),
        h("span", { class: "scene-state" }, scene.state),
      );
    });
    fill(this.scenes, items.length ? items : h("li", { class: "empty" }, "The outline is not written yet."));
  }

  async renderResult() {
    const job = this.job;
    const signal = this.live.signal;
    const subtitles = job.request.delivery.subtitles;
    const [links, vtt, metadata] = await Promise.all([
      request("GET", this.url.video_url, { signal }),
      subtitles ? objectUrl(`${this.url.subtitles}?format=vtt`, { signal }) : null,
      request("GET", this.url.metadata, { signal }),
    ]);
    const video = h("video", {
      controls: true,
      preload: "metadata",
      src: links.url,
      playsinline: true,
      "aria-label": `Video: ${job.request.topic}`,
    });
    const downloads = [h("a", { class: "button primary", href: links.download_url, download: "", "data-link": "download" }, "Download video")];
    if (vtt) {
      this.blobs.push(vtt);
      video.append(h("track", { kind: "subtitles", src: vtt, srclang: job.request.language, label: "Subtitles", default: true }));
      downloads.push(
        this.button("Subtitles (.srt)", async () => {
          const srt = await objectUrl(`${this.url.subtitles}?format=srt`);
          saveAs(srt, `${job.id}.srt`);
        }, { "data-link": "subtitles" }),
      );
    }
    downloads.push(
      this.button("Metadata (.json)", async () => {
        const file = await objectUrl(this.url.metadata);
        saveAs(file, `${job.id}.json`);
      }, { "data-link": "metadata" }),
    );
    const chapters = (metadata.scenes || []).map((scene) =>
      h("li", {}, this.button(`${scene.index}. ${scene.title}`, async () => {
        video.currentTime = scene.start_seconds;
        await video.play();
      }, { class: "link", "data-chapter": scene.index })),
    );
    if (job.request.delivery.chapters && metadata.scenes?.length) {
      const track = chaptersVtt(metadata.scenes);
      this.blobs.push(track);
      video.append(h("track", { kind: "chapters", src: track, srclang: job.request.language, label: "Chapters" }));
    }
    fill(
      this.result,
      video,
      h("div", { class: "actions" }, downloads),
      chapters.length ? h("nav", { "aria-label": "Chapters" }, h("h2", {}, "Chapters"), h("ol", { class: "chapters" }, chapters)) : null,
      this.reviseForm(metadata.scenes || []),
    );
    announce("The video is ready.");
  }

  reviseForm(scenes) {
    const instructions = h("textarea", { id: "revise-instructions", rows: 3, required: true, maxlength: 2000, "aria-describedby": "revise-hint" });
    const boxes = scenes.map((scene) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "scene", value: scene.index }), ` ${scene.index}. ${scene.title}`),
    );
    const errors = h("div");
    const form = h(
      "form",
      { class: "panel", novalidate: true, "aria-labelledby": "revise-title" },
      h("h2", { id: "revise-title" }, "Revise"),
      h("label", { for: "revise-instructions" }, "What to change"),
      instructions,
      h("p", { class: "hint", id: "revise-hint" }, "The scenes you tick are made again with these instructions; none ticked: every scene."),
      h("fieldset", {}, h("legend", {}, "Scenes to make again"), boxes),
      errors,
      h("button", { type: "submit", "data-action": "revise" }, "Make a revised video"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = boxes.map((box) => box.firstChild).filter((box) => box.checked).map((box) => Number(box.value));
      try {
        const revised = await request("POST", this.url.revise, { body: { instructions: instructions.value, scenes: chosen } });
        this.navigate(`#/jobs/${revised.id}`);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const atInstructions = error.fieldErrors.filter((issue) => issue.field === "instructions");
        if (atInstructions.length) instructions.setAttribute("aria-invalid", "true");
        else instructions.removeAttribute("aria-invalid");
        fill(errors, alertBox(atInstructions.map((issue) => `What to change: ${issue.message}`).join(" ") || error.message));
        announce(error.message);
      }
    });
    return form;
  }

  follow() {
    follow(this.url.events, (status) => this.update(status), {
      signal: this.live.signal,
      finished: () => TERMINAL_PHASES.has(this.job.phase),
    }).catch((error) => fill(this.problem, alertBox(error.message)));
  }

  close() {
    this.live.abort();
    this.blobs.forEach((url) => URL.revokeObjectURL(url));
    this.thumbnails.forEach((url) => url.then(URL.revokeObjectURL, () => {}));
  }
}

/** Render job `id` into `view`; the returned object's `abort()` ends its live updates. */
export async function jobView(view, id, navigate) {
  const [spec, job] = await Promise.all([contract(), request("GET", `/v1/videos/jobs/${encodeURIComponent(id)}`)]);
  const page = new JobPage(view, job, spec.components.schemas.Stage.enum, navigate);
  page.update(job);
  if (!TERMINAL_PHASES.has(job.phase)) page.follow();
  return { abort: () => page.close() };
}
