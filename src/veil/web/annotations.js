// A completed task's annotations in CVAT's formats (GET /v1/formats): an Export menu (the format, with or
// without the images, anonymized or original) and Import annotations (a file and its format, then perhaps a
// re-render). Each is a background request followed live at GET /v1/requests/{rq_id}: its progress and a
// Cancel button (DELETE), then its result to download (and the render task it started), or the message
// saying why it failed.

import { describeError } from "./api.js";
import { el, formatBytes } from "./dom.js";

const POLL_MS = 700;
const VERBS = { export: "Exporting", import: "Importing" };

function taskPath(task) {
  return `/v1/tasks/${encodeURIComponent(task.id)}`;
}

function isMedia(file) {
  return !file.name.endsWith(".json") && file.type !== "application/json";
}

function kindOf(type) {
  if ((type || "").startsWith("video/")) return "video";
  return (type || "").startsWith("image/") ? "image" : null;
}

/** The file a chain of tasks began with, as the server's `media=original` takes it; null once it is gone or
 * this key may not read it. */
async function readableOriginal(api, task) {
  let input = task.parameters?.input;
  try {
    while (typeof input === "string" && input.startsWith("task_")) input = (await api.getTask(input)).parameters?.input;
    return typeof input === "string" ? await api.json("GET", `/v1/files/${encodeURIComponent(input)}`) : null;
  } catch {
    return null;
  }
}

/** "image" or "video": the task's media, told by the media it generated, else by its original; null when
 * neither says (a detect task whose original is gone). */
function mediaKind(task, original) {
  const generated = (task.result?.generated_files || []).find(isMedia);
  return kindOf(generated?.type) || kindOf(original?.type);
}

function formatSelect(id, formats, kind, can) {
  const fitting = formats.filter((format) => format[can] && (!kind || format.media.includes(kind)));
  return el("select", { id, name: "format", required: true },
    ...fitting.map((format) => el("option", { value: format.name }, format.name)));
}

