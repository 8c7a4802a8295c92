// The video result: a player with the boxes of the current frame drawn over it, a timeline of the tracks, and
// a track editor. A track (track_id) has an extent [start, end] in frames and key frames with a box; the box of
// a frame between two key frames is linearly interpolated, outside them the nearest key frame's box is held.
// Boxes the detector reported are key frames of their track; moving or resizing a box at a frame makes that
// frame a key frame. `document()` gives the full per-frame veil.detections/1 document for a re-render.

import { BoxLayer, LABELS, boxIsValid, clampBox, el, fitWindow, isDeleteKey } from "./editor.js";

const ROW = 16;
const RULER = 14;

/** Presentation time of every frame: the report's times where known, else stepped by 1/fps. */
export function frameTimes(report) {
  const { fps, frame_count: count, duration } = report.media;
  const known = new Map(report.frames.map((f) => [f.index, f.time]));
  const lastIndex = report.frames.length ? report.frames[report.frames.length - 1].index : -1;
  const rate = fps || (count && duration ? count / duration : 25);
  const total = Math.max(count || 0, lastIndex + 1, 1);
  const times = [];
  for (let i = 0; i < total; i += 1) {
    if (known.has(i)) times.push(known.get(i));
    else times.push(i === 0 ? 0 : Math.round((times[i - 1] + 1 / rate) * 1e6) / 1e6);
  }
  return times;
}

/** The frame shown at `seconds`: the latest frame whose time is <= seconds (binary search). */
export function frameAt(times, seconds) {
  let lo = 0;
  let hi = times.length - 1;
  let best = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] <= seconds + 1e-6) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** Tracks from a report: boxes grouped by track_id (a box without one becomes a track of its own). */
export function tracksFromReport(report) {
  const tracks = new Map();
  let nextId = 1 + Math.max(0, ...report.frames.flatMap((f) => f.detections.map((d) => d.track_id ?? 0)));
  for (const frame of report.frames) {
    for (const d of frame.detections) {
      const id = d.track_id ?? nextId++;
      if (!tracks.has(id)) tracks.set(id, { id, label: d.label, keys: new Map(), start: frame.index, end: frame.index });
      const track = tracks.get(id);
      track.keys.set(frame.index, { box: d.box.slice(), score: d.score, source: d.source });
      track.start = Math.min(track.start, frame.index);
      track.end = Math.max(track.end, frame.index);
    }
  }
  return [...tracks.values()];
}

/** The box of `track` at `frame` given its key frames around it (`prev` <= frame <= `next`, either null). */
function between(track, frame, prev, next) {
  if (track.keys.has(frame)) return { ...track.keys.get(frame), key: true };
  if (prev === null || next === null) {
    const k = track.keys.get(prev ?? next);
    return { box: k.box.slice(), score: k.score, source: "tracked", key: false };
  }
  const a = track.keys.get(prev);
  const b = track.keys.get(next);
  const t = (frame - prev) / (next - prev);
  const box = a.box.map((v, i) => v + (b.box[i] - v) * t);
  return { box, score: Math.min(a.score, b.score), source: "tracked", key: false };
}

/** The box of `track` at `frame`: {box, score, source, key} or null outside its extent. */
export function trackBox(track, frame) {
  if (frame < track.start || frame > track.end || track.keys.size === 0) return null;
  let prev = null;
  let next = null;
  for (const index of track.keys.keys()) {
    if (index <= frame && (prev === null || index > prev)) prev = index;
    if (index >= frame && (next === null || index < next)) next = index;
  }
  return between(track, frame, prev, next);
}

