// The upload screen: photos and videos by drag and drop or a file picker, each sent through TUS in 5 MiB
// chunks (resuming from HEAD's Upload-Offset after a dropped connection), then one `anonymize` task each.

import { ApiError, describeError } from "./api.js";
import { el, formatBytes, plural } from "./dom.js";

export const CHUNK_BYTES = 5 * 1024 * 1024;
const MAX_RETRIES = 6;
const LABELS = ["face", "plate"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Errors worth another try: a dropped connection, a busy or failing server, an offset that moved. */
function transient(error) {
  return error instanceof ApiError && (error.status === 0 || error.status === 409 || error.status === 429 ||
    error.status >= 500);
}

/**
 * Sends `file` through TUS; onProgress(sentBytes) as it goes; resolves the new file's id.
 * After a transient failure it asks HEAD for the offset and goes on from there, waiting 1, 2, 4... s.
 */
export async function tusUpload(api, file, { onProgress, onRetry, signal, chunkBytes = CHUNK_BYTES } = {}) {
  const path = await api.createUpload(file);
  let offset = 0;
  let failures = 0;
  let needHead = false;
  for (;;) {
    try {
      if (needHead) {
        offset = await api.uploadOffset(path);
        needHead = false;
        onProgress && onProgress(offset);
      }
      const chunk = file.slice(offset, Math.min(offset + chunkBytes, file.size));
      const start = offset;
      const answer = await api.patchUpload(path, start, chunk, (sent) => onProgress && onProgress(start + sent),
        signal);
      offset = answer.offset;
      failures = 0;
      onProgress && onProgress(offset);
      if (answer.fileId) return answer.fileId;
      if (offset >= file.size) throw new ApiError(500, { detail: "The upload finished but no file was made." });
    } catch (error) {
      if (!transient(error) || failures >= MAX_RETRIES) throw error;
      failures += 1;
      const waitMs = Math.min(1000 * 2 ** (failures - 1), 15_000);
      onRetry && onRetry(error, waitMs);
      await sleep(waitMs);
      needHead = true;
    }
  }
}

function enumOf(property) {
  if (!property) return [];
  if (property.enum) return property.enum;
  for (const option of property.anyOf || []) if (option.enum) return option.enum;
  return [];
}

function resolveRef(schema, node) {
  if (node && node.$ref) {
    const name = node.$ref.split("/").pop();
    return (schema.$defs || schema.definitions || {})[name] || {};
  }
  if (node && node.anyOf) {
    for (const option of node.anyOf) if (option.$ref) return resolveRef(schema, option);
  }
  return node || {};
}

/** What the form offers, read from the anonymize operation's JSON Schema. */
export function formDefaults(schema) {
  const properties = (schema && schema.properties) || {};
  const detectors = properties.detectors || {};
  const styles = properties.styles || {};
  const style = resolveRef(schema, styles.additionalProperties || {});
  const styleProps = style.properties || {};
  const labels = enumOf(resolveRef(schema, (detectors.items || {}))).length
    ? enumOf(resolveRef(schema, detectors.items))
    : LABELS;
  const methods = enumOf(styleProps.method);
  const maskScale = styleProps.mask_scale || {};
  const numeric = (maskScale.anyOf || [maskScale]).find((option) => option.type === "number") || {};
  return {
    labels,
    detectors: Array.isArray(detectors.default) ? detectors.default : labels,
    methods: methods.length ? methods : ["blur", "pixelate", "fill"],
    styles: styles.default || {},
    maskScale: { min: numeric.minimum ?? 1, max: numeric.maximum ?? 3, default: maskScale.default ?? null },
  };
}

function optionsForm(defaults) {
  const form = el("form", { class: "options", id: "options-form" });
  const detectors = el("fieldset", {}, el("legend", {}, "What to obscure"));
  const styles = el("fieldset", {}, el("legend", {}, "How to obscure it"));
  for (const label of defaults.labels) {
    const id = `detector-${label}`;
    const box = el("input", { type: "checkbox", id, name: "detectors", value: label });
    box.checked = defaults.detectors.includes(label);
    detectors.append(el("div", { class: "check" }, box, el("label", { for: id }, label === "face" ? "Faces" :
      label === "plate" ? "Licence plates" : label)));
    const given = defaults.styles[label] || {};
    const method = el("select", { id: `method-${label}`, name: `method-${label}` },
      el("option", { value: "" }, `Server default${given.method ? ` (${given.method})` : ""}`),
      ...defaults.methods.map((name) => el("option", { value: name }, name)));
    const scale = el("input", {
      type: "number", id: `mask-scale-${label}`, name: `mask-scale-${label}`, step: "0.1",
      min: String(defaults.maskScale.min), max: String(defaults.maskScale.max),
      placeholder: given.mask_scale ? String(given.mask_scale) : "default",
    });
    const name = label === "face" ? "Faces" : label === "plate" ? "Plates" : label;
    const hidden = () => el("span", { class: "visually-hidden" }, `${name}: `);
    styles.append(el("div", { class: "style-row" },
      el("span", { class: "style-label", "aria-hidden": "true" }, name),
      el("label", { for: method.id }, hidden(), "method"), method,
      el("label", { for: scale.id }, hidden(), "mask scale"), scale));
  }
  form.append(detectors, styles);
  return form;
}

/** The anonymize parameters the form describes. */
function readParameters(form, defaults) {
  const detectors = [...form.querySelectorAll("input[name=detectors]:checked")].map((box) => box.value);
  const styles = {};
  for (const label of defaults.labels) {
    const style = {};
    const method = form.querySelector(`#method-${label}`).value;
    const scale = form.querySelector(`#mask-scale-${label}`).value;
    if (method) style.method = method;
    if (scale) style.mask_scale = Number(scale);
    if (Object.keys(style).length) styles[label] = style;
  }
  return { detectors, styles };
}

export async function showUpload(root, api) {
  root.replaceChildren(el("h1", {}, "Upload photos and videos"));
  const input = el("input", { type: "file", id: "file-input", multiple: "", accept: "image/*,video/*",
    class: "visually-hidden" });
  const zone = el("div", { class: "dropzone", id: "dropzone" },
    el("p", {}, "Drop photos and videos here, or"),
    el("label", { for: "file-input", class: "button" }, "Choose files"), input);
  const list = el("ul", { class: "uploads", id: "upload-list", "aria-label": "Files" });
  const formError = el("p", { class: "error", role: "alert", id: "options-error", hidden: "" });
  const submit = el("button", { type: "submit", class: "primary", id: "submit-tasks", disabled: "" },
    "Anonymize");
  const status = el("p", { id: "submit-status", role: "status" });
  root.append(zone, list);
  const items = [];
  // Files can arrive while the defaults load: listen before the first await.
  input.addEventListener("change", () => {
    add([...input.files]);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    add([...event.dataTransfer.files]);
  });

  let defaults;
  try {
    defaults = formDefaults((await api.operations()).anonymize);
  } catch (error) {
    defaults = formDefaults(null);
    formError.textContent = `Could not read the server's defaults: ${describeError(error)}`;
    formError.hidden = false;
  }
  if (!zone.isConnected) return; // the person went to another screen meanwhile
  const form = optionsForm(defaults);
  form.append(el("div", { class: "actions" }, submit, status), formError);
  root.append(form);

  function add(files) {
    for (const file of files) {
      const progress = el("progress", { max: String(file.size || 1), value: "0",
        "aria-label": `Upload progress of ${file.name}` });
      const state = el("span", { class: "state" }, "Uploading…");
      const row = el("li", { class: "upload" }, el("span", { class: "name" }, file.name),
        el("span", { class: "size" }, formatBytes(file.size)), progress, state);
      list.append(row);
      const item = { file, row, state, task: null, submitted: false };
      item.done = tusUpload(api, file, {
        onProgress: (sent) => { progress.value = sent; },
        onRetry: (error, waitMs) => {
          state.textContent = `Connection problem (${describeError(error)}); trying again in ${waitMs / 1000} s…`;
        },
      }).then((fileId) => {
        progress.value = file.size || 1;
        state.textContent = "Uploaded";
        row.classList.add("uploaded");
        item.fileId = fileId;
        return fileId;
      }, (error) => {
        state.textContent = `Upload failed: ${describeError(error)}`;
        state.classList.add("error");
        state.setAttribute("role", "alert");
        row.classList.add("failed");
        item.error = error;
        refresh();
        return null;
      });
      items.push(item);
    }
    refresh();
  }

  function refresh() {
    submit.disabled = !items.some((item) => !item.submitted && !item.error);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.hidden = true;
    const parameters = readParameters(form, defaults);
    if (!parameters.detectors.length) {
      formError.textContent = "Choose at least one thing to obscure (faces or licence plates).";
      formError.hidden = false;
      return;
    }
    const pending = items.filter((item) => !item.submitted && !item.error);
    submit.disabled = true;
    status.textContent = `Submitting ${plural(pending.length, "file")}…`;
    let made = 0;
    await Promise.all(pending.map(async (item) => {
      item.submitted = true;
      const fileId = await item.done;
      if (!fileId) return;
      try {
        const task = await api.createTask({ operation: "anonymize", input: fileId, parameters });
        made += 1;
        item.state.replaceChildren("Task ", el("a", { href: `#/tasks/${task.id}` }, task.id), ` ${task.status}`);
      } catch (error) {
        item.state.textContent = `Could not start the task: ${describeError(error)}`;
        item.state.classList.add("error");
        item.state.setAttribute("role", "alert");
      }
    }));
    status.replaceChildren(`${plural(made, "task")} submitted. `, el("a", { href: "#/tasks" }, "See the task list"));
    refresh();
  });
}
