// The result of one task (`#/tasks/<id>`): follows the task until it ends, then shows the photo before and after
// or the video with its tracks, lets the person correct the boxes, and re-renders the original from the
// corrected detections as a new `render` task; its annotations export and import in CVAT's formats
// (annotations.js). Media are fetched with the key and shown from object URLs.

import { annotationsPanel } from "./annotations.js";
import { describeError } from "./api.js";
import { plural } from "./dom.js";
import { el, photoEditor } from "./editor.js";
import { videoEditor } from "./video.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const RENDER_OPTIONS = ["styles", "draw", "keep_metadata", "keep_audio", "codec", "crf", "preset"];
const POLL_MS = 700;

let current = null;

class View {
  constructor(taskId) {
    this.taskId = taskId;
    this.urls = [];
    this.disposed = false;
    this.onHash = () => {
      if (!window.location.hash.startsWith(`#/tasks/${taskId}`)) this.dispose();
    };
    window.addEventListener("hashchange", this.onHash);
  }

  objectUrl(blob) {
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    return url;
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    window.removeEventListener("hashchange", this.onHash);
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isJson(file) {
  return file.name.endsWith(".json") || file.type === "application/json";
}

async function blobOf(api, fileId) {
  const response = await api.fetch("GET", `/v1/files/${encodeURIComponent(fileId)}/content`);
  return response.blob();
}

/** The file id of the original media: `parameters.input`, or the output of the task it names. */
async function originalFileId(api, task) {
  const input = task.parameters && task.parameters.input;
  if (typeof input === "string" && input.startsWith("task_")) {
    const source = await api.getTask(input);
    const media = (source.result?.generated_files || []).find((f) => !isJson(f));
    if (!media) throw new Error(`Task ${input}, the input of this task, has no output media.`);
    return media.id;
  }
  return input;
}

async function renderOptions(api, parameters) {
  let allowed = RENDER_OPTIONS;
  try {
    const operations = await api.operations();
    const properties = operations?.render?.properties;
    if (properties) allowed = RENDER_OPTIONS.filter((name) => name in properties);
  } catch {
    // The defaults endpoint is optional here: without it every known option is carried over.
  }
  const options = {};
  for (const name of allowed) {
    const value = parameters?.[name];
    if (value !== null && value !== undefined) options[name] = value;
  }
  return options;
}

function errorBox() {
  const box = el("div", { class: "result-error", role: "alert", "data-testid": "result-error", hidden: true });
  return {
    node: box,
    show(error, prefix) {
      box.hidden = false;
      box.replaceChildren(
        el("strong", { text: prefix || "Something went wrong." }),
        el("pre", { text: describeError(error) }),
      );
    },
    clear() {
      box.hidden = true;
      box.replaceChildren();
    },
  };
}

function statusLine(task) {
  const percent = Math.round((task.progress || 0) * 100);
  return el(
    "div",
    { class: "result-status", "data-testid": "result-status" },
    el("span", { class: `status status-${task.status}`, text: task.status }),
    task.status === "started" || task.status === "queued"
      ? el("progress", { max: 100, value: percent, "aria-label": "Progress" }, `${percent}%`)
      : null,
    task.status === "started" ? el("span", { text: ` ${percent}%` }) : null,
  );
}

/** "1 face, 3 plates"; on video, where one object followed across frames counts once, "1 face track". */
function foundText(detections, isVideo) {
  return Object.entries(detections || {})
    .map(([label, n]) => plural(n, isVideo ? `${label} track` : label))
    .join(", ");
}

function producesVideo(task) {
  return (task.result?.generated_files || []).some((file) => (file.type || "").startsWith("video/"));
}

/** The task's summary; `showVideo()` names the counts as tracks once the report says the media is a video
 * (a `detect` task generates no media that would tell it sooner). */
function summary(task) {
  const input = String(task.parameters?.input ?? "");
  const found = el("dd", { "data-testid": "found", text: foundText(task.result?.detections, producesVideo(task)) });
  const node = el(
    "dl",
    { class: "result-summary" },
    el("dt", { text: "Operation" }),
    el("dd", { text: task.operation }),
    el("dt", { text: "Input" }),
    el("dd", { "data-testid": "input-name", title: task.input_name ? input : null, text: task.input_name || input }),
    el("dt", { text: "Created" }),
    el("dd", { text: new Date(task.created_at).toLocaleString() }),
    found.textContent ? el("dt", { text: "Found" }) : null,
    found.textContent ? found : null,
  );
  return { node, showVideo: () => (found.textContent = foundText(task.result?.detections, true)) };
}

function downloads(api, task, errors) {
  const files = task.result?.generated_files || [];
  const section = el("section", { class: "panel result-downloads", "aria-labelledby": "downloads-title" });
  section.append(el("h3", { id: "downloads-title", text: "Downloads" }));
  if (!files.length) section.append(el("p", { text: "This task generated no files." }));
  const list = el("ul", { class: "download-list" });
  for (const file of files) {
    const button = el(
      "button",
      {
        type: "button",
        "data-testid": `download-${isJson(file) ? "json" : "media"}`,
        onclick: async () => {
          button.disabled = true;
          try {
            errors.clear();
            await api.download(`/v1/files/${encodeURIComponent(file.id)}/content`, file.name);
          } catch (error) {
            errors.show(error, `Could not download ${file.name}.`);
          } finally {
            button.disabled = false;
          }
        },
      },
      `Download ${isJson(file) ? "detections" : "output"}: ${file.name}`,
    );
    list.append(el("li", {}, button));
  }
  section.append(list);
  return section;
}

async function follow(api, view, taskId, statusHolder) {
  for (;;) {
    const task = await api.getTask(taskId);
    statusHolder.replaceChildren(statusLine(task));
    if (TERMINAL.has(task.status) || view.disposed) return task;
    await sleep(POLL_MS);
    if (view.disposed) return task;
  }
}

async function editorFor(api, view, task, errors) {
  const files = task.result?.generated_files || [];
  const media = files.find((f) => !isJson(f));
  const report = files.find((f) => isJson(f));
  const originalId = await originalFileId(api, task);
  if (!report) {
    return el("p", { class: "hint", text: "This task has no detections report, so there are no boxes to correct." });
  }
  const [reportDoc, originalBlob, outputBlob] = await Promise.all([
    api.fetch("GET", `/v1/files/${encodeURIComponent(report.id)}/content`).then((r) => r.json()),
    blobOf(api, originalId),
    media ? blobOf(api, media.id) : Promise.resolve(null),
  ]);
  if (view.disposed) return el("div");
  const originalUrl = view.objectUrl(originalBlob);
  const outputUrl = outputBlob ? view.objectUrl(outputBlob) : null;
  const isVideo = reportDoc.media?.type === "video";
  const editor = isVideo
    ? videoEditor({ originalUrl, outputUrl, report: reportDoc })
    : photoEditor({ originalUrl, outputUrl, report: reportDoc });

  const saveButton = el("button", { type: "button", class: "primary", "data-testid": "save-render" }, "Save and re-render");
  const saveState = el("span", { class: "save-state", "aria-live": "polite", "data-testid": "save-state" });
  // What the boxes were when the page opened: saving them unchanged would only make the same output again
  // (a detect task has none yet, so its boxes render as they are).
  const opened = JSON.stringify(editor.document());
  saveButton.addEventListener("click", async () => {
    errors.clear();
    const text = JSON.stringify(editor.document());
    if (media && text === opened) {
      saveState.textContent = "Nothing changed: the boxes are as this task left them, so no new task was made.";
      return;
    }
    saveButton.disabled = true;
    try {
      // The document goes up as a file, however large; the render task names it.
      saveState.textContent = "Uploading the corrected detections…";
      const corrected = new Blob([text], { type: "application/json" });
      const uploaded = await api.uploadFile(corrected, `${task.id}-corrected.json`);
      saveState.textContent = "Submitting the re-render…";
      const parameters = { ...(await renderOptions(api, task.parameters)), detections_file: uploaded.id };
      const created = await api.createTask({ operation: "render", input: originalId, parameters });
      saveState.textContent = `Re-render submitted as ${created.id}.`;
      window.location.hash = `#/tasks/${created.id}`;
    } catch (error) {
      saveState.textContent = "";
      errors.show(error, "The re-render could not be submitted.");
    } finally {
      saveButton.disabled = false;
    }
  });
  const exportButton = el(
    "button",
    {
      type: "button",
      "data-testid": "export-json",
      onclick: () => {
        const blob = new Blob([JSON.stringify(editor.document(), null, 1)], { type: "application/json" });
        const link = el("a", { href: URL.createObjectURL(blob), download: `${task.id}-corrected.json` });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      },
    },
    "Download corrected detections",
  );
  const actions = el("div", { class: "toolbar save-bar" }, saveButton, exportButton, saveState);
  const wrapper = el("div", { class: "result-editor", "data-testid": isVideo ? "video-editor" : "photo-editor" });
  wrapper.append(actions, editor.node);
  wrapper.editor = editor;
  return wrapper;
}

/**
 * Shows task `taskId` in `root`: its status while it runs, then its result, editor and downloads.
 * Returns at once with a function that stops following the task (the loading goes on in the background).
 */
export function showResult(root, api, taskId) {
  if (current) current.dispose();
  const view = new View(taskId);
  current = view;
  const errors = errorBox();
  const statusHolder = el("div");
  const body = el("div", { class: "result-body" });
  const page = el(
    "div",
    { class: "result-view", "data-testid": "result-view" },
    el("div", { class: "result-head" }, el("h1", { text: `Task ${taskId}` }), el("a", { href: "#/tasks", class: "back" }, "← All tasks")),
    statusHolder,
    errors.node,
    body,
  );
  root.replaceChildren(page);
  load(api, view, taskId, { errors, statusHolder, body });
  return () => view.dispose();
}

async function load(api, view, taskId, { errors, statusHolder, body }) {
  let task;
  try {
    task = await follow(api, view, taskId, statusHolder);
  } catch (error) {
    errors.show(error, `Could not load task ${taskId}.`);
    return;
  }
  if (view.disposed) return;
  const about = summary(task);
  body.append(about.node);
  if (task.status === "failed") {
    errors.show(
      new Error([task.error?.title, task.error?.detail].filter(Boolean).join(": ") || "The task failed."),
      "This task failed.",
    );
    return;
  }
  if (task.status === "cancelled") {
    body.append(el("p", { text: "This task was cancelled." }));
    return;
  }
  const loading = el("p", { class: "hint", text: "Loading the media…", "data-testid": "result-loading" });
  body.append(loading);
  try {
    const editor = await editorFor(api, view, task, errors);
    loading.replaceWith(editor);
    if (editor.dataset.testid === "video-editor") about.showVideo();
  } catch (error) {
    loading.remove();
    errors.show(error, "Could not load the result.");
  }
  body.append(downloads(api, task, errors));
  body.append(await annotationsPanel(api, task, () => view.disposed));
}
