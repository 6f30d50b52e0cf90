// factory view: the little the pages do in the browser. Everything shown goes in as text (textContent),
// never as HTML: row content is untrusted model output.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// Review: marks are kept in this tab's sessionStorage while the reviewer pages through; saving sends them all.
function setupReview() {
  const form = document.getElementById("review-form");
  if (!form) return;
  const key = "factory-view-drops:" + form.dataset.ref;
  const load = () => { try { return new Set(JSON.parse(sessionStorage.getItem(key) || "[]")); } catch (e) { return new Set(); } };
  const boxes = () => Array.from(form.querySelectorAll("input.drop"));
  const remembered = load();
  boxes().forEach((b) => { if (remembered.has(b.value)) b.checked = true; });
  const marked = document.getElementById("marked");
  const update = () => {
    const marks = load();
    boxes().forEach((b) => { if (b.checked) marks.add(b.value); else marks.delete(b.value); });
    sessionStorage.setItem(key, JSON.stringify(Array.from(marks)));
    const here = boxes().filter((b) => b.checked).length;
    marked.textContent = marks.size + (marks.size === 1 ? " row" : " rows") + " marked to drop" +
      (marks.size > here ? " (" + (marks.size - here) + " on other pages)" : "");
    form.querySelectorAll("tr[data-row]").forEach((tr) => {
      const box = tr.querySelector("input.drop");
      tr.classList.toggle("dropped", !!(box && box.checked));
    });
  };
  form.addEventListener("change", update);
  form.addEventListener("submit", () => {
    const onPage = new Set(boxes().map((b) => b.value));
    for (const row of load()) {
      if (onPage.has(row)) continue;
      const hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "drop"; hidden.value = row;
      form.append(hidden);
    }
    sessionStorage.removeItem(key);
  });
  update();
}

// Runs: poll the JSON snapshot and redraw the tables.
function renderRuns(snap) {
  const body = document.querySelector("#writes tbody");
  body.replaceChildren();
  if (!snap.writes.length) {
    const tr = el("tr"); const td = el("td", "nothing is being written", "muted"); td.colSpan = 6;
    tr.append(td); body.append(tr);
  }
  for (const w of snap.writes) {
    const tr = el("tr");
    tr.append(el("td", w.name), el("td", w.version, "mono"), el("td", w.pid + " " + (w.alive ? "running" : "gone (left over)")),
              el("td", w.shards, "num"), el("td", w.rows, "num"), el("td", w.updated_s + " s ago"));
    body.append(tr);
  }
  const latest = document.getElementById("latest");
  latest.replaceChildren();
  for (const w of snap.writes) for (const r of w.latest) latest.append(el("pre", JSON.stringify(r, null, 2), "json"));
  const llm = document.getElementById("llm");
  if (snap.llm) {
    const l = snap.llm;
    llm.textContent = `${l.recent.answers} answers in the last ${l.window_s} s (${l.rate} req/s), ${l.recent.tokens} tokens, ` +
      `$${l.recent.usd.toFixed(4)}; last hour: ${l.hour.answers} answers, $${l.hour.usd.toFixed(4)}; ${l.answers} cached in all.`;
  }
}

function setupRuns() {
  const root = document.getElementById("runs");
  if (!root) return;
  const url = root.dataset.poll;
  const tick = async () => {
    try {
      const r = await fetch(url, { credentials: "same-origin" });
      if (r.ok) renderRuns(await r.json());
    } catch (e) { /* the server went away; keep the last picture */ }
  };
  setInterval(tick, 2000);
}

document.addEventListener("DOMContentLoaded", () => { setupReview(); setupRuns(); });
