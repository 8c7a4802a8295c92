// Box editing for the result view: a layer of boxes over a photo or a video frame, and the photo editor.
//
// Boxes are `[x1, y1, x2, y2]` in pixels of the media (the size in the report's `media`), drawn as absolutely
// positioned elements in percent of the stage, so they follow the displayed size. Mouse: drag on the empty
// image to add a box, drag a box to move it, drag a corner handle to resize it. Keyboard: Tab to a box,
// arrows move it (Shift: 10 px), Alt+arrows resize it, Delete removes it, as it does on a box chosen in the list.

import { plural } from "./dom.js";

export const LABELS = ["face", "plate"];
const MIN_SIZE = 4;

/** True for the keys that remove the chosen box or track (Delete, and Backspace as on a Mac). */
export function isDeleteKey(event) {
  return event.key === "Delete" || event.key === "Backspace";
}

/** The widest a stage of `width` x `height` media may be so that its height fits the window below the
 * `reservedRem` of page around it (title, toolbars, timeline): it fills the window, never more. */
export function fitWindow(width, height, reservedRem) {
  return `calc((100vh - ${reservedRem}rem) * ${width / height})`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clampBox(box, width, height) {
  let [x1, y1, x2, y2] = box.map(Number);
  if (x2 < x1) [x1, x2] = [x2, x1];
  if (y2 < y1) [y1, y2] = [y2, y1];
  x1 = Math.min(Math.max(x1, 0), width);
  x2 = Math.min(Math.max(x2, 0), width);
  y1 = Math.min(Math.max(y1, 0), height);
  y2 = Math.min(Math.max(y2, 0), height);
  return [x1, y1, x2, y2].map((v) => Math.round(v * 10) / 10);
}

export function boxIsValid(box) {
  return box[2] - box[0] >= 1 && box[3] - box[1] >= 1;
}

/**
 * A layer of editable boxes over a stage element (which holds the image or video).
 *
 * options: {stage, width, height, onSelect(key), onChange(key, box), onCreate(box), onDelete(key)}.
 * `render(items, selectedKey)` draws items [{key, box, label, title}].
 */
export class BoxLayer {
  constructor({ stage, width, height, onSelect, onChange, onCreate, onDelete }) {
    this.stage = stage;
    this.width = width;
    this.height = height;
    this.onSelect = onSelect;
    this.onChange = onChange;
    this.onCreate = onCreate;
    this.onDelete = onDelete;
    this.layer = el("div", { class: "box-layer", "data-testid": "box-layer" });
    this.draft = null;
    stage.append(this.layer);
    this.layer.addEventListener("pointerdown", (event) => this._startCreate(event));
  }

  toMedia(event) {
    const rect = this.layer.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * this.width;
    const y = ((event.clientY - rect.top) / rect.height) * this.height;
    return [Math.min(Math.max(x, 0), this.width), Math.min(Math.max(y, 0), this.height)];
  }

  place(node, box) {
    const [x1, y1, x2, y2] = box;
    node.style.left = `${(x1 / this.width) * 100}%`;
    node.style.top = `${(y1 / this.height) * 100}%`;
    node.style.width = `${((x2 - x1) / this.width) * 100}%`;
    node.style.height = `${((y2 - y1) / this.height) * 100}%`;
  }

  render(items, selectedKey) {
    const focusedKey = document.activeElement?.dataset?.key;
    this.layer.replaceChildren();
    for (const item of items) {
      const selected = item.key === selectedKey;
      const node = el("div", {
        class: `box box-${item.label}${selected ? " selected" : ""}${item.interpolated ? " interpolated" : ""}`,
        tabindex: 0,
        role: "button",
        "aria-pressed": selected ? "true" : "false",
        "aria-label": `${item.title || item.label} at ${item.box.map(Math.round).join(", ")}`,
        "data-key": item.key,
        "data-testid": "box",
      });
      node.append(el("span", { class: "box-tag", text: item.title || item.label }));
      this.place(node, item.box);
      node.addEventListener("pointerdown", (event) => this._startDrag(event, item, "move"));
      node.addEventListener("keydown", (event) => this._key(event, item));
      node.addEventListener("focus", () => {
        if (item.key !== this._selected) this.onSelect(item.key);
      });
      if (selected) {
        for (const corner of ["nw", "ne", "sw", "se"]) {
          const handle = el("span", { class: `handle handle-${corner}`, "data-corner": corner });
          handle.addEventListener("pointerdown", (event) => this._startDrag(event, item, corner));
          node.append(handle);
        }
      }
      this.layer.append(node);
    }
    this._selected = selectedKey;
    if (focusedKey !== undefined) this.layer.querySelector(`[data-key="${CSS.escape(focusedKey)}"]`)?.focus();
  }

  _key(event, item) {
    const step = event.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (isDeleteKey(event)) {
      event.preventDefault();
      this.onDelete(item.key);
      return;
    }
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const [dx, dy] = move;
    let [x1, y1, x2, y2] = item.box;
    if (event.altKey) {
      x2 = Math.max(x1 + MIN_SIZE, x2 + dx);
      y2 = Math.max(y1 + MIN_SIZE, y2 + dy);
    } else {
      const w = x2 - x1;
      const h = y2 - y1;
      x1 = Math.min(Math.max(x1 + dx, 0), this.width - w);
      y1 = Math.min(Math.max(y1 + dy, 0), this.height - h);
      x2 = x1 + w;
      y2 = y1 + h;
    }
    this.onChange(item.key, clampBox([x1, y1, x2, y2], this.width, this.height));
  }

  _startDrag(event, item, mode) {
    if (event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();
    if (item.key !== this._selected) this.onSelect(item.key);
    const start = this.toMedia(event);
    const origin = item.box.slice();
    const target = event.currentTarget;
    target.setPointerCapture?.(event.pointerId);
    let latest = origin;
    const move = (ev) => {
      const [px, py] = this.toMedia(ev);
      const dx = px - start[0];
      const dy = py - start[1];
      let [x1, y1, x2, y2] = origin;
      if (mode === "move") {
        const w = x2 - x1;
        const h = y2 - y1;
        x1 = Math.min(Math.max(x1 + dx, 0), this.width - w);
        y1 = Math.min(Math.max(y1 + dy, 0), this.height - h);
        x2 = x1 + w;
        y2 = y1 + h;
      } else {
        if (mode.includes("w")) x1 = Math.min(x1 + dx, x2 - MIN_SIZE);
        if (mode.includes("e")) x2 = Math.max(x2 + dx, x1 + MIN_SIZE);
        if (mode.includes("n")) y1 = Math.min(y1 + dy, y2 - MIN_SIZE);
        if (mode.includes("s")) y2 = Math.max(y2 + dy, y1 + MIN_SIZE);
      }
      latest = clampBox([x1, y1, x2, y2], this.width, this.height);
      const node = this.layer.querySelector(`[data-key="${CSS.escape(String(item.key))}"]`);
      if (node) this.place(node, latest);
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", up);
      if (latest.some((v, i) => v !== origin[i])) this.onChange(item.key, latest);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", up);
  }

  _startCreate(event) {
    if (event.button !== 0 || event.target !== this.layer) return;
    event.preventDefault();
    const start = this.toMedia(event);
    const draft = el("div", { class: "box box-draft" });
    this.layer.append(draft);
    let box = [start[0], start[1], start[0], start[1]];
    const move = (ev) => {
      const [px, py] = this.toMedia(ev);
      box = clampBox([start[0], start[1], px, py], this.width, this.height);
      this.place(draft, box);
    };
    const up = (ev) => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", up);
      move(ev);
      draft.remove();
      if (box[2] - box[0] >= MIN_SIZE && box[3] - box[1] >= MIN_SIZE) this.onCreate(box);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", up);
  }
}

/** Inputs for the selected box: label, x1, y1, x2, y2 and a delete button; keyboard-friendly editing. */
export function boxForm({ box, label, onLabel, onBox, onDelete, deleteText = "Delete box" }) {
  const form = el("div", { class: "box-form", role: "group", "aria-label": "Selected box" });
  const select = el(
    "select",
    { "aria-label": "Label", "data-testid": "box-label", onchange: () => onLabel(select.value) },
    LABELS.map((name) => el("option", { value: name, selected: name === label }, name)),
  );
  form.append(el("label", {}, "Label ", select));
  ["x1", "y1", "x2", "y2"].forEach((name, i) => {
    const input = el("input", {
      type: "number",
      step: "1",
      value: Math.round(box[i]),
      "aria-label": name,
      "data-testid": `box-${name}`,
      onchange: () => {
        const next = box.slice();
        next[i] = Number(input.value);
        onBox(next);
      },
    });
    form.append(el("label", {}, `${name} `, input));
  });
  form.append(el("button", { type: "button", class: "danger", "data-testid": "delete-box", onclick: onDelete }, deleteText));
  return form;
}

/** The before/after comparison: the output over the original, clipped at a draggable, keyboard divider. */
export function compareView(originalUrl, outputUrl, width, height) {
  const stage = el("div", { class: "compare", "data-testid": "compare" });
  stage.style.aspectRatio = `${width} / ${height}`;
  stage.style.maxWidth = fitWindow(width, height, 8);
  const before = el("img", { src: originalUrl, alt: "Original (before)", class: "compare-before", draggable: "false" });
  const after = el("img", { src: outputUrl, alt: "Anonymized (after)", class: "compare-after", draggable: "false" });
  const divider = el("div", {
    class: "compare-divider",
    role: "slider",
    tabindex: 0,
    "aria-label": "Before/after divider",
    "aria-valuemin": 0,
    "aria-valuemax": 100,
    "data-testid": "compare-divider",
  });
  stage.append(before, after, divider, el("span", { class: "compare-tag left", text: "Before" }), el("span", { class: "compare-tag right", text: "After" }));
  let percent = 50;
  const set = (value) => {
    percent = Math.min(Math.max(value, 0), 100);
    after.style.clipPath = `inset(0 0 0 ${percent}%)`;
    divider.style.left = `${percent}%`;
    divider.setAttribute("aria-valuenow", String(Math.round(percent)));
    divider.setAttribute("aria-valuetext", `${Math.round(percent)}% original`);
  };
  set(50);
  const fromEvent = (event) => {
    const rect = stage.getBoundingClientRect();
    set(((event.clientX - rect.left) / rect.width) * 100);
  };
  stage.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    divider.focus();
    fromEvent(event);
    const up = () => {
      window.removeEventListener("pointermove", fromEvent);
      window.removeEventListener("pointerup", up);
    };
    window.addEventListener("pointermove", fromEvent);
    window.addEventListener("pointerup", up);
  });
  divider.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? 10 : 2;
    const keys = { ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step };
    if (event.key in keys) set(percent + keys[event.key]);
    else if (event.key === "Home") set(0);
    else if (event.key === "End") set(100);
    else return;
    event.preventDefault();
  });
  return stage;
}