/** The per-frame document: every frame that has a box, listing every box in it (one pass per track). */
export function buildDocument(report, tracks, times) {
  const { width, height } = report.media;
  const byFrame = new Map();
  for (const track of tracks) {
    const keys = [...track.keys.keys()].sort((a, b) => a - b);
    if (!keys.length) continue;
    let k = 0;
    for (let index = Math.max(track.start, 0); index <= Math.min(track.end, times.length - 1); index += 1) {
      while (k < keys.length - 1 && keys[k + 1] <= index) k += 1;
      const prev = keys[k] <= index ? keys[k] : null;
      const next = keys[k] >= index ? keys[k] : k + 1 < keys.length ? keys[k + 1] : null;
      const at = between(track, index, prev, next);
      const box = clampBox(at.box, width, height);
      if (!boxIsValid(box)) continue;
      if (!byFrame.has(index)) byFrame.set(index, []);
      byFrame.get(index).push({ label: track.label, score: Math.round(at.score * 1e4) / 1e4, box, track_id: track.id, source: at.source });
    }
  }
  const frames = [...byFrame.keys()]
    .sort((a, b) => a - b)
    .map((index) => ({ index, time: times[index], detections: byFrame.get(index) }));
  return { schema: report.schema || "veil.detections/1", media: report.media, frames };
}

