// Small DOM helpers: elements built from data (never from HTML strings), and how values read.

/** An element with attributes (`on…` are listeners) and children; null, undefined and false are skipped. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** Replace the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
  return element;
}

/** Say `text` to screen readers (the page's polite live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 50);
}

/** An alert box for an error sentence, or nothing. */
export function alertBox(message) {
  return message ? h("p", { class: "alert", role: "alert" }, message) : null;
}

export const TERMINAL_PHASES = new Set(["Succeeded", "Failed", "Cancelled"]);

/** `Running` → a badge whose colour matches the phase. */
export function phaseBadge(phase) {
  return h("span", { class: `badge phase-${phase.toLowerCase()}`, "data-phase": phase }, phase);
}

/** `code_generation` → `code generation`. */
export const stageName = (stage) => stage.replaceAll("_", " ");

/** A progress bar with its percentage in words. */
export function progressBar(percent, label) {
  return h(
    "span",
    { class: "progress" },
    h("progress", { max: 100, value: percent, "aria-label": label }),
    h("span", { class: "percent", "data-progress": percent }, `${percent} %`),
  );
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** An ISO time as the reader's local date and time. */
export const when = (iso) => (iso ? timeFormat.format(new Date(iso)) : "—");

/** Time left until an ISO time: `about 3 min`, or `any moment` once it is past. */
export function eta(iso) {
  if (!iso) return "—";
  const seconds = Math.round((new Date(iso) - Date.now()) / 1000);
  if (seconds <= 5) return "any moment";
  if (seconds < 90) return `about ${seconds} s`;
  if (seconds < 5400) return `about ${Math.round(seconds / 60)} min`;
  return `about ${Math.round(seconds / 3600)} h`;
}

/** US dollars with enough digits for the cents of a cheap model. */
export const usd = (value) => `$${value.toFixed(value < 1 ? 4 : 2)}`;

/** Save a blob: URL as a file (subtitles, metadata) through a temporary link. */
export function saveAs(url, filename) {
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}
