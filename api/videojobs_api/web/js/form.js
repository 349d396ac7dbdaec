// The "New video" form, built from the contract: the request schema of POST /v1/videos/generate.

import { ApiError, contract, request } from "./api.js";
import { alertBox, announce, fill, h } from "./dom.js";

/** The request fields a video maker sets here, with the label each gets (the rest keep defaults). */
const FIELDS = [
  ["topic", "Topic"],
  ["description", "Description"],
  ["quality", "Quality"],
  ["max_scenes", "Scenes (at most)"],
  ["language", "Language"],
  ["voice.voice", "Voice"],
  ["max_cost_usd", "Budget (USD)"],
];
const LONG_TEXT = 1000;

function resolve(spec, schema) {
  if (schema.$ref) return resolve(spec, spec.components.schemas[schema.$ref.split("/").pop()]);
  const options = (schema.anyOf || []).filter((option) => option.type !== "null");
  if (options.length === 1) {
    return { ...resolve(spec, options[0]), description: schema.description, nullable: true };
  }
  return schema;
}

/** The schema of a dotted field of the request, e.g. `voice.voice`. */
function fieldSchema(spec, name) {
  const body = resolve(spec, spec.components.schemas.GenerationRequest);
  let schema = body;
  for (const part of name.split(".")) schema = resolve(spec, schema.properties[part]);
  return { schema, required: (body.required || []).includes(name) };
}

function control(id, name, schema, required) {
  const common = { id, name, required, "aria-describedby": `${id}-hint ${id}-error` };
  if (schema.enum) {
    const choices = schema.enum.map((value) => h("option", { value, selected: value === schema.default }, value));
    const unset = schema.nullable ? h("option", { value: "" }, "The server's default") : null;
    return h("select", common, unset, choices);
  }
  if (schema.type === "integer" || schema.type === "number") {
    return h("input", {
      ...common,
      type: "number",
      inputmode: schema.type === "integer" ? "numeric" : "decimal",
      step: schema.type === "integer" ? 1 : "any",
      min: schema.minimum ?? schema.exclusiveMinimum,
      max: schema.maximum,
      value: schema.default,
    });
  }
  const text = { ...common, minlength: schema.minLength, maxlength: schema.maxLength };
  if ((schema.maxLength || 0) > LONG_TEXT) return h("textarea", { ...text, rows: 3 });
  return h("input", { ...text, type: "text", value: schema.default || null, autocomplete: "off" });
}

function valueOf(input, schema) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  if (schema.type === "integer" || schema.type === "number") {
    const number = Number(raw);
    return Number.isNaN(number) ? raw : number; // the API names a bad number, in its own words
  }
  return raw;
}

function setPath(body, name, value) {
  const parts = name.split(".");
  const last = parts.pop();
  let target = body;
  for (const part of parts) target = target[part] ??= {};
  target[last] = value;
}

/** Render the form into `view`; `onCreated(job)` is called with the 202's job. */
export async function createView(view, onCreated) {
  const spec = await contract();
  const fields = FIELDS.map(([name, label]) => {
    const { schema, required } = fieldSchema(spec, name);
    const id = `field-${name.replace(".", "-")}`;
    const input = control(id, name, schema, required);
    const error = h("p", { class: "field-error", id: `${id}-error` });
    const row = h(
      "div",
      { class: "field" },
      h("label", { for: id }, label, required ? h("span", { "aria-hidden": "true" }, " *") : null),
      input,
      h("p", { class: "hint", id: `${id}-hint` }, schema.description || ""),
      error,
    );
    return { name, schema, input, error, row };
  });
  const formError = h("div", { id: "form-error" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create video");
  const form = h(
    "form",
    { novalidate: true, "aria-labelledby": "create-title" },
    fields.map((field) => field.row),
    formError,
    submit,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const field of fields) {
      const value = valueOf(field.input, field.schema);
      if (value !== undefined) setPath(body, field.name, value);
      fill(field.error);
      field.input.removeAttribute("aria-invalid");
    }
    fill(formError);
    submit.disabled = true;
    try {
      onCreated(await request("POST", "/v1/videos/generate", { body }));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showErrors(error, fields, formError);
    } finally {
      submit.disabled = false;
    }
  });

  fill(view, h("h1", { id: "create-title" }, "New video"), form);
  fields[0].input.focus();
}

function showErrors(error, fields, formError) {
  const unplaced = [];
  for (const issue of error.fieldErrors) {
    const field = fields.find((candidate) => candidate.name === issue.field);
    if (field && issue.location === "body") {
      field.error.append(h("span", {}, issue.message));
      field.input.setAttribute("aria-invalid", "true");
    } else {
      unplaced.push(issue.field === "body" ? issue.message : `${issue.field}: ${issue.message}`);
    }
  }
  const invalid = fields.find((field) => field.input.hasAttribute("aria-invalid"));
  if (invalid) invalid.input.focus();
  if (!error.fieldErrors.length || unplaced.length) {
    fill(formError, alertBox(unplaced.length ? unplaced.join(" ") : error.message));
  }
  announce(error.message);
}
