// The operator's dashboard. Everything an agent wrote (content, names,
// filter reasons that quote content) is hostile: it only ever reaches the
// page as text nodes, never as markup.
"use strict";

const FEED_ROWS = 200;
const RETRY_MS = 1000;

const $ = (id) => document.getElementById(id);

// An element with text children; strings never become markup.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function token() {
  return sessionStorage.getItem("switchboard-token") || "";
}

function headers(extra) {
  const all = Object.assign({}, extra);
  if (token()) all.Authorization = "Bearer " + token();
  return all;
}

function status(text, live) {
  const node = $("status");
  node.textContent = text;
  node.className = "status " + (live ? "live" : "down");
}

function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "";
}

function since(ms) {
  if (!ms) return "";
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

function askToken(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  status("needs a token", false);
}

async function readError(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch (_) {
    return response.status + " " + response.statusText;
  }
}

// --- snapshot: agents, chain, who talks to whom, permissions -------------

function renderAgents(agents) {
  const rows = agents.map((a) =>
    el("tr", { "data-name": a.name, "data-state": a.state },
      el("td", {}, a.name),
      el("td", {}, el("span", { class: "badge " + a.state }, a.state)),
      el("td", {}, since(a.since_ms)),
      el("td", { class: "num" }, a.waiting),
      el("td", { class: "num" }, a.sent),
      el("td", { class: "num" }, a.received)));
  $("agents").replaceChildren(...rows);
  $("online-names").replaceChildren(...agents
    .filter((a) => a.state !== "gone")
    .map((a) => el("option", { value: a.name })));
}

function renderChain(chain) {
  $("generation").textContent = chain.disabled
    ? "(off: --no-filters)"
    : "generation " + chain.generation;
  const rows = chain.filters.map((f) =>
    el("tr", { "data-filter": f.name },
      el("td", {}, f.name),
      el("td", { class: "num" }, f.accept),
      el("td", { class: "num" }, f.rewrite),
      el("td", { class: "num" }, f.reject),
      el("td", { class: "num" }, f.fault),
      el("td", { class: "num" }, f.mean_micros === null ? "" : f.mean_micros.toFixed(0))));
  $("chain").replaceChildren(...rows);
  const refused = $("refused");
  refused.hidden = !chain.refused;
  refused.textContent = chain.refused ? "Last reload refused: " + chain.refused : "";
}

function renderMatrix(pairs) {
  const senders = [...new Set(pairs.map((p) => p.from))].sort();
  const recipients = [...new Set(pairs.map((p) => p.to))].sort();
  const count = new Map(pairs.map((p) => [p.from + "\u0000" + p.to, p.messages]));
  const busiest = Math.max(1, ...pairs.map((p) => p.messages));
  const head = el("tr", {}, el("th", {}, "from \\ to"),
    ...recipients.map((to) => el("th", { class: "num" }, to)));
  const rows = senders.map((from) => el("tr", {}, el("th", {}, from),
    ...recipients.map((to) => {
      const n = count.get(from + "\u0000" + to) || 0;
      const cell = el("td", { class: "num" + (n * 2 >= busiest && n > 0 ? " hot" : "") }, n || "");
      return cell;
    })));
  $("matrix").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  $("matrix-empty").hidden = pairs.length > 0;
}

async function answer(id, behavior, item) {
  const response = await fetch("/v1/permissions/" + encodeURIComponent(id), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ behavior }),
  });
  const note = item.querySelector(".answer");
  note.textContent = response.ok ? behavior + " sent" : await readError(response);
  if (response.ok) item.querySelectorAll("button").forEach((b) => { b.disabled = true; });
}

function renderPermissions(pending) {
  $("relay-off").hidden = pending !== null;
  const list = pending || [];
  const items = list.map((p) => {
    const item = el("li", { "data-id": p.id },
      el("div", {}, el("strong", {}, p.agent || "an agent"), " asks to use ",
        el("code", {}, p.tool_name), el("span", { class: "muted" }, " · " + p.received_at)),
      el("div", {}, p.description),
      p.input_preview ? el("pre", {}, p.input_preview) : null);
    item.append(
      el("button", { class: "allow", onclick: () => answer(p.id, "allow", item) }, "Allow"),
      el("button", { class: "deny", onclick: () => answer(p.id, "deny", item) }, "Deny"),
      el("span", { class: "answer muted" }));
    return item;
  });
  // Keep items being answered (their note) rather than redrawing them.
  const current = new Map([...$("permissions").children].map((li) => [li.dataset.id, li]));
  $("permissions").replaceChildren(...items.map((item) => current.get(item.dataset.id) || item));
}

