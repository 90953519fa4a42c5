// Hearth's staff pages: sign-in with the Matrix account, the live queue, case actions.
// No framework and nothing from elsewhere; text is always set with textContent, never as HTML.
"use strict";

const body = document.body;
const HOMESERVER = body.dataset.homeserver;

async function json(url, options = {}) {
  const r = await fetch(url, { credentials: "same-origin", ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) } });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

// --- sign-in: the password goes only to the homeserver; Hearth gets an OpenID token ----------
async function signIn(event) {
  event.preventDefault();
  const error = document.getElementById("sign-in-error");
  error.textContent = "";
  const username = document.getElementById("username").value.trim();
  const password = document.getElementById("password").value;
  let matrixToken = null;
  try {
    const login = await json(`${HOMESERVER}/_matrix/client/v3/login`, { method: "POST", credentials: "omit",
      body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: username },
                             password, initial_device_display_name: "Hearth staff sign-in" }) });
    matrixToken = login.access_token;
    const openid = await json(`${HOMESERVER}/_matrix/client/v3/user/${encodeURIComponent(login.user_id)}/openid/request_token`,
      { method: "POST", credentials: "omit", headers: { Authorization: `Bearer ${matrixToken}` }, body: "{}" });
    await json("/api/auth/openid", { method: "POST",
      body: JSON.stringify({ access_token: openid.access_token, matrix_server_name: openid.matrix_server_name }) });
    window.location.reload();
  } catch (e) {
    error.textContent = `Could not sign in: ${e.message}`;
  } finally {
    document.getElementById("password").value = "";
    if (matrixToken) {  // the Matrix session existed only to ask for the OpenID token
      fetch(`${HOMESERVER}/_matrix/client/v3/logout`, { method: "POST", credentials: "omit",
        headers: { Authorization: `Bearer ${matrixToken}` } }).catch(() => {});
    }
  }
}

// --- time left on the SLA, counted down in the page -----------------------------------------
function renderSla() {
  for (const cell of document.querySelectorAll("[data-deadline]")) {
    const left = Math.round((Date.parse(cell.dataset.deadline) - Date.now()) / 1000);
    const abs = Math.abs(left);
    const text = abs >= 3600 ? `${Math.floor(abs / 3600)} h ${Math.floor((abs % 3600) / 60)} min`
      : abs >= 60 ? `${Math.floor(abs / 60)} min ${abs % 60} s` : `${abs} s`;
    cell.textContent = left >= 0 ? `${text} left` : `overdue by ${text}`;
    cell.classList.toggle("overdue", left < 0);
  }
}

// --- the live queue ----------------------------------------------------------------------------
function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function renderQueue(rows) {
  const tbody = document.querySelector("#queue tbody");
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.className = `tier-${r.severity}`;
    const link = document.createElement("a");
    link.href = `/staff/cases/${encodeURIComponent(r.id)}`;
    link.textContent = r.id;
    cell(tr, "").appendChild(link);
    cell(tr, r.severity);
    cell(tr, r.category);
    let status = r.status;
    if (r.taken_by) status += ` · with ${r.taken_by}`;
    if (r.left_alone) status += " · asked to be left alone";
    cell(tr, status);
    cell(tr, r.member);
    cell(tr, r.raised);
    const sla = cell(tr, "");
    sla.className = "sla";
    sla.dataset.deadline = r.sla_deadline;
    tbody.appendChild(tr);
  }
  document.getElementById("empty").hidden = rows.length > 0;
  renderSla();
}

function liveQueue() {
  const live = document.getElementById("live");
  const source = new EventSource("/staff/events");
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.classList.remove("on"); });
  source.addEventListener("queue", (e) => renderQueue(JSON.parse(e.data)));
}

// --- case actions ------------------------------------------------------------------------------
function caseActions() {
  const id = document.getElementById("case").dataset.id;
  const error = document.getElementById("action-error");
  const act = async (path, payload) => {
    error.textContent = "";
    try {
      await json(`/api/escalations/${encodeURIComponent(id)}/${path}`, { method: "POST", body: JSON.stringify(payload || {}) });
      window.location.reload();
    } catch (e) {
      error.textContent = e.message;
    }
  };
  document.getElementById("take")?.addEventListener("click", () => act("take"));
  document.getElementById("acknowledge")?.addEventListener("click", () => act("acknowledge"));
  document.getElementById("resolve")?.addEventListener("submit", (e) => {
    e.preventDefault();
    const note = document.getElementById("resolve-note").value.trim();
    act("resolve", { outcome: document.getElementById("outcome").value, ...(note ? { note } : {}) });
  });
  document.getElementById("note")?.addEventListener("submit", (e) => {
    e.preventDefault();
    act("notes", { text: document.getElementById("note-text").value });
  });
}