/** A button that downloads the request's result file under its own name, and where its error shows. */
async function resultButton(api, record, text) {
  const file = await api.json("GET", `/v1/files/${encodeURIComponent(record.result_id)}`);
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const button = el("button", { type: "button", "data-testid": "request-download" },
    `${text}: ${file.name} (${formatBytes(file.properties?.size)})`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.hidden = true;
    try {
      await api.download(record.result_url, file.name);
    } catch (failure) {
      error.textContent = `Could not download ${file.name}: ${describeError(failure)}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  return el("div", {}, button, error);
}

/**
 * Polls request `rqId`, showing in `state` its progress and a Cancel button while it is queued or running,
 * until it ends or `isGone()`; answers what `finished(record)` builds, or why it failed (or that it was
 * cancelled), or null once gone. The row is built once and updated in place, so a focused Cancel button
 * keeps the focus between polls.
 */
async function follow(api, rqId, { kind, state, isGone, finished }) {
  const path = `/v1/requests/${encodeURIComponent(rqId)}`;
  const label = el("span", {}, `${VERBS[kind]}… starting `);
  const bar = el("progress", { max: 100, value: 0, "aria-label": `${kind === "export" ? "Export" : "Import"} progress` });
  const cancel = el("button", { type: "button", "data-testid": "request-cancel" }, `Cancel the ${kind}`);
  const cancelError = el("span", { class: "error", role: "alert", hidden: true });
  let cancelled = null; // the request as DELETE answered it: failed, with the server's message
  let wake = () => {};
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    cancelError.hidden = true;
    try {
      cancelled = await api.json("DELETE", path);
      wake();
    } catch (error) {
      // 409: the request ended meanwhile, and the next poll shows how.
      if (error.status === 409) return;
      cancelError.textContent = `Could not cancel: ${describeError(error)}`;
      cancelError.hidden = false;
      cancel.disabled = false;
    }
  });
  state.replaceChildren(label, bar, cancel, cancelError);
  for (;;) {
    const record = cancelled || (await api.json("GET", path));
    if (isGone()) return null;
    if (record.status === "finished") {
      return el("div", { class: "request-done", "data-testid": "request-done" }, ...(await finished(record)));
    }
    if (cancelled) {
      return el("p", { class: "request-cancelled", "data-testid": "request-cancelled", tabindex: "-1" }, `The ${kind} was cancelled; nothing was kept.`);
    }
    if (record.status === "failed") return failure(`The ${kind} failed: ${record.message || "no reason was given."}`);
    const percent = Math.round((record.progress || 0) * 100);
    label.textContent = `${VERBS[kind]}… ${record.status === "queued" ? "queued" : `${percent} %`} `;
    bar.value = percent;
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, POLL_MS);
    });
    if (isGone()) return null;
  }
}

function failure(text) {
  return el("p", { class: "error", role: "alert", "data-testid": "request-error", tabindex: "-1" }, text);
}

/**
 * On submit, starts the request with `start()` (which answers its id) and follows it into `state`; one at a
 * time. The outcome takes the focus unless the person went elsewhere meanwhile, so a keyboard user lands on
 * the download, the new task or the error.
 */
function runner(api, { kind, form, state, isGone, start, finished }) {
  const submit = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    state.replaceChildren(el("span", {}, `${VERBS[kind]}… starting`));
    let outcome;
    try {
      const { rq_id: rqId } = await start();
      outcome = await follow(api, rqId, { kind, state, isGone, finished });
    } catch (error) {
      outcome = failure(`The ${kind} could not be ${kind === "export" ? "made" : "read"}: ${describeError(error)}`);
    } finally {
      submit.disabled = false;
    }
    if (!outcome) return;
    // Disabling the submit button may have dropped the focus to the page's body.
    const active = document.activeElement;
    const ours = !active || active === document.body || form.contains(active);
    state.replaceChildren(outcome);
    if (ours) (outcome.querySelector("a, button") || outcome).focus();
  });
}

function exportMenu(api, task, { formats, kind, original, isGone }) {
  const images = el("input", { type: "checkbox", id: "export-images", name: "save_images" });
  const fromOriginal = el("input", { type: "radio", name: "media", value: "original", id: "export-original",
    disabled: !original });
  const step = el("input", { type: "number", id: "export-frame-step", name: "frame_step", min: 1, value: 1 });
  const choice = el("fieldset", { class: "media-choice", disabled: true },
    el("legend", {}, "Images from"),
    el("label", { class: "check" },
      el("input", { type: "radio", name: "media", value: "anonymized", id: "export-anonymized", checked: true }),
      "the anonymized output"),
    el("label", { class: "check" }, fromOriginal, "the original",
      original ? null : el("span", { class: "hint" }, " (not readable with your key, or gone)")),
    kind === "video" ? el("label", { for: "export-frame-step" }, "Keep every n-th frame, n =") : null,
    kind === "video" ? step : null);
  images.addEventListener("change", () => (choice.disabled = !images.checked));
  const state = el("div", { class: "request-state", role: "status", "aria-live": "polite", id: "export-state" });
  const form = el("form", { class: "annotation-form", id: "export-form" },
    el("label", { for: "export-format" }, "Format"), formatSelect("export-format", formats, kind, "can_export"),
    el("label", { class: "check" }, images,
      kind === "video" ? "Include the frames as JPEG images" : "Include the images"),
    choice,
    el("div", { class: "toolbar" },
      el("button", { type: "submit", class: "primary", id: "export-submit" }, "Export"), state));
  runner(api, {
    kind: "export", form, state, isGone,
    start: () => {
      const data = new FormData(form);
      const query = { format: data.get("format") };
      if (!images.checked) return api.json("POST", `${taskPath(task)}/annotations/export`, { query });
      Object.assign(query, { save_images: "true", media: data.get("media") });
      if (kind === "video") query.frame_step = step.value;
      return api.json("POST", `${taskPath(task)}/dataset/export`, { query });
    },
    finished: async (record) => [await resultButton(api, record, "Download")],
  });
  return el("details", { class: "menu", id: "export-menu" }, el("summary", {}, "Export"), form);
}

function importMenu(api, task, { formats, kind, original, isGone }) {
  const render = el("input", { type: "checkbox", id: "import-render", name: "render", disabled: !original });
  const state = el("div", { class: "request-state", role: "status", "aria-live": "polite", id: "import-state" });
  const form = el("form", { class: "annotation-form", id: "import-form" },
    el("label", { for: "import-file" }, "Annotations file"),
    el("input", { type: "file", id: "import-file", name: "file", required: true, accept: ".zip,.xml,.json" }),
    el("label", { for: "import-format" }, "Format"), formatSelect("import-format", formats, kind, "can_import"),
    el("label", { class: "check" }, render, "Render: obscure the imported boxes on the original, as a new task",
      original ? null : el("span", { class: "hint" }, " (the original is not readable with your key, or gone)")),
    el("div", { class: "toolbar" },
      el("button", { type: "submit", class: "primary", id: "import-submit" }, "Import"), state));
  runner(api, {
    kind: "import", form, state, isGone,
    start: () => {
      const data = new FormData(form);
      const body = new FormData();
      body.append("file", data.get("file"));
      const query = { format: data.get("format"), render: render.checked ? "true" : undefined };
      return api.json("POST", `${taskPath(task)}/annotations`, { query, body });
    },
    finished: async (record) => [
      el("p", {}, "Imported: the corrected detections are stored with this task."),
      record.render_task_id ? el("p", {}, "Re-render: ",
        el("a", { href: `#/tasks/${record.render_task_id}`, "data-testid": "render-task" }, `task ${record.render_task_id}`))
        : null,
      await resultButton(api, record, "Download the corrected detections"),
    ],
  });
  return el("details", { class: "menu", id: "import-menu" }, el("summary", {}, "Import annotations"), form);
}

