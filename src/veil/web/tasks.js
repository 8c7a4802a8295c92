// The task list: filter by status, sort, search; live progress from GET /v1/tasks/events; cancel; select
// completed tasks and download them as one zip, or export their detections as one dataset.

import { datasetMenu } from "./annotations.js";
import { describeError } from "./api.js";
import { el, formatDate, plural } from "./dom.js";

const STATUSES = ["queued", "started", "completed", "failed", "cancelled"];
const SORTS = [
  ["-created_at", "Newest first"],
  ["created_at", "Oldest first"],
  ["-updated_at", "Recently updated"],
  ["status", "Status"],
  ["-progress", "Progress"],
];
const PAGE_SIZE = 50;
const ACTIVE = new Set(["queued", "started"]);

function statusText(task) {
  if (task.status === "started") return `started, ${Math.round(task.progress * 100)} %`;
  return task.status;
}

/** Shows the task list in `root`; returns a function that stops its live updates. */
export function showTasks(root, api) {
  const controller = new AbortController();
  const state = { page: 1, selected: new Set(), tasks: new Map() };

  const search = el("input", { type: "search", id: "task-search", placeholder: "id, operation or status" });
  const status = el("select", { id: "task-status" }, el("option", { value: "" }, "Any status"),
    ...STATUSES.map((name) => el("option", { value: name }, name)));
  const sort = el("select", { id: "task-sort" }, ...SORTS.map(([value, text]) => el("option", { value }, text)));
  const zip = el("button", { type: "button", id: "download-zip", disabled: "" }, "Download selected as zip");
  const message = el("p", { class: "error", role: "alert", id: "tasks-error", hidden: "" });
  const live = el("p", { class: "live", id: "live-state", role: "status" }, "Connecting to live updates…");
  const body = el("tbody");
  const count = el("p", { id: "task-count" });
  const previous = el("button", { type: "button", id: "page-previous" }, "Previous page");
  const next = el("button", { type: "button", id: "page-next" }, "Next page");

  root.replaceChildren(
    el("div", { class: "title-row" }, el("h1", {}, "Tasks"), el("a", { href: "#/upload", class: "button" },
      "Upload files")),
    el("form", { class: "toolbar", role: "search", onsubmit: (event) => { event.preventDefault(); reload(1); } },
      el("label", { for: "task-search" }, "Search"), search,
      el("label", { for: "task-status" }, "Status"), status,
      el("label", { for: "task-sort" }, "Sort"), sort,
      el("button", { type: "submit" }, "Apply"), zip),
    datasetMenu(api, { selected: () => [...state.selected], isGone: () => controller.signal.aborted }),
    message, live,
    el("div", { class: "table-wrap" }, el("table", { class: "tasks", id: "task-table" },
      el("caption", { class: "visually-hidden" }, "Your tasks"),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Select")),
        el("th", { scope: "col" }, "Task"), el("th", { scope: "col" }, "Operation"),
        el("th", { scope: "col" }, "Input"), el("th", { scope: "col" }, "Status"),
        el("th", { scope: "col" }, "Progress"), el("th", { scope: "col" }, "Created"),
        el("th", { scope: "col" }, "Actions"))),
      body)),
    el("div", { class: "pager" }, previous, count, next),
    el("p", { class: "hint", id: "blurit-note" },
      "Tasks made through the BlurIt-style API (", el("code", {}, "POST /api/task/file"), " and ",
      el("code", {}, "/api/task/directory"), ") are not listed here: they read and write files on the server, "
      + "under the key's file root, and are followed with ", el("code", {}, "GET /api/task/{id}"), "."),
  );

  function showError(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function updateZip() {
    zip.disabled = state.selected.size === 0;
    zip.textContent = state.selected.size ? `Download ${state.selected.size} as zip` : "Download selected as zip";
  }

  function row(task) {
    const tr = el("tr", { "data-task-id": task.id, "data-status": task.status });
    const box = el("input", { type: "checkbox", "aria-label": `Select ${task.id}` });
    box.checked = state.selected.has(task.id);
    box.disabled = task.status !== "completed";
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(task.id);
      else state.selected.delete(task.id);
      updateZip();
    });
    const progress = el("progress", { max: "1", value: String(task.progress ?? 0),
      "aria-label": `Progress of ${task.id}` });
    const actions = el("td", { class: "actions" });
    if (ACTIVE.has(task.status)) {
      actions.append(el("button", { type: "button", class: "cancel", onclick: () => cancel(task.id) }, "Cancel"));
    }
    const error = task.error ? el("div", { class: "error small" }, `${task.error.title}: ${task.error.detail}`) : null;
    tr.append(
      el("td", { class: "select" }, box),
      el("td", { class: "task" }, el("a", { href: `#/tasks/${task.id}` }, task.id)),
      el("td", { class: "operation" }, task.operation),
      inputCell(task),
      el("td", { class: `status status-${task.status}` }, statusText(task), error),
      el("td", { class: "progress" }, progress,
        el("span", { class: "percent" }, ` ${Math.round((task.progress ?? 0) * 100)} %`)),
      el("td", { class: "created" }, formatDate(task.created_at)),
      actions,
    );
    return tr;
  }

  // The input file's name as uploaded; its id (or an older task's, which did not record the name) on hover.
  function inputCell(task) {
    const input = (task.parameters && task.parameters.input) || "";
    return el("td", { class: "input", "data-input": input, title: task.input_name ? input : null },
      task.input_name || input);
  }

  function render() {
    body.replaceChildren(...[...state.tasks.values()].map(row));
    if (!state.tasks.size) {
      body.append(el("tr", {}, el("td", { colspan: "8", class: "empty" }, "No tasks match.")));
    }
  }

  async function reload(page = state.page) {
    state.page = page;
    try {
      const answer = await api.listTasks({
        page, page_size: PAGE_SIZE, sort: sort.value, status: status.value, search: search.value.trim(),
      });
      state.tasks = new Map(answer.results.map((task) => [task.id, task]));
      for (const id of [...state.selected]) if (!state.tasks.has(id)) state.selected.delete(id);
      const pages = Math.max(1, Math.ceil(answer.count / PAGE_SIZE));
      count.textContent = `${plural(answer.count, "task")}, page ${page} of ${pages}`;
      previous.disabled = page <= 1;
      next.disabled = page >= pages;
      showError("");
      render();
      updateZip();
    } catch (error) {
      showError(`Could not load the tasks: ${describeError(error)}`);
    }
  }

  async function cancel(id) {
    try {
      const task = await api.cancelTask(id);
      onTask(task);
    } catch (error) {
      showError(`Could not cancel ${id}: ${describeError(error)}`);
    }
  }

  let reloadTimer = null;
  function onTask(task) {
    if (state.tasks.has(task.id)) {
      const matches = !status.value || status.value === task.status;
      state.tasks.set(task.id, task);
      if (!matches) state.selected.delete(task.id);
      const old = body.querySelector(`tr[data-task-id="${task.id}"]`);
      if (old) old.replaceWith(row(task));
      updateZip();
    } else if (!reloadTimer) {
      reloadTimer = setTimeout(() => { reloadTimer = null; reload(); }, 300);
    }
  }

  async function follow() {
    let failures = 0;
    while (!controller.signal.aborted) {
      try {
        await api.taskEvents(onTask, controller.signal, () => {
          failures = 0;
          live.textContent = "Live updates on.";
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        failures += 1;
        live.textContent = `Live updates interrupted (${describeError(error)}); reconnecting…`;
      }
      if (controller.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** failures, 15_000)));
      if (failures) reload();
    }
  }

  status.addEventListener("change", () => reload(1));
  sort.addEventListener("change", () => reload(1));
  previous.addEventListener("click", () => reload(state.page - 1));
  next.addEventListener("click", () => reload(state.page + 1));
  zip.addEventListener("click", async () => {
    zip.disabled = true;
    try {
      await api.downloadArchive([...state.selected]);
      showError("");
    } catch (error) {
      showError(`Could not download the zip: ${describeError(error)}`);
    } finally {
      updateZip();
    }
  });

  reload(1);
  follow();
  return () => controller.abort();
}