// --- the moderators' review queue (live) and their actions ------------------------------------
function waited(since) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  return s >= 86400 ? `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
    : s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
    : s >= 60 ? `${Math.floor(s / 60)} min` : `${s} s`;
}

function renderAges() {
  for (const el of document.querySelectorAll("[data-since]")) el.textContent = waited(el.dataset.since);
}

function renderModQueue(rows) {
  const tbody = document.querySelector("#mod-queue tbody");
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.className = `priority-${r.priority}`;
    const link = document.createElement("a");
    link.href = `/mod/cases/${encodeURIComponent(r.id)}`;
    link.textContent = r.id;
    cell(tr, "").appendChild(link);
    cell(tr, r.kind);
    cell(tr, r.why);
    cell(tr, r.member);
    cell(tr, r.space);
    cell(tr, String(r.reports));
    const age = cell(tr, "");
    age.className = "age";
    age.dataset.since = r.raised;
    tbody.appendChild(tr);
  }
  document.getElementById("empty").hidden = rows.length > 0;
  renderAges();
}

function liveModQueue() {
  const live = document.getElementById("live");
  const source = new EventSource("/mod/events");
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.classList.remove("on"); });
  source.addEventListener("queue", (e) => renderModQueue(JSON.parse(e.data)));
}

function modActions() {
  const header = document.getElementById("mod-case") || document.getElementById("member");
  const error = document.getElementById("action-error");
  const act = async (url, payload) => {
    error.textContent = "";
    try {
      await json(url, { method: "POST", body: JSON.stringify(payload || {}) });
      window.location.reload();
    } catch (e) {
      error.textContent = e.message;
    }
  };
  const id = header.dataset.id;
  const member = header.dataset.member;
  document.getElementById("dismiss")?.addEventListener("click", () => act(`/api/mod/cases/${encodeURIComponent(id)}/dismiss`));
  document.getElementById("redact")?.addEventListener("click", () => act(`/api/mod/cases/${encodeURIComponent(id)}/redact`));
  document.getElementById("sanction")?.addEventListener("submit", (e) => {
    e.preventDefault();
    const duration = document.getElementById("sanction-duration").value.trim();
    act("/api/mod/sanctions", { user_id: member, case_id: id, kind: document.getElementById("sanction-kind").value,
      reason: document.getElementById("sanction-reason").value,
      ...(duration ? { duration } : {}), ...(document.getElementById("sanction-all").checked ? { scope: "*" } : {}) });
  });
  for (const kind of ["mute", "ban"]) {
    document.getElementById(`lift-${kind}`)?.addEventListener("click", () => act("/api/mod/sanctions/lift", { user_id: member, kind }));
  }
  for (const button of document.querySelectorAll(".appeal-decide")) {
    button.addEventListener("click", () => act(`/api/mod/appeals/${encodeURIComponent(button.dataset.appeal)}`,
      { lift: button.dataset.lift === "true" }));
  }
  document.getElementById("mod-note")?.addEventListener("submit", (e) => {
    e.preventDefault();
    act(`/api/mod/members/${encodeURIComponent(member)}/notes`, { text: document.getElementById("mod-note-text").value });
  });
}

// --- /join: a single-use sign-up code (or, with join.require_approval, a request to wait on) --
const JOIN_REQUEST = "hearth-join-request";  // this device's own pending request, so a reload waits on

function showToken(t) {
  document.getElementById("token").textContent = t.token;
  document.getElementById("homeserver").textContent = t.homeserver;
  document.getElementById("token-box").hidden = false;
  const pending = document.getElementById("pending");
  if (pending) pending.hidden = true;
}

async function pollRequest(id) {
  const error = document.getElementById("join-error");
  try {
    const r = await json(`/api/join/requests/${encodeURIComponent(id)}`);
    document.getElementById("reference").textContent = r.reference;
    if (r.status === "approved") {
      localStorage.removeItem(JOIN_REQUEST);
      showToken(r);
      return;
    }
    if (r.status === "refused") {
      localStorage.removeItem(JOIN_REQUEST);
      document.getElementById("pending").hidden = true;
      document.getElementById("refused").hidden = false;
      return;
    }
    document.getElementById("pending").hidden = false;
  } catch (e) {
    localStorage.removeItem(JOIN_REQUEST);
    error.textContent = `Your request is no longer waiting: ${e.message}`;
    return;
  }
  setTimeout(() => pollRequest(id), 3000);
}

async function getToken() {
  const error = document.getElementById("join-error");
  error.textContent = "";
  try {
    const t = await json("/api/join", { method: "POST", body: "{}" });
    if (t.request_id) {
      localStorage.setItem(JOIN_REQUEST, t.request_id);
      document.getElementById("get-token").disabled = true;
      pollRequest(t.request_id);
      return;
    }
    showToken(t);
  } catch (e) {
    error.textContent = `Could not get a code: ${e.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in")?.addEventListener("submit", signIn);
  document.getElementById("get-token")?.addEventListener("click", getToken);
  if (document.getElementById("pending") && localStorage.getItem(JOIN_REQUEST)) {
    pollRequest(localStorage.getItem(JOIN_REQUEST));
  }
  document.getElementById("sign-out")?.addEventListener("click", async () => {
    await json("/api/auth/sign-out", { method: "POST" }).catch(() => {});
    window.location.href = "/staff";
  });
  if (document.getElementById("queue")) liveQueue();
  if (document.getElementById("case")) caseActions();
  if (document.getElementById("mod-queue")) liveModQueue();
  if (document.getElementById("mod-case") || document.getElementById("member")) modActions();
  renderAges();
  setInterval(renderAges, 10000);
  renderSla();
  setInterval(renderSla, 1000);
});