function renderSnapshot(snapshot) {
  $("who").textContent = "you: " + snapshot.operator;
  $("send-as").textContent = snapshot.operator;
  renderAgents(snapshot.agents);
  renderChain(snapshot.chain);
  renderMatrix(snapshot.pairs);
  renderPermissions(snapshot.permissions);
}

// --- the live feed --------------------------------------------------------

const shown = new Set();

async function reveal(id, cell, button) {
  const response = await fetch("/v1/dashboard/messages/" + encodeURIComponent(id), { headers: headers() });
  if (!response.ok) {
    cell.append(el("div", { class: "error" }, await readError(response)));
    return;
  }
  const body = await response.json();
  cell.append(el("pre", { class: "content" }, body.content + (body.clipped ? "\n[…cut]" : "")));
  button.remove();
}

function addVerdict(v) {
  if (shown.has(v.id)) return;
  shown.add(v.id);
  const verdict = v.outcome === "delivered" && v.rewritten_by && v.rewritten_by.length
    ? "rewritten" : v.outcome;
  const reason = el("td", { class: "reason" }, v.reason || (v.rewritten_by || []).join(", "));
  const button = el("button", { class: "reveal" }, "show");
  button.addEventListener("click", () => reveal(v.id, reason, button));
  const row = el("tr", { "data-id": v.id, "data-outcome": v.outcome },
    el("td", {}, time(v.at_ms)),
    el("td", {}, v.from + " → " + v.to),
    el("td", {}, v.kind),
    el("td", { class: "num" }, v.bytes),
    el("td", {}, el("span", { class: "badge " + verdict }, verdict)),
    el("td", { class: "filter" }, v.filter || ""),
    reason,
    el("td", {}, button));
  const feed = $("feed");
  feed.prepend(row);
  while (feed.children.length > FEED_ROWS) {
    shown.delete(feed.lastElementChild.dataset.id);
    feed.lastElementChild.remove();
  }
}

function handle(name, data) {
  const value = JSON.parse(data);
  if (name === "snapshot") renderSnapshot(value);
  else if (name === "recent") value.forEach(addVerdict);
  else if (name === "verdict") addVerdict(value);
  else if (name === "lagged") status("live (skipped " + value.skipped + " messages)", true);
}

// EventSource cannot send a bearer token, so the stream is read with fetch.
async function follow() {
  let response;
  try {
    response = await fetch("/v1/dashboard/events", { headers: headers({ Accept: "text/event-stream" }) });
  } catch (error) {
    status("disconnected; retrying", false);
    setTimeout(follow, RETRY_MS);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    askToken(await readError(response));
    return;
  }
  if (!response.ok) {
    status(await readError(response), false);
    setTimeout(follow, RETRY_MS);
    return;
  }
  $("login").hidden = true;
  status("live", true);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (_) {
      break;
    }
    if (chunk.done) break;
    buffer += chunk.value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) handle(name, data.join("\n"));
    }
  }
  status("disconnected; retrying", false);
  setTimeout(follow, RETRY_MS);
}

// --- sending as the operator ---------------------------------------------

async function send(event) {
  event.preventDefault();
  const result = $("send-result");
  const response = await fetch("/v1/dashboard/send", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ to: $("send-to").value.trim(), message: $("send-text").value }),
  });
  if (response.ok) {
    const body = await response.json();
    result.className = "muted";
    result.textContent = body.queued
      ? "Queued for " + body.queued_for + " (" + body.waiting + " waiting)"
      : "Delivered to " + body.delivered_to +
        (body.rewritten_by.length ? " (changed by " + body.rewritten_by.join(", ") + ")" : "");
    $("send-text").value = "";
  } else {
    result.className = "error";
    result.textContent = await readError(response);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("send").addEventListener("submit", send);
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("switchboard-token", $("token").value.trim());
    $("token").value = "";
    follow();
  });
  follow();
});
