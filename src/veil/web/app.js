// The manager's shell: sign in, a hash router (#/signin, #/upload, #/tasks, #/tasks/<id>, #/keys) and the
// header's navigation. The result screen lives in result.js, loaded on demand.

import { Api, describeError } from "./api.js";
import { el } from "./dom.js";
import { showKeys } from "./keys.js";
import { showTasks } from "./tasks.js";
import { showUpload } from "./upload.js";

const api = new Api();
const root = document.getElementById("app");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const notice = document.getElementById("notice");
let me = null;
let stopScreen = null;

export function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

function setSignedIn(key) {
  me = key;
  nav.hidden = !key;
  document.getElementById("nav-keys").hidden = !(key && key.is_admin);
  who.textContent = key ? `Signed in as ${key.name}${key.is_admin ? " (admin)" : ""}` : "";
  showFlowerLink(key);
}

// Admin keys get a link to Flower (workers, queues and tasks) when the server names its address.
async function showFlowerLink(key) {
  const link = document.getElementById("nav-flower");
  link.hidden = true;
  if (!key || !key.is_admin) return;
  try {
    const { flower_url: url } = await api.monitoring();
    if (url && me === key) {
      link.href = url;
      link.hidden = false;
    }
  } catch (error) {
    console.error(error);
  }
}

function showSignIn(reason) {
  const input = el("input", { type: "password", id: "api-key", name: "api-key", required: "",
    autocomplete: "off", spellcheck: "false" });
  const error = el("p", { class: "error", role: "alert", id: "signin-error", hidden: "" });
  const form = el("form", { class: "signin", id: "signin-form" },
    el("h1", {}, "Sign in"),
    el("p", {}, "Enter the API key your administrator gave you. It is kept for this browser tab only."),
    el("label", { for: "api-key" }, "API key"), input, error,
    el("button", { type: "submit", class: "primary" }, "Sign in"));
  if (reason) {
    error.textContent = reason;
    error.hidden = false;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    try {
      const found = await api.me(key);
      api.key = key;
      setSignedIn(found);
      window.location.hash = "#/tasks";
    } catch (failure) {
      error.textContent = failure.status === 401 || failure.status === 403
        ? `That key was not accepted: ${describeError(failure)}`
        : `Could not sign in: ${describeError(failure)}`;
      error.hidden = false;
      input.focus();
    }
  });
  root.replaceChildren(form);
  input.focus();
}

function signOut() {
  api.key = "";
  setSignedIn(null);
  window.location.hash = "#/signin";
}

async function showTask(taskId) {
  root.replaceChildren(el("p", { role: "status" }, `Loading ${taskId}…`));
  let module;
  try {
    module = await import("./result.js");
  } catch (error) {
    console.error(error);
    root.replaceChildren(el("h1", {}, taskId),
      el("p", { class: "error", role: "alert" }, "The result view could not be loaded."));
    return undefined;
  }
  return module.showResult(root, api, taskId);
}

async function route() {
  if (stopScreen) {
    try {
      stopScreen();
    } catch (error) {
      console.error(error);
    }
    stopScreen = null;
  }
  showNotice("");
  const hash = window.location.hash || "#/tasks";
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (!me && api.key) {
    try {
      setSignedIn(await api.me());
    } catch (error) {
      api.key = "";
      showSignIn(error.status === 401 ? "Your key is no longer accepted; sign in again." :
        `Could not check your key: ${describeError(error)}`);
      return;
    }
  }
  if (!me || parts[0] === "signin") {
    if (me) {
      window.location.hash = "#/tasks";
      return;
    }
    showSignIn();
    return;
  }
  for (const link of nav.querySelectorAll("a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${parts[0]}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  try {
    if (parts[0] === "upload") {
      await showUpload(root, api);
    } else if (parts[0] === "tasks" && parts[1]) {
      const stop = await showTask(parts[1]);
      if (typeof stop === "function") stopScreen = stop;
    } else if (parts[0] === "keys" && me.is_admin) {
      showKeys(root, api, me);
    } else if (parts[0] === "tasks" || !parts[0]) {
      stopScreen = showTasks(root, api);
    } else {
      root.replaceChildren(el("h1", {}, "Not found"), el("p", {}, "There is no such page. "),
        el("a", { href: "#/tasks" }, "Go to the task list"));
    }
  } catch (error) {
    console.error(error);
    showNotice(describeError(error));
  }
  const heading = root.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

document.getElementById("sign-out").addEventListener("click", signOut);
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  root.focus();
});
window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => showNotice(describeError(event.reason)));
route();