export function videoEditor({ originalUrl, outputUrl, report }) {
  const { width, height } = report.media;
  const times = frameTimes(report);
  const last = times.length - 1;
  const tracks = tracksFromReport(report);
  let selectedId = tracks.length ? tracks[0].id : null;
  let frame = 0;
  let newLabel = "face";

  const video = el("video", { src: originalUrl, preload: "auto", playsinline: true, muted: true, "data-testid": "video" });
  video.muted = true;
  const stage = el("div", { class: "video-stage", "data-testid": "video-stage", tabindex: -1, "aria-label": "Video frame with boxes" }, video);
  stage.style.aspectRatio = `${width} / ${height}`;
  const frameLabel = el("span", { class: "frame-label", "data-testid": "frame-label", "aria-live": "off" });
  const playButton = el("button", { type: "button", "data-testid": "play", onclick: () => (video.paused ? video.play() : video.pause()) }, "Play");
  const sourcePicker = el(
    "select",
    { "aria-label": "Video shown", "data-testid": "video-source", onchange: () => switchSource() },
    el("option", { value: "original" }, "Original"),
    outputUrl ? el("option", { value: "output" }, "Anonymized output") : null,
  );
  const controls = el(
    "div",
    { class: "toolbar player-controls" },
    playButton,
    el("button", { type: "button", "aria-label": "Previous frame", "data-testid": "prev-frame", onclick: () => seek(frame - 1) }, "◀ Frame"),
    el("button", { type: "button", "aria-label": "Next frame", "data-testid": "next-frame", onclick: () => seek(frame + 1) }, "Frame ▶"),
    frameLabel,
    el("label", {}, "Show ", sourcePicker),
  );
  const timeline = el("canvas", {
    class: "timeline",
    tabindex: 0,
    role: "slider",
    "aria-label": "Timeline: Left/Right step frames (Shift: 10), Up/Down pick a track",
    "aria-valuemin": 0,
    "aria-valuemax": last,
    "data-testid": "timeline",
  });
  const trackPanel = el("div", { class: "track-panel", "data-testid": "track-panel" });
  const videoMain = el("div", { class: "video-main" }, stage, controls, timeline);
  stage.style.maxWidth = fitWindow(width, height, 16); // controls and timeline below it stay in sight
  videoMain.style.maxWidth = `max(${fitWindow(width, height, 16)}, 30rem)`; // the timeline stays wide enough
  const node = el(
    "section",
    { class: "panel video-editor", "aria-labelledby": "video-title" },
    el("h3", { id: "video-title", text: "Video and tracks" }),
    el("p", {
      class: "hint",
      text: "Boxes of the current frame are drawn over the video. Drag on the frame to add a track there; drag a box or its corners to set the track's box at this frame (a key frame; frames between key frames are interpolated). Keyboard: arrows move the focused box, Alt+arrows resize, Delete removes its track (also on the timeline or the track list); on the timeline, Left/Right step frames.",
    }),
    el("div", { class: "video-layout" }, videoMain, trackPanel),
  );

  const layer = new BoxLayer({
    stage,
    width,
    height,
    onSelect: (id) => {
      selectedId = id;
      refresh();
    },
    onChange: (id, box) => setKey(id, box),
    onCreate: (box) => addTrack(box),
    onDelete: (id) => deleteTrack(id),
  });

  function track(id = selectedId) {
    return tracks.find((t) => t.id === id) || null;
  }

  function setKey(id, box) {
    const t = track(id);
    if (!t) return;
    const previous = t.keys.get(frame);
    t.keys.set(frame, { box: clampBox(box, width, height), score: previous ? previous.score : 1, source: "detected" });
    t.start = Math.min(t.start, frame);
    t.end = Math.max(t.end, frame);
    selectedId = id;
    refresh();
  }

  function addTrack(box) {
    const id = 1 + Math.max(0, ...tracks.map((t) => t.id));
    const fixed = clampBox(box, width, height);
    tracks.push({ id, label: newLabel, keys: new Map([[frame, { box: fixed, score: 1, source: "detected" }]]), start: frame, end: frame });
    selectedId = id;
    refresh();
  }

  function deleteTrack(id) {
    const i = tracks.findIndex((t) => t.id === id);
    if (i < 0) return;
    tracks.splice(i, 1);
    selectedId = null;
    refresh();
    stage.focus();
  }

  function seek(target) {
    frame = Math.min(Math.max(Math.round(target), 0), last);
    const next = frame < last ? times[frame + 1] : times[frame] + 0.04;
    video.pause();
    video.currentTime = times[frame] + Math.min(0.25 * (next - times[frame]), 0.01);
    refresh();
  }

  function switchSource() {
    const at = video.currentTime;
    video.src = sourcePicker.value === "output" ? outputUrl : originalUrl;
    video.addEventListener("loadedmetadata", () => (video.currentTime = at), { once: true });
  }

  function onTime() {
    const now = frameAt(times, video.currentTime);
    if (now !== frame && !video.seeking) {
      frame = now;
      refresh();
    }
  }
  video.addEventListener("timeupdate", onTime);
  video.addEventListener("play", () => (playButton.textContent = "Pause"));
  video.addEventListener("pause", () => (playButton.textContent = "Play"));
  if (video.requestVideoFrameCallback) {
    const tick = (_now, meta) => {
      if (!video.paused) {
        const now = frameAt(times, meta.mediaTime);
        if (now !== frame) {
          frame = now;
          refresh();
        }
      }
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  function drawTimeline() {
    const cssWidth = timeline.clientWidth || 600;
    const cssHeight = RULER + Math.max(tracks.length, 1) * ROW + 4;
    const ratio = window.devicePixelRatio || 1;
    timeline.style.height = `${cssHeight}px`;
    timeline.width = Math.round(cssWidth * ratio);
    timeline.height = Math.round(cssHeight * ratio);
    const ctx = timeline.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    const x = (i) => (i / Math.max(last + 1, 1)) * cssWidth;
    const step = x(1);
    ctx.fillStyle = "#e8eaef";
    ctx.fillRect(0, 0, cssWidth, RULER);
    ctx.fillStyle = "#333";
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillText(`0`, 2, 10);
    ctx.textAlign = "right";
    ctx.fillText(`${last}`, cssWidth - 2, 10);
    ctx.textAlign = "left";
    tracks.forEach((t, row) => {
      const y = RULER + row * ROW;
      if (t.id === selectedId) {
        ctx.fillStyle = "#fff3c4";
        ctx.fillRect(0, y, cssWidth, ROW);
      }
      ctx.fillStyle = t.label === "plate" ? "#2b7bd6" : "#d6542b";
      ctx.globalAlpha = 0.45;
      ctx.fillRect(x(t.start), y + 3, Math.max(x(t.end + 1) - x(t.start), 2), ROW - 6);
      ctx.globalAlpha = 1;
      for (const index of t.keys.keys()) {
        if (index < t.start || index > t.end) continue;
        ctx.fillRect(x(index), y + 3, Math.max(step, 1.5), ROW - 6);
      }
      ctx.fillStyle = "#222";
      ctx.fillText(`#${t.id}`, 2, y + ROW - 4);
    });
    ctx.fillStyle = "#c00";
    ctx.fillRect(x(frame) + step / 2 - 1, 0, 2, cssHeight);
    timeline.setAttribute("aria-valuenow", String(frame));
    timeline.setAttribute("aria-valuetext", `frame ${frame}`);
  }

  function pickFromTimeline(event) {
    const rect = timeline.getBoundingClientRect();
    const index = Math.floor(((event.clientX - rect.left) / rect.width) * (last + 1));
    const row = Math.floor((event.clientY - rect.top - RULER) / ROW);
    if (row >= 0 && row < tracks.length) selectedId = tracks[row].id;
    seek(index);
  }
  timeline.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    pickFromTimeline(event);
    const move = (ev) => seek(Math.floor(((ev.clientX - timeline.getBoundingClientRect().left) / timeline.clientWidth) * (last + 1)));
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  });
  timeline.addEventListener("keydown", (event) => {
    const big = event.shiftKey ? 10 : 1;
    const row = tracks.findIndex((t) => t.id === selectedId);
    if (event.key === "ArrowLeft") seek(frame - big);
    else if (event.key === "ArrowRight") seek(frame + big);
    else if (event.key === "Home") seek(0);
    else if (event.key === "End") seek(last);
    else if (event.key === "ArrowUp" && tracks.length) {
      selectedId = tracks[Math.max(row - 1, 0)].id;
      refresh();
    } else if (event.key === "ArrowDown" && tracks.length) {
      selectedId = tracks[Math.min(row + 1, tracks.length - 1)].id;
      refresh();
    } else if (event.key === " ") {
      if (video.paused) video.play();
      else video.pause();
    } else if (isDeleteKey(event) && selectedId !== null) {
      deleteTrack(selectedId);
    } else return;
    event.preventDefault();
  });
  new ResizeObserver(() => drawTimeline()).observe(timeline);

  function numberInput(labelText, value, testid, onchange) {
    const input = el("input", { type: "number", min: 0, max: last, step: 1, value, "data-testid": testid });
    input.addEventListener("change", () => onchange(Math.min(Math.max(Math.round(Number(input.value)), 0), last)));
    return el("label", {}, `${labelText} `, input);
  }

  function renderPanel() {
    const focused = trackPanel.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
    const t = track();
    const picker = el(
      "select",
      {
        "aria-label": "Track",
        "data-testid": "track-select",
        onchange: () => {
          selectedId = Number(picker.value);
          const chosen = track();
          if (chosen && (frame < chosen.start || frame > chosen.end)) seek(chosen.start);
          else refresh();
        },
        onkeydown: (event) => {
          if (!isDeleteKey(event) || selectedId === null) return;
          event.preventDefault();
          deleteTrack(selectedId);
        },
      },
      selectedId === null ? el("option", { value: "", selected: true, disabled: true }, "Pick a track") : null,
      tracks.map((tr) => el("option", { value: tr.id, selected: tr.id === selectedId }, `#${tr.id} ${tr.label} (${tr.start}–${tr.end})`)),
    );
    const labelPicker = el(
      "select",
      { "aria-label": "Label of new tracks", "data-testid": "new-label", onchange: () => (newLabel = labelPicker.value) },
      LABELS.map((name) => el("option", { value: name, selected: name === newLabel }, name)),
    );
    const children = [
      el("h4", { text: `Tracks (${tracks.length})` }),
      el(
        "div",
        { class: "toolbar" },
        el("label", {}, "New tracks are ", labelPicker),
        el(
          "button",
          { type: "button", "data-testid": "add-track", onclick: () => addTrack([width * 0.4, height * 0.4, width * 0.6, height * 0.6]) },
          "New track at this frame",
        ),
      ),
    ];
    if (tracks.length) children.push(el("label", {}, "Track ", picker));
    if (t) {
      const at = trackBox(t, frame);
      const trackLabel = el(
        "select",
        {
          "aria-label": "Track label",
          "data-testid": "track-label",
          onchange: () => {
            t.label = trackLabel.value;
            refresh();
          },
        },
        LABELS.map((name) => el("option", { value: name, selected: name === t.label }, name)),
      );
      const extent = el(
        "fieldset",
        { class: "extent" },
        el("legend", { text: "Extent (frames)" }),
        numberInput("First", t.start, "track-start", (v) => {
          t.start = Math.min(v, t.end);
          refresh();
        }),
        numberInput("Last", t.end, "track-end", (v) => {
          t.end = Math.max(v, t.start);
          refresh();
        }),
        el("button", { type: "button", "data-testid": "extend-here", onclick: () => extendTo(t) }, "Extend to this frame"),
      );
      const state = at ? (at.key ? "key frame" : "interpolated") : "not in this frame";
      children.push(
        el("label", {}, "Label ", trackLabel),
        extent,
        el("p", { class: "hint", "data-testid": "track-state", text: `At frame ${frame}: ${state}.` }),
      );
      if (at) {
        ["x1", "y1", "x2", "y2"].forEach((name, i) => {
          const input = el("input", { type: "number", step: 1, value: Math.round(at.box[i]), "aria-label": name, "data-testid": `box-${name}` });
          input.addEventListener("change", () => {
            const next = at.box.slice();
            next[i] = Number(input.value);
            const fixed = clampBox(next, width, height);
            if (boxIsValid(fixed)) setKey(t.id, fixed);
          });
          children.push(el("label", { class: "coord" }, `${name} `, input));
        });
      }
      const buttons = el("div", { class: "toolbar" });
      if (at && at.key && t.keys.size > 1) {
        buttons.append(
          el(
            "button",
            {
              type: "button",
              "data-testid": "remove-key",
              onclick: () => {
                t.keys.delete(frame);
                refresh();
              },
            },
            "Remove this key frame",
          ),
        );
      }
      if (t.keys.size > 2) {
        buttons.append(
          el(
            "button",
            {
              type: "button",
              "data-testid": "thin-keys",
              title: "Keep only the first and last key frames and interpolate between them",
              onclick: () => {
                const kept = [...t.keys.keys()].filter((k) => k >= t.start && k <= t.end).sort((a, b) => a - b);
                if (kept.length < 2) return;
                for (const k of [...t.keys.keys()]) if (k !== kept[0] && k !== kept[kept.length - 1]) t.keys.delete(k);
                refresh();
              },
            },
            "Interpolate whole track",
          ),
        );
      }
      buttons.append(el("button", { type: "button", class: "danger", "data-testid": "delete-track", onclick: () => deleteTrack(t.id) }, "Delete track"));
      children.push(buttons);
    }
    trackPanel.replaceChildren(...children);
    if (focused) trackPanel.querySelector(`[data-testid="${focused}"]`)?.focus();
  }

  function extendTo(t) {
    if (frame < t.start) t.start = frame;
    if (frame > t.end) t.end = frame;
    refresh();
  }

  function refresh() {
    const items = [];
    for (const t of tracks) {
      const at = trackBox(t, frame);
      if (at) items.push({ key: t.id, box: at.box, label: t.label, title: `#${t.id} ${t.label}`, interpolated: !at.key });
    }
    layer.render(items, selectedId);
    frameLabel.textContent = `Frame ${frame} / ${last} · ${times[frame].toFixed(3)} s`;
    drawTimeline();
    renderPanel();
  }
  refresh();

  return {
    node,
    document: () => buildDocument(report, tracks, times),
    seek,
    get frame() {
      return frame;
    },
  };
}
