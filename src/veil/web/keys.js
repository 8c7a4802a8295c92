// The admin keys page: every key with its usage, create one (its secret shown once), revoke one.

import { describeError } from "./api.js";
import { el, formatBytes, formatDate } from "./dom.js";

export function showKeys(root, api, me) {
  const message = el("p", { class: "error", role: "alert", id: "keys-error", hidden: "" });
  const body = el("tbody");
  const name = el("input", { type: "text", id: "key-name", required: "", maxlength: "100", autocomplete: "off" });
  const admin = el("input", { type: "checkbox", id: "key-admin" });
  const fileRoot = el("input", {
    type: "text", id: "key-file-root", maxlength: "4096", autocomplete: "off", spellcheck: "false",
    placeholder: "its own folder", "aria-describedby": "key-file-root-help",
  });
  const secretBox = el("div", { id: "new-secret", class: "secret", hidden: "", role: "status" });
  const form = el("form", { class: "inline-form", id: "create-key" },
    el("label", { for: "key-name" }, "Name"), name,
    el("span", { class: "check" }, admin, el("label", { for: "key-admin" }, "Administrator")),
    el("label", { for: "key-file-root" }, "File root"), fileRoot,
    el("span", { id: "key-file-root-help", class: "muted" },
      "optional: an existing server directory for its BlurIt-style paths"),
    el("button", { type: "submit", class: "primary" }, "Create key"));

  root.replaceChildren(el("h1", {}, "API keys"), el("h2", {}, "New key"), form, secretBox, message,
    el("h2", {}, "All keys"),
    el("div", { class: "table-wrap" }, el("table", { class: "keys", id: "key-table" },
      el("thead", {}, el("tr", {}, ...["Name", "Prefix", "Role", "File root", "Created", "Status", "Files", "Bytes",
        "Frames", "Actions"].map((text) => el("th", { scope: "col" }, text)))),
      body)));

  function showError(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function row(key) {
    const usage = key.usage || {};
    const actions = el("td", { class: "actions" });
    if (!key.revoked_at && key.id !== me.id) {
      const revoke = el("button", { type: "button", class: "danger" }, "Revoke");
      revoke.addEventListener("click", () => {
        const confirm = el("button", { type: "button", class: "danger" }, `Yes, revoke ${key.name}`);
        const keep = el("button", { type: "button" }, "Keep it");
        keep.addEventListener("click", () => { actions.replaceChildren(revoke); revoke.focus(); });
        confirm.addEventListener("click", async () => {
          try {
            await api.revokeKey(key.id);
            showError("");
            await reload();
          } catch (error) {
            showError(`Could not revoke ${key.name}: ${describeError(error)}`);
          }
        });
        actions.replaceChildren(confirm, keep);
        confirm.focus();
      });
      actions.append(revoke);
    } else if (key.id === me.id) {
      actions.append(el("span", { class: "muted" }, "This key"));
    }
    return el("tr", { "data-key-id": key.id },
      el("td", {}, key.name), el("td", { class: "mono" }, key.prefix),
      el("td", {}, key.is_admin ? "admin" : "user"),
      el("td", { class: "mono key-file-root" }, key.file_root || (key.is_admin ? "whole file root" : "own folder")),
      el("td", {}, formatDate(key.created_at)),
      el("td", { class: "key-status" }, key.revoked_at ? `revoked ${formatDate(key.revoked_at)}` : "active"),
      el("td", {}, String(usage.files ?? 0)), el("td", {}, formatBytes(usage.bytes ?? 0)),
      el("td", {}, String(usage.frames ?? 0)), actions);
  }

  async function reload() {
    try {
      const answer = await api.listKeys();
      body.replaceChildren(...answer.results.map(row));
    } catch (error) {
      showError(`Could not load the keys: ${describeError(error)}`);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api.createKey(name.value.trim(), admin.checked, fileRoot.value.trim());
      const secret = el("code", { id: "new-secret-value" }, created.secret);
      const copy = el("button", { type: "button" }, "Copy");
      copy.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(created.secret);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select the key and copy it";
        }
      });
      secretBox.replaceChildren(
        el("p", {}, `Key “${created.key.name}” created. Copy its secret now: it is not shown again.`),
        el("p", {}, secret, " ", copy));
      secretBox.hidden = false;
      name.value = "";
      admin.checked = false;
      fileRoot.value = "";
      showError("");
      await reload();
    } catch (error) {
      showError(`Could not create the key: ${describeError(error)}`);
    }
  });

  reload();
}