/**
 * "Export selected as dataset": the completed tasks `selected()` names, in one dataset of a format (POST
 * /v1/datasets/export), each task's items under a folder named by its id; followed as a task's export is.
 * The formats are loaded when the menu first opens.
 */
export function datasetMenu(api, { selected, isGone }) {
  const format = el("select", { id: "dataset-format", name: "format", required: true });
  const images = el("input", { type: "checkbox", id: "dataset-images", name: "save_images" });
  const state = el("div", { class: "request-state", role: "status", "aria-live": "polite", id: "dataset-state" });
  const form = el("form", { class: "annotation-form", id: "dataset-form" },
    el("label", { for: "dataset-format" }, "Format"), format,
    el("label", { class: "check" }, images, "Include the anonymized images (video frames as JPEG)"),
    el("div", { class: "toolbar" },
      el("button", { type: "submit", class: "primary", id: "dataset-submit" }, "Export"), state));
  const menu = el("details", { class: "menu", id: "dataset-menu" },
    el("summary", {}, "Export selected as dataset"), form);
  menu.addEventListener("toggle", async () => {
    if (!menu.open || format.options.length) return;
    try {
      const { results } = await api.json("GET", "/v1/formats");
      format.replaceChildren(...results.filter((item) => item.can_export)
        .map((item) => el("option", { value: item.name }, item.name)));
    } catch (error) {
      state.replaceChildren(failure(`The formats could not be loaded: ${describeError(error)}`));
    }
  });
  runner(api, {
    kind: "export", form, state, isGone,
    start: () => api.json("POST", "/v1/datasets/export",
      { json: { task_ids: selected(), format: format.value, save_images: images.checked } }),
    finished: async (record) => [await resultButton(api, record, "Download")],
  });
  return menu;
}

/**
 * The annotations panel of completed task `task`: Export and Import annotations, each following its
 * background request while `isGone()` is false (the page still shows the task).
 */
export async function annotationsPanel(api, task, isGone) {
  const section = el("section", { class: "panel annotations", "aria-labelledby": "annotations-title" },
    el("h3", { id: "annotations-title" }, "Annotations"));
  let formats;
  try {
    ({ results: formats } = await api.json("GET", "/v1/formats"));
  } catch (error) {
    section.append(failure(`The formats could not be loaded: ${describeError(error)}`));
    return section;
  }
  const original = await readableOriginal(api, task);
  const options = { formats, kind: mediaKind(task, original), original, isGone };
  section.append(
    el("p", { class: "hint" }, "Its boxes in CVAT's formats, to read or correct in another tool and bring back."),
    el("div", { class: "menus" }, exportMenu(api, task, options), importMenu(api, task, options)));
  return section;
}
