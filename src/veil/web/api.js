// A small client for Veil's /v1 API: the key travels in x-api-key (kept in sessionStorage), and every
// problem+json answer becomes an ApiError carrying the server's `detail` and field `errors`.

const KEY_STORAGE = "veil.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = (problem && (problem.detail || problem.title)) || `The server answered ${status}.`;
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.title = (problem && problem.title) || "";
    this.detail = detail;
    this.errors = (problem && problem.errors) || null;
  }
}

/** The error in plain words, field errors included, for showing to a person. */
export function describeError(error) {
  if (!(error instanceof ApiError)) {
    return (error && error.message) || String(error);
  }
  const lines = [error.detail];
  if (error.errors) {
    for (const [field, messages] of Object.entries(error.errors)) {
      const list = (Array.isArray(messages) ? messages : [messages]).filter((text) => text !== error.detail);
      if (list.length) lines.push(`${field}: ${list.join("; ")}`);
    }
  }
  return lines.join("\n");
}

async function problemOf(response) {
  try {
    const text = await response.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return { detail: text.slice(0, 500) };
    }
  } catch {
    return null;
  }
}

function networkError(cause) {
  const error = new ApiError(0, {
    title: "Network error",
    detail: "Could not reach the Veil server. Check your connection and try again.",
  });
  error.cause = cause;
  return error;
}

export class Api {
  constructor(base = "") {
    this.base = base;
  }

  get key() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  set key(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  url(path, query) {
    const url = new URL(this.base + path, window.location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    return url.toString();
  }

  /** fetch() with the key; throws ApiError on a network failure or a non-2xx answer. */
  async fetch(method, path, { query, json, body, headers = {}, signal, key } = {}) {
    const allHeaders = { ...headers };
    const secret = key ?? this.key;
    if (secret) allHeaders["x-api-key"] = secret;
    if (json !== undefined) {
      allHeaders["content-type"] = "application/json";
      body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(this.url(path, query), { method, headers: allHeaders, body, signal });
    } catch (cause) {
      if (cause && cause.name === "AbortError") throw cause;
      throw networkError(cause);
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response;
  }

  async json(method, path, options) {
    const response = await this.fetch(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  me(key) {
    return this.json("GET", "/v1/keys/me", { key });
  }

  monitoring() {
    return this.json("GET", "/v1/monitoring");
  }
  operations() {
    return this.json("GET", "/v1/operations");
  }
  listTasks(query) {
    return this.json("GET", "/v1/tasks", { query });
  }
  getTask(id) {
    return this.json("GET", `/v1/tasks/${encodeURIComponent(id)}`);
  }
  createTask(body) {
    return this.json("POST", "/v1/tasks", { json: body });
  }
  cancelTask(id) {
    return this.json("DELETE", `/v1/tasks/${encodeURIComponent(id)}`);
  }
  /** POST /v1/files: one file (a File, or a Blob given a name) in the multipart field `file`. */
  uploadFile(blob, name) {
    const form = new FormData();
    form.append("file", blob, name);
    return this.json("POST", "/v1/files", { body: form });
  }
  listKeys() {
    return this.json("GET", "/v1/keys");
  }
  createKey(name, isAdmin, fileRoot) {
    return this.json("POST", "/v1/keys", { json: { name, is_admin: isAdmin, file_root: fileRoot || null } });
  }
  revokeKey(id) {
    return this.json("DELETE", `/v1/keys/${encodeURIComponent(id)}`);
  }

  /** Fetches `path` with the key and saves the answer as `filename` in the browser's downloads. */
  async download(path, filename, query) {
    const response = await this.fetch("GET", path, { query });
    const blob = await response.blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }

  downloadArchive(taskIds) {
    return this.download("/v1/tasks/archive", "veil-tasks.zip", { ids: taskIds.join(",") });
  }

  /**
   * Reads the server-sent events of GET /v1/tasks/events until `signal` aborts, calling onTask(task) for
   * each `task` event, and onOpen() once connected. Resolves when the stream ends; throws ApiError when it
   * cannot be opened.
   */
  async taskEvents(onTask, signal, onOpen) {
    const response = await this.fetch("GET", "/v1/tasks/events", {
      headers: { accept: "text/event-stream" },
      signal,
    });
    if (onOpen) onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
        }
        if (event === "task" && data.length) {
          try {
            onTask(JSON.parse(data.join("\n")));
          } catch (error) {
            console.error("bad task event", error);
          }
        }
      }
    }
  }

  // --- TUS 1.0.0 resumable uploads -------------------------------------------------------------

  async createUpload(file) {
    const name = btoa(String.fromCharCode(...new TextEncoder().encode(file.name)));
    const response = await this.fetch("POST", "/v1/uploads", {
      headers: {
        "tus-resumable": "1.0.0",
        "upload-length": String(file.size),
        "upload-metadata": `filename ${name}`,
      },
    });
    const location = response.headers.get("location");
    if (!location) throw new ApiError(response.status, { detail: "The server gave the upload no address." });
    return new URL(location, window.location.origin).pathname;
  }

  async uploadOffset(path) {
    const response = await this.fetch("HEAD", path, { headers: { "tus-resumable": "1.0.0" } });
    return Number(response.headers.get("upload-offset"));
  }

  /**
   * PATCHes `chunk` at `offset` with XMLHttpRequest (fetch cannot report upload progress).
   * Resolves {offset, fileId}; rejects with ApiError (status 0 for a dropped connection).
   */
  patchUpload(path, offset, chunk, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PATCH", this.url(path));
      xhr.setRequestHeader("tus-resumable", "1.0.0");
      xhr.setRequestHeader("upload-offset", String(offset));
      xhr.setRequestHeader("content-type", "application/offset+octet-stream");
      if (this.key) xhr.setRequestHeader("x-api-key", this.key);
      xhr.upload.onprogress = (event) => onProgress && onProgress(event.loaded);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve({
            offset: Number(xhr.getResponseHeader("upload-offset")),
            fileId: xhr.getResponseHeader("veil-file-id"),
          });
          return;
        }
        let problem = null;
        try {
          problem = JSON.parse(xhr.responseText);
        } catch {
          problem = xhr.responseText ? { detail: xhr.responseText.slice(0, 500) } : null;
        }
        reject(new ApiError(xhr.status, problem));
      };
      xhr.onerror = () => reject(networkError(null));
      xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
      if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(chunk);
    });
  }
}
