// The Cloud Images console: one page, no libraries. Every action is a call to the public API;
// the session's token lives in an HttpOnly cookie this script cannot read, and every call
// carries X-Console-Request, without which the server honours the cookie for reads only.
"use strict";

const PAGE_SIZE = 20;
const DISK_FORMATS = ["raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "aki", "ari", "ami"];
const CONTAINER_FORMATS = ["bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed"];
const VISIBILITIES = ["private", "shared", "community", "public"];
const STATUSES = ["queued", "saving", "uploading", "importing", "active", "deactivated", "killed", "pending_delete"];
const EDITABLE = ["name", "min_disk", "min_ram", "protected", "visibility", "tags"];
const RESUMABLE = "cloud-images-uploads";

let session = null;
let timers = [];

// ---- DOM helpers: text is always inserted as text, never parsed as HTML -----------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function field(label, input) {
  return h("label", {}, label, input);
}

function select(name, options, value, extra) {
  return h("select", { name, ...extra }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

function status(text) {
  return h("span", { class: `status ${text}` }, text);
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "—";
}

/// What to insert of a list that may hold skipped parts (`cond && node` gives false).
function present(nodes) {
  return nodes.filter((node) => node !== undefined && node !== null && node !== false);
}

function show(...nodes) {
  for (const t of timers) clearInterval(t);
  timers = [];
  const main = document.getElementById("main");
  main.replaceChildren(...present(nodes));
  // Keyboard and screen-reader users land on the new page's content.
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function banner(message, kind) {
  const node = document.getElementById("banner");
  node.textContent = message || "";
  node.className = kind || "error";
  node.hidden = !message;
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

// ---- API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, options = {}) {
  const headers = { "Accept": "application/json", "X-Console-Request": "1" };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = options.contentType || "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (response.status === 401 && !options.quiet) {
    session = null;
    go("#/login");
    throw new ApiError(401, "Your session has ended. Log in again.");
  }
  if (!response.ok) {
    const message = (data && (data.message || (data.error && data.error.message))) || response.statusText;
    throw new ApiError(response.status, message);
  }
  return { status: response.status, data, headers: response.headers };
}

/// Runs an action, showing the API's own words when it fails.
async function attempt(action, done) {
  banner("");
  try {
    await action();
    if (done) banner(done, "info");
  } catch (e) {
    banner(e.message || String(e));
  }
}

function isAdmin() {
  return session && session.roles.includes("admin");
}

function canWrite() {
  return session && session.roles.includes("member");
}

// ---- routing ----------------------------------------------------------------------------

const PAGES = [
  [/^#\/login$/, loginPage],
  [/^#\/images$/, imagesPage],
  [/^#\/images\/new$/, newImagePage],
  [/^#\/images\/([0-9a-f-]{36})$/, imagePage],
  [/^#\/shared$/, sharedPage],
  [/^#\/tasks(?:\?.*)?$/, tasksPage],
  [/^#\/tasks\/([0-9a-f-]{36})$/, taskPage],
  [/^#\/account$/, accountPage],
  [/^#\/admin$/, adminPage],
];

async function route() {
  banner("");
  const hash = location.hash || "#/images";
  if (!session && hash !== "#/login") {
    const known = (await api("GET", "/console/session", undefined, { quiet: true })).data;
    session = known.authenticated ? known : null;
    if (!session) return go("#/login");
  }
  renderChrome(hash);
  for (const [pattern, page] of PAGES) {
    const match = hash.match(pattern);
    if (match) {
      try { await page(...match.slice(1)); } catch (e) { banner(e.message); }
      return;
    }
  }
  go("#/images");
}

function renderChrome(hash) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session) { nav.hidden = true; who.textContent = ""; return; }
  const links = [["#/images", "Images"], ["#/shared", "Shared with me"], ["#/tasks", "Tasks"], ["#/account", "Account"]];
  if (isAdmin()) links.push(["#/admin", "Tenants & users"]);
  nav.replaceChildren(
    ...links.map(([href, text]) => h("a", { href, "aria-current": hash.startsWith(href) ? "page" : false }, text)),
    h("a", { href: "#/login", id: "logout", onclick: logout }, "Log out"),
  );
  nav.hidden = false;
  who.textContent = `${session.user.name} · ${session.project.name} · ${session.roles[0]}`;
}

async function logout(event) {
  event.preventDefault();
  await fetch("/console/session", { method: "DELETE", credentials: "same-origin", headers: { "X-Console-Request": "1" } });
  session = null;
  go("#/login");
  banner("You are logged out.", "info");
}

// ---- login ------------------------------------------------------------------------------

function loginPage() {
  renderChrome("");
  const form = h("form", { id: "login-form" },
    field("User name", h("input", { name: "username", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    attempt(async () => {
      const opened = await api("POST", "/console/session", { username: data.get("username"), password: data.get("password") }, { quiet: true });
      session = opened.data;
      go("#/images");
    });
  });
  show(h("div", { class: "login card" }, h("h1", {}, "Log in"), form,
    h("p", { class: "muted" }, "Use the user name and password of your Cloud Images account.")));
}

// ---- images -----------------------------------------------------------------------------

async function imagesPage() {
  const state = { marker: null, history: [] };
  const filters = h("form", { class: "filters", id: "filters" },
    field("Name", h("input", { name: "name" })),
    field("Status", select("status", [["", "Any"], ...STATUSES.map((s) => [s, s])], "")),
    field("Visibility", select("visibility", [["", "Any"], ...VISIBILITIES.map((v) => [v, v]), ["all", "all"]], "")),
    field("Tag", h("input", { name: "tag" })),
    field("Disk format", select("disk_format", [["", "Any"], ...DISK_FORMATS.map((f) => [f, f])], "")),
    field("Sort", select("sort", [["created_at:desc", "Newest first"], ["created_at:asc", "Oldest first"], ["name:asc", "Name A–Z"], ["name:desc", "Name Z–A"], ["size:desc", "Largest first"]], "created_at:desc")),
    h("button", { type: "submit" }, "Apply"));
  const results = h("div", {});
  const pager = h("div", { class: "actions" });
  filters.addEventListener("submit", (event) => { event.preventDefault(); state.marker = null; state.history = []; load(); });

  async function load() {
    const data = new FormData(filters);
    const query = new URLSearchParams({ limit: PAGE_SIZE, sort: data.get("sort") });
    for (const key of ["name", "status", "visibility", "tag", "disk_format"]) {
      if (data.get(key)) query.set(key, data.get(key));
    }
    if (state.marker) query.set("marker", state.marker);
    await attempt(async () => {
      const page = (await api("GET", `/v2/images?${query}`)).data;
      results.replaceChildren(imageTable(page.images));
      pager.replaceChildren(
        h("button", { class: "secondary", disabled: !state.history.length, onclick: () => { state.marker = state.history.pop(); load(); } }, "Previous"),
        h("button", { class: "secondary", disabled: !page.next, onclick: () => { state.history.push(state.marker); state.marker = page.images[page.images.length - 1].id; load(); } }, "Next"));
    });
  }
  show(h("h1", {}, "Images"),
    h("div", { class: "actions" }, canWrite() && h("button", { onclick: () => go("#/images/new") }, "Create image")),
    h("div", { class: "card" }, filters), results, pager);
  await load();
}

function imageTable(images) {
  if (!images.length) {
    return h("div", { class: "card empty" }, "No images match. ",
      canWrite() ? h("a", { href: "#/images/new" }, "Create one") : "", canWrite() ? " or change the filters." : "");
  }
  return h("div", { class: "table-wrap" }, h("table", { id: "images" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Visibility"),
      h("th", { class: "optional" }, "Disk format"), h("th", { class: "optional" }, "Size"), h("th", { class: "optional" }, "Created"))),
    h("tbody", {}, images.map((image) => h("tr", {},
      h("td", {}, h("a", { href: `#/images/${image.id}` }, image.name || image.id)),
      h("td", {}, status(image.status)), h("td", {}, image.visibility),
      h("td", { class: "optional" }, image.disk_format || "—"), h("td", { class: "optional" }, bytes(image.size)),
      h("td", { class: "optional" }, when(image.created_at)))))));
}

function newImagePage() {
  const form = h("form", { class: "grid", id: "new-image" },
    field("Name", h("input", { name: "name", required: true })),
    field("Disk format", select("disk_format", DISK_FORMATS.map((f) => [f, f]), "raw")),
    field("Container format", select("container_format", CONTAINER_FORMATS.map((f) => [f, f]), "bare")),
    field("Visibility", select("visibility", VISIBILITIES.map((v) => [v, v]), "private")),
    field("Minimum disk (GB)", h("input", { name: "min_disk", type: "number", min: 0, value: 0 })),
    field("Minimum RAM (MB)", h("input", { name: "min_ram", type: "number", min: 0, value: 0 })),
    field("Image file (optional)", h("input", { name: "file", type: "file" })),
    h("button", { type: "submit" }, "Create"));
  const progress = h("div", { id: "upload-progress" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    attempt(async () => {
      const created = (await api("POST", "/v2/images", {
        name: data.get("name"), disk_format: data.get("disk_format"), container_format: data.get("container_format"),
        visibility: data.get("visibility"), min_disk: Number(data.get("min_disk")), min_ram: Number(data.get("min_ram")),
      })).data;
      const file = data.get("file");
      if (file && file.size) await upload(created.id, file, progress);
      go(`#/images/${created.id}`);
    });
  });
  show(h("h1", {}, "Create an image"), h("div", { class: "card" }, form, progress));
}

/// Uploads a file with a progress bar: directly where the host takes it, else (the
/// serverless stack, above its direct limit) as parts PUT in parallel to their URLs.
async function upload(id, file, where) {
  const bar = h("progress", { max: file.size, value: 0, "aria-label": "Upload progress" });
  const label = h("span", { class: "muted" }, "Uploading…");
  where.replaceChildren(bar, label);
  const report = (sent) => { bar.value = sent; label.textContent = `Uploaded ${bytes(sent)} of ${bytes(file.size)}`; };
  // An interrupted staged upload of this file goes on where it stopped.
  if (resumablePlan(id, file)) return uploadInParts(id, file, report, label);
  const direct = await send("PUT", `/v2/images/${id}/file`, file, report, { "X-Console-Request": "1", "Content-Type": "application/octet-stream" });
  if (direct.status === 413 && /staged|parts/i.test(direct.text)) return uploadInParts(id, file, report, label);
  if (direct.status >= 300) throw new ApiError(direct.status, messageOf(direct.text));
  label.textContent = `Uploaded ${bytes(file.size)}.`;
}

function messageOf(text) {
  try {
    const data = JSON.parse(text);
    return data.message || (data.error && data.error.message) || text;
  } catch (e) { return text; }
}

function send(method, url, body, onProgress, headers) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    for (const [name, value] of Object.entries(headers || {})) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => resolve({ status: request.status, text: request.responseText });
    request.onerror = () => reject(new Error(`the upload to ${new URL(url, location.href).host} failed`));
    request.send(body);
  });
}

function resumablePlan(id, file) {
  const plan = JSON.parse(localStorage.getItem(RESUMABLE) || "{}")[id];
  return plan && plan.size === file.size ? plan : null;
}

async function uploadInParts(id, file, report, label) {
  let plan = resumablePlan(id, file);
  if (!plan) {
    const offer = (await api("POST", `/v2/images/${id}/file/parts`, { size: file.size })).data;
    plan = { size: file.size, upload_id: offer.upload_id, part_size: offer.part_size, parts: offer.parts, done: [] };
  }
  // Read afresh each time: another tab may be uploading another image. Once forgotten, a
  // plan stays forgotten even if a part still in flight finishes.
  let abandoned = false;
  const keep = (change) => {
    const saved = JSON.parse(localStorage.getItem(RESUMABLE) || "{}");
    change(saved);
    localStorage.setItem(RESUMABLE, JSON.stringify(saved));
  };
  const remember = () => { if (!abandoned) keep((saved) => { saved[id] = plan; }); };
  const forget = () => { abandoned = true; keep((saved) => { delete saved[id]; }); };
  remember();
  const sent = new Map(plan.done.map((n) => [n, plan.parts.find((p) => p.part_number === n).size]));
  const total = () => [...sent.values()].reduce((a, b) => a + b, 0);
  const queue = plan.parts.filter((p) => !plan.done.includes(p.part_number));
  const worker = async () => {
    for (let part = queue.shift(); part; part = queue.shift()) {
      const start = (part.part_number - 1) * plan.part_size;
      const result = await send("PUT", part.url, file.slice(start, start + part.size), (n) => { sent.set(part.part_number, n); report(total()); });
      if (result.status >= 300) {
        const expired = result.status === 403 || result.status === 404;
        if (expired) forget();
        throw new ApiError(result.status, `part ${part.part_number} was refused by the store${expired ? " (its upload expired or was cancelled): choose the file again to start over" : ""}`);
      }
      sent.set(part.part_number, part.size);
      plan.done.push(part.part_number);
      remember();
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  label.textContent = "Joining the parts and checking the image…";
  try {
    await api("POST", `/v2/images/${id}/file/complete`, { upload_id: plan.upload_id });
  } catch (error) {
    // Refused (the image checks the joined bytes): nothing is left to resume. A failure of
    // the service or the network keeps the plan, and the next try completes it.
    if (error.status >= 400 && error.status < 500) forget();
    throw error;
  }
  forget();
}

async function imagePage(id) {
  const image = (await api("GET", `/v2/images/${id}`)).data;
  const mine = image.owner === session.project.id;
  const props = h("dl", { class: "props", id: "properties" },
    Object.keys(image).sort().flatMap((key) => [h("dt", {}, key), h("dd", {}, display(image[key]))]));
  // A queued image waits for its data: the upload comes first.
  const awaitingData = mine && canWrite() && image.status === "queued";
  const sections = [h("h1", {}, image.name || image.id), h("p", {}, status(image.status), " ", image.visibility),
    actionsFor(image, mine), awaitingData ? uploadCard(image) : null, h("div", { class: "card" }, h("h2", {}, "Properties"), props)];
  if (mine && canWrite()) sections.push(editForm(image));
  if (mine && image.visibility === "shared") sections.push(await membersCard(image));
  if (!mine && image.visibility === "shared") sections.push(await offerCard(image));
  const settling = ["saving", "uploading", "importing"].includes(image.status);
  if (settling) sections.splice(2, 0, h("p", { class: "muted", id: "settling" }, "The service is still storing this image's data; this page updates by itself."));
  show(...sections);
  // Until the data settles (active or killed), look again; leaving the page stops it.
  if (settling) timers.push(setTimeout(() => { if (location.hash === `#/images/${id}`) imagePage(id).catch((e) => banner(e.message)); }, 2000));
}

function display(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function actionsFor(image, mine) {
  const buttons = [];
  if (image.status === "active") buttons.push(h("a", { class: "button", href: `/v2/images/${image.id}/file`, download: `${image.name || image.id}.${image.disk_format || "img"}`, id: "download" }, "Download"));
  if (isAdmin() && image.status === "active") buttons.push(h("button", { class: "secondary", onclick: () => attempt(async () => { await api("POST", `/v2/images/${image.id}/actions/deactivate`); await imagePage(image.id); }) }, "Deactivate"));
  if (isAdmin() && image.status === "deactivated") buttons.push(h("button", { class: "secondary", onclick: () => attempt(async () => { await api("POST", `/v2/images/${image.id}/actions/reactivate`); await imagePage(image.id); }) }, "Reactivate"));
  if (mine && canWrite()) buttons.push(h("button", { class: "danger", id: "delete-image", onclick: () => {
    if (!confirm(`Delete ${image.name || image.id}? This cannot be undone.`)) return;
    attempt(async () => { await api("DELETE", `/v2/images/${image.id}`); go("#/images"); banner("Image deleted.", "info"); });
  } }, "Delete"));
  if (mine && canWrite()) buttons.push(h("button", { class: "secondary", onclick: () => go(`#/tasks?export=${image.id}`) }, "Export…"));
  return h("div", { class: "actions" }, buttons);
}

function editForm(image) {
  const custom = Object.entries(image).filter(([key]) => !BASE_KEYS.has(key));
  const form = h("form", { class: "grid", id: "edit-image" },
    field("Name", h("input", { name: "name", value: image.name || "" })),
    field("Minimum disk (GB)", h("input", { name: "min_disk", type: "number", min: 0, value: image.min_disk })),
    field("Minimum RAM (MB)", h("input", { name: "min_ram", type: "number", min: 0, value: image.min_ram })),
    field("Visibility", select("visibility", VISIBILITIES.map((v) => [v, v]), image.visibility)),
    field("Tags (comma separated)", h("input", { name: "tags", value: image.tags.join(", ") })),
    h("label", { class: "check" }, h("input", { name: "protected", type: "checkbox", checked: image.protected }), "Protected"),
    field("Properties (one key=value a line)", h("textarea", { name: "properties" }, custom.map(([k, v]) => `${k}=${v}`).join("\n"))),
    h("button", { type: "submit" }, "Save changes"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const patch = changesOf(image, new FormData(form));
    if (!patch.length) return banner("Nothing changed.", "info");
    attempt(async () => {
      await api("PATCH", `/v2/images/${image.id}`, JSON.stringify(patch), { contentType: "application/openstack-images-v2.1-json-patch" });
      await imagePage(image.id);
      banner("Saved.", "info");
    });
  });
  return h("div", { class: "card" }, h("h2", {}, "Edit"), form);
}

const BASE_KEYS = new Set(["id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value",
  "owner", "size", "virtual_size", "min_ram", "min_disk", "container_format", "disk_format", "created_at", "updated_at", "tags",
  "self", "file", "schema", "locations", "direct_url", "stores"]);

/// The JSON-Patch that turns `image` into what the form says.
function changesOf(image, data) {
  const patch = [];
  const set = (key, value) => patch.push({ op: image[key] === undefined ? "add" : "replace", path: `/${key}`, value });
  if ((data.get("name") || null) !== image.name) set("name", data.get("name"));
  for (const key of ["min_disk", "min_ram"]) if (Number(data.get(key)) !== image[key]) set(key, Number(data.get(key)));
  if (data.get("visibility") !== image.visibility) set("visibility", data.get("visibility"));
  if ((data.get("protected") === "on") !== image.protected) set("protected", data.get("protected") === "on");
  const tags = data.get("tags").split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.join("\u0000") !== image.tags.join("\u0000")) set("tags", tags);
  const wanted = new Map(data.get("properties").split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
    const at = l.indexOf("=");
    return at < 0 ? [l, ""] : [l.slice(0, at).trim(), l.slice(at + 1).trim()];
  }));
  for (const [key, value] of Object.entries(image)) {
    if (!BASE_KEYS.has(key) && !wanted.has(key)) patch.push({ op: "remove", path: `/${key}` });
  }
  for (const [key, value] of wanted) if (image[key] !== value) set(key, value);
  return patch;
}

function uploadCard(image) {
  const progress = h("div", { id: "upload-progress" });
  const input = h("input", { type: "file", name: "file", id: "upload-file" });
  const button = h("button", { onclick: () => {
    if (!input.files.length) return banner("Choose a file first.");
    attempt(async () => { await upload(image.id, input.files[0], progress); await imagePage(image.id); });
  } }, "Upload");
  const pending = JSON.parse(localStorage.getItem(RESUMABLE) || "{}")[image.id];
  return h("div", { class: "card" }, h("h2", {}, "Upload data"),
    pending ? h("p", { class: "muted" }, `An upload of ${bytes(pending.size)} was interrupted: choose the same file to resume it.`) : null,
    h("div", { class: "actions" }, input, button), progress);
}

async function membersCard(image) {
  const members = (await api("GET", `/v2/images/${image.id}/members`)).data.members;
  const input = h("input", { name: "member", placeholder: "Tenant id", id: "member-id" });
  const add = h("button", { id: "add-member", onclick: () => attempt(async () => {
    await api("POST", `/v2/images/${image.id}/members`, { member: input.value.trim() });
    await imagePage(image.id);
    banner("Offered. The tenant sees it as pending until it accepts.", "info");
  }) }, "Share");
  const rows = members.map((m) => h("tr", {}, h("td", {}, m.member_id), h("td", {}, status(m.status)), h("td", {}, when(m.updated_at)),
    h("td", {}, canWrite() && h("button", { class: "danger", onclick: () => attempt(async () => { await api("DELETE", `/v2/images/${image.id}/members/${m.member_id}`); await imagePage(image.id); }) }, "Remove"))));
  return h("div", { class: "card" }, h("h2", {}, "Sharing"),
    rows.length ? h("div", { class: "table-wrap" }, h("table", { id: "members" }, h("thead", {}, h("tr", {}, h("th", {}, "Tenant"), h("th", {}, "Status"), h("th", {}, "Updated"), h("th", {}, ""))), h("tbody", {}, rows)))
      : h("p", { class: "empty" }, "Not shared with anyone yet."),
    canWrite() && h("div", { class: "actions" }, input, add));
}

async function offerCard(image) {
  const member = (await api("GET", `/v2/images/${image.id}/members/${session.project.id}`)).data;
  const decide = (choice) => attempt(async () => {
    await api("PUT", `/v2/images/${image.id}/members/${session.project.id}`, { status: choice });
    await imagePage(image.id);
    banner(`You ${choice} this image.`, "info");
  });
  return h("div", { class: "card" }, h("h2", {}, "Offered to you"), h("p", {}, "Your answer: ", status(member.status)),
    canWrite() && h("div", { class: "actions" },
      member.status !== "accepted" && h("button", { id: "accept", onclick: () => decide("accepted") }, "Accept"),
      member.status !== "rejected" && h("button", { class: "secondary", id: "reject", onclick: () => decide("rejected") }, "Reject")));
}

async function sharedPage() {
  const query = new URLSearchParams({ visibility: "shared", member_status: "all", limit: 100 });
  const images = (await api("GET", `/v2/images?${query}`)).data.images.filter((i) => i.owner !== session.project.id);
  const rows = await Promise.all(images.map(async (image) => {
    const member = (await api("GET", `/v2/images/${image.id}/members/${session.project.id}`)).data;
    return h("tr", {}, h("td", {}, h("a", { href: `#/images/${image.id}` }, image.name || image.id)), h("td", {}, image.owner), h("td", {}, status(member.status)));
  }));
  show(h("h1", {}, "Shared with me"),
    rows.length ? h("div", { class: "table-wrap" }, h("table", { id: "offers" }, h("thead", {}, h("tr", {}, h("th", {}, "Image"), h("th", {}, "Owner"), h("th", {}, "Your answer"))), h("tbody", {}, rows)))
      : h("div", { class: "card empty" }, "No image has been shared with your tenant. Producers share an image by adding your tenant id: ", h("code", {}, session.project.id)));
}

// ---- tasks ------------------------------------------------------------------------------

async function tasksPage() {
  const exporting = new URLSearchParams(location.hash.split("?")[1] || "").get("export") || "";
  const tasks = (await api("GET", "/v2/tasks?limit=50")).data.tasks;
  const importForm = h("form", { class: "grid", id: "import-form" },
    field("Container", h("input", { name: "container", required: true })),
    field("Object", h("input", { name: "object", required: true })),
    field("Format", select("format", DISK_FORMATS.map((f) => [f, f]), "vhd")),
    field("Image name", h("input", { name: "name", required: true })),
    h("button", { type: "submit" }, "Start import"));
  importForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(importForm);
    startTask({ type: "import", input: { import_from: `${data.get("container")}/${data.get("object")}`, import_from_format: data.get("format"), image_properties: { name: data.get("name") } } });
  });
  const exportForm = h("form", { class: "grid", id: "export-form" },
    field("Image id", h("input", { name: "image", required: true, value: exporting })),
    field("Container", h("input", { name: "container", required: true })),
    field("Format", select("format", [["vhd", "vhd"], ["raw", "raw"], ["qcow2", "qcow2"]], "vhd")),
    h("button", { type: "submit" }, "Start export"));
  exportForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(exportForm);
    startTask({ type: "export", input: { image_uuid: data.get("image").trim(), receiving_swift_container: data.get("container"), export_format: data.get("format") } });
  });
  show(h("h1", {}, "Tasks"),
    canWrite() && h("div", { class: "card" }, h("h2", {}, "Import an object from a container"), importForm),
    canWrite() && h("div", { class: "card" }, h("h2", {}, "Export an image to a container"), exportForm),
    tasks.length ? h("div", { class: "table-wrap" }, h("table", { id: "tasks" },
      h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Type"), h("th", {}, "Status"), h("th", { class: "optional" }, "Updated"))),
      h("tbody", {}, tasks.map((t) => h("tr", {}, h("td", {}, h("a", { href: `#/tasks/${t.id}` }, t.id)), h("td", {}, t.type), h("td", {}, status(t.status)), h("td", { class: "optional" }, when(t.updated_at)))))))
      : h("div", { class: "card empty" }, "No tasks yet. Import an object or export an image above."));
}

function startTask(body) {
  attempt(async () => {
    const task = (await api("POST", "/v2/tasks", body)).data;
    go(`#/tasks/${task.id}`);
  });
}

/// How far a running import got, as its worker last said (every few seconds).
function taskProgress(progress) {
  const of = progress.total ? ` of ${bytes(progress.total)}` : "";
  return h("p", { id: "task-progress" },
    progress.total ? h("progress", { max: progress.total, value: progress.done, "aria-label": "Task progress" }) : null,
    h("span", { class: "muted" }, ` ${bytes(progress.done)}${of} moved`));
}

async function taskPage(id) {
  const details = h("div", { class: "card", id: "task" });
  const render = (task) => details.replaceChildren(...present([
    h("p", {}, "Status: ", status(task.status), task.status === "pending" || task.status === "processing" ? h("span", { class: "muted" }, " (updating live)") : null),
    task.progress && task.status === "processing" ? taskProgress(task.progress) : null,
    h("dl", { class: "props" }, ["type", "created_at", "updated_at", "expires_at"].flatMap((k) => [h("dt", {}, k), h("dd", {}, display(task[k]))]),
      h("dt", {}, "input"), h("dd", {}, display(task.input)), h("dt", {}, "result"), h("dd", {}, display(task.result)),
      h("dt", {}, "message"), h("dd", { id: "task-message" }, task.message || "—")),
    task.result && task.result.image_id ? h("p", {}, h("a", { href: `#/images/${task.result.image_id}` }, "Open the imported image")) : null]));
  show(h("h1", {}, "Task"), details, h("p", {}, h("a", { href: "#/tasks" }, "All tasks")));
  const refresh = async () => {
    const task = (await api("GET", `/v2/tasks/${id}`)).data;
    render(task);
    if (task.status === "success" || task.status === "failure") for (const t of timers) clearInterval(t);
  };
  await refresh();
  timers.push(setInterval(() => refresh().catch((e) => banner(e.message)), 1000));
}

// ---- account ----------------------------------------------------------------------------

function resetPath(userId) {
  return `/v2.0/users/${userId}/OS-KSADM/credentials/RAX-KSKEY:apiKeyCredentials/RAX-AUTH/reset`;
}

function secretCard(title, secret, note) {
  const copy = h("button", { class: "secondary", onclick: () => navigator.clipboard.writeText(secret).then(() => banner("Copied.", "info"), () => banner("Copy it by hand: the browser refused.")) }, "Copy");
  return h("div", { class: "card", id: "new-secret" }, h("h2", {}, title), h("p", { class: "secret", id: "api-key" }, secret), h("div", { class: "actions" }, copy), h("p", { class: "muted" }, note));
}

function accountPage() {
  const keyArea = h("div", {});
  const resetKey = h("button", { id: "reset-key", onclick: () => {
    if (!confirm("Reset your API key? The old key and every session of yours stop working.")) return;
    attempt(async () => {
      const reset = (await api("POST", resetPath(session.user.id))).data["RAX-KSKEY:apiKeyCredentials"];
      keyArea.replaceChildren(secretCard("Your new API key", reset.apiKey, "It is shown only now. Your sessions have ended: log in again when you leave this page."));
    });
  } }, "Reset API key");
  const password = h("form", { class: "grid", id: "password-form" },
    field("Current password", h("input", { name: "original", type: "password", autocomplete: "current-password", required: true })),
    field("New password", h("input", { name: "password", type: "password", autocomplete: "new-password", required: true })),
    field("New password again", h("input", { name: "again", type: "password", autocomplete: "new-password", required: true })),
    h("button", { type: "submit" }, "Change password"));
  password.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(password);
    if (data.get("password") !== data.get("again")) return banner("The new passwords differ.");
    attempt(async () => {
      await api("POST", `/v3/users/${session.user.id}/password`, { user: { original_password: data.get("original"), password: data.get("password") } }, { quiet: true });
      session = null;
      go("#/login");
      banner("Password changed. Log in with the new one.", "info");
    });
  });
  show(h("h1", {}, "Account"),
    h("div", { class: "card" }, h("dl", { class: "props" },
      h("dt", {}, "User"), h("dd", {}, `${session.user.name} (${session.user.id})`),
      h("dt", {}, "Tenant"), h("dd", { id: "tenant-id" }, `${session.project.name} (${session.project.id})`),
      h("dt", {}, "Roles"), h("dd", {}, session.roles.join(", ")))),
    h("div", { class: "card" }, h("h2", {}, "API key"), h("p", { class: "muted" }, "Keys are kept only as hashes, so a key is shown once: when it is made."), resetKey, keyArea),
    h("div", { class: "card" }, h("h2", {}, "Password"), password));
}

/// The administrators' page; `notice` (a key shown once) goes on top of the fresh page.
async function adminPage(notice) {
  if (!isAdmin()) return show(h("div", { class: "card empty" }, "This page is for administrators."));
  const projects = (await api("GET", "/v3/projects")).data.projects;
  const users = (await api("GET", "/v3/users")).data.users;
  const nameOf = new Map(projects.map((p) => [p.id, p.name]));
  const secretArea = h("div", {}, notice);
  const newProject = h("form", { class: "grid", id: "new-project" }, field("Tenant name", h("input", { name: "name", required: true })), h("button", { type: "submit" }, "Create tenant"));
  newProject.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => { await api("POST", "/v3/projects", { project: { name: new FormData(newProject).get("name") } }); await adminPage(); banner("Tenant created.", "info"); });
  });
  const newUser = h("form", { class: "grid", id: "new-user" },
    field("User name", h("input", { name: "name", required: true })),
    field("Tenant", select("project", projects.map((p) => [p.id, p.name]), projects[0] && projects[0].id)),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "new-password" })),
    h("button", { type: "submit" }, "Create user"));
  newUser.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(newUser);
    const user = { name: data.get("name"), default_project_id: data.get("project") };
    if (data.get("password")) user.password = data.get("password");
    attempt(async () => {
      const created = (await api("POST", "/v3/users", { user })).data.user;
      await adminPage(secretCard(`API key of ${created.name}`, created["RAX-KSKEY:apiKeyCredentials"].apiKey, "Shown only now: hand it to the user."));
    });
  });
  const userRow = (u) => h("tr", {}, h("td", {}, u.name), h("td", {}, nameOf.get(u.default_project_id) || u.default_project_id), h("td", {}, u.enabled ? "yes" : "no"),
    h("td", {}, h("div", { class: "actions" },
      h("button", { class: "secondary", onclick: () => attempt(async () => { await api("PATCH", `/v3/users/${u.id}`, { user: { enabled: !u.enabled } }); await adminPage(); }) }, u.enabled ? "Disable" : "Enable"),
      h("button", { class: "secondary", onclick: () => attempt(async () => {
        const reset = (await api("POST", resetPath(u.id))).data["RAX-KSKEY:apiKeyCredentials"];
        secretArea.replaceChildren(secretCard(`New API key of ${u.name}`, reset.apiKey, "Shown only now: hand it to the user."));
      }) }, "Reset key"),
      h("button", { class: "danger", onclick: () => confirm(`Delete user ${u.name}?`) && attempt(async () => { await api("DELETE", `/v3/users/${u.id}`); await adminPage(); }) }, "Delete"))));
  const projectRow = (p) => h("tr", {}, h("td", {}, p.name), h("td", {}, p.id),
    h("td", {}, h("button", { class: "danger", onclick: () => confirm(`Delete tenant ${p.name} and its users?`) && attempt(async () => { await api("DELETE", `/v3/projects/${p.id}`); await adminPage(); }) }, "Delete")));
  show(h("h1", {}, "Tenants & users"), secretArea,
    h("div", { class: "card" }, h("h2", {}, "Tenants"), newProject),
    h("div", { class: "table-wrap" }, h("table", { id: "projects" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Id"), h("th", {}, ""))), h("tbody", {}, projects.map(projectRow)))),
    h("div", { class: "card" }, h("h2", {}, "Users"), newUser),
    h("div", { class: "table-wrap" }, h("table", { id: "users" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Tenant"), h("th", {}, "Enabled"), h("th", {}, ""))), h("tbody", {}, users.map(userRow)))));
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