/**
 * The photo editor: before/after comparison and the boxes over the original, editable.
 *
 * Returns {node, document()} where document() gives the corrected veil.detections/1 document.
 */
export function photoEditor({ originalUrl, outputUrl, report }) {
  const { width, height } = report.media;
  const frame = report.frames[0];
  let nextKey = 1;
  let boxes = (frame ? frame.detections : []).map((d) => ({ ...d, key: nextKey++ }));
  let selected = null;
  let newLabel = "face";

  const node = el("div", { class: "photo-editor" });
  const comparePanel = outputUrl && el(
    "section",
    { class: "panel", "aria-labelledby": "compare-title" },
    el("h3", { id: "compare-title", text: "Before and after" }),
    el("p", { class: "hint", text: "Drag the divider, or focus it and use the arrow keys." }),
    compareView(originalUrl, outputUrl, width, height),
  );
  const stage = el("div", { class: "edit-stage", "data-testid": "edit-stage", tabindex: -1, "aria-label": "Photo with boxes" });
  stage.style.aspectRatio = `${width} / ${height}`;
  stage.style.maxWidth = fitWindow(width, height, 10);
  stage.append(el("img", { src: originalUrl, alt: "Original with the boxes to obscure", draggable: "false" }));
  const sidebar = el("div", { class: "box-sidebar" });
  const labelPicker = el(
    "select",
    { "aria-label": "Label of new boxes", "data-testid": "new-label", onchange: () => (newLabel = labelPicker.value) },
    LABELS.map((name) => el("option", { value: name }, name)),
  );
  const editPanel = el(
    "section",
    { class: "panel", "aria-labelledby": "edit-title" },
    el("h3", { id: "edit-title", text: "Boxes to obscure" }),
    el("p", {
      class: "hint",
      text: "Drag on the photo to add a box; drag a box to move it, its corners to resize. Keyboard: Tab to a box, arrows move (Shift: 10 px), Alt+arrows resize, Delete removes it (also from the list).",
    }),
    el(
      "div",
      { class: "toolbar" },
      el("label", {}, "New boxes are ", labelPicker),
      el("button", { type: "button", "data-testid": "add-box", onclick: () => addBox([width * 0.4, height * 0.4, width * 0.6, height * 0.6]) }, "Add a box"),
    ),
    el("div", { class: "edit-layout" }, stage, sidebar),
  );
  node.append(...[comparePanel, editPanel].filter(Boolean));

  const layer = new BoxLayer({
    stage,
    width,
    height,
    onSelect: (key) => {
      selected = key;
      refresh();
    },
    onChange: (key, box) => {
      boxes = boxes.map((b) => (b.key === key ? { ...b, box } : b));
      refresh();
    },
    onCreate: (box) => addBox(box),
    onDelete: (key) => removeBox(key),
  });

  function addBox(box) {
    const item = { label: newLabel, score: 1, box: clampBox(box, width, height), track_id: null, source: "detected", key: nextKey++ };
    boxes = [...boxes, item];
    selected = item.key;
    refresh();
  }

  function removeBox(key) {
    boxes = boxes.filter((b) => b.key !== key);
    if (selected === key) selected = null;
    refresh();
    stage.focus(); // keep the focus near, without selecting (and so exposing to Delete) another box
  }

  function refresh() {
    // The list is drawn anew: a box chosen in it keeps the focus there, so Delete then removes it.
    const listFocus = sidebar.contains(document.activeElement) ? document.activeElement.dataset.listKey : undefined;
    layer.render(
      boxes.map((b, i) => ({ key: b.key, box: b.box, label: b.label, title: `${i + 1} ${b.label}` })),
      selected,
    );
    const list = el(
      "ol",
      { class: "box-list", "data-testid": "box-list" },
      boxes.map((b) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: b.key === selected ? "selected" : "",
              "aria-pressed": b.key === selected ? "true" : "false",
              "data-list-key": b.key,
              onclick: () => {
                selected = b.key;
                refresh();
              },
              onkeydown: (event) => {
                if (!isDeleteKey(event)) return;
                event.preventDefault();
                removeBox(b.key);
              },
            },
            `${b.label} ${b.box.map(Math.round).join(", ")}`,
          ),
        ),
      ),
    );
    const current = boxes.find((b) => b.key === selected);
    sidebar.replaceChildren(
      el("p", { class: "count", text: plural(boxes.length, "box", "boxes") }),
      list,
      current
        ? boxForm({
            box: current.box,
            label: current.label,
            onLabel: (label) => {
              boxes = boxes.map((b) => (b.key === selected ? { ...b, label } : b));
              refresh();
            },
            onBox: (box) => {
              const fixed = clampBox(box, width, height);
              if (boxIsValid(fixed)) boxes = boxes.map((b) => (b.key === selected ? { ...b, box: fixed } : b));
              refresh();
            },
            onDelete: () => removeBox(selected),
          })
        : el("p", { class: "hint", text: "Select a box to change its label or size." }),
    );
    if (listFocus !== undefined) list.querySelector(`[data-list-key="${listFocus}"]`)?.focus();
  }
  refresh();

  return {
    node,
    document() {
      const detections = boxes
        .map(({ key, ...d }) => ({ ...d, box: clampBox(d.box, width, height), track_id: null }))
        .filter((d) => boxIsValid(d.box));
      const frames = detections.length ? [{ index: 0, time: frame ? frame.time : 0, detections }] : [];
      return { schema: report.schema || "veil.detections/1", media: report.media, frames };
    },
  };
}
