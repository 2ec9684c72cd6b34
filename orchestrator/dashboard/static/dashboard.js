// redstep dashboard: live numbers, live execution pages, and the graph's state details.
// Plain script, no build step; every page works without it (only less live).
"use strict";

const LIVE_SECONDS = 2;

function byPath(object, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), object);
}

function formatSeconds(value) {
  if (typeof value !== "number") return "–";
  return value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

function liveOverview(root) {
  const refresh = async () => {
    try {
      const answer = await fetch(root.dataset.live, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) return;
      const numbers = await answer.json();
      numbers.workers.busy = numbers.workers.filter((worker) => worker.busy).length;
      for (const element of root.querySelectorAll("[data-key]")) {
        const key = element.dataset.key;
        if (key === "updated") { element.textContent = `Updated ${new Date().toLocaleTimeString()}.`; continue; }
        const value = key.endsWith(".length") ? byPath(numbers, key.slice(0, -7)).length : byPath(numbers, key);
        if (value === undefined) continue;
        const format = element.dataset.format;
        if (format === "seconds") element.textContent = formatSeconds(value);
        else if (format === "ago") element.textContent = value == null ? "–" : `${formatSeconds(value)} ago`;
        else element.textContent = String(value);
      }
    } catch (error) { /* the next round tries again */ }
  };
  setInterval(refresh, LIVE_SECONDS * 1000);
}

function showState(root, name) {
  const runs = JSON.parse(root.querySelector("#state-runs").textContent || "{}");
  const run = runs[name];
  root.querySelectorAll("svg.graph .state.selected").forEach((node) => node.classList.remove("selected"));
  const node = root.querySelector(`svg.graph .state[data-state="${CSS.escape(name)}"]`);
  if (node) node.classList.add("selected");
  root.querySelector("#state-name").textContent = name;
  root.querySelector("#state-hint").hidden = true;
  root.querySelector("#state-details").hidden = false;
  const set = (id, text) => { root.querySelector(id).textContent = text == null || text === "" ? "–" : text; };
  set("#state-status", run ? `${run.status} (entered ${run.visits} time(s))` : "not run");
  set("#state-retries", run ? String(run.retries) : "–");
  set("#state-input", run ? run.input : null);
  set("#state-output", run ? run.output : null);
  set("#state-error", run ? run.error : null);
  set("#state-cause", run ? run.cause : null);
}

function wireGraph(root) {
  let selected = null;
  root.addEventListener("click", (event) => {
    const node = event.target.closest && event.target.closest("svg.graph [data-state]");
    if (!node || !root.querySelector("#state-runs")) return;
    event.stopPropagation();
    selected = node.dataset.state;
    showState(root, selected);
  });
  root.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const node = event.target.closest && event.target.closest("svg.graph [data-state]");
    if (!node || !root.querySelector("#state-runs")) return;
    event.preventDefault();
    selected = node.dataset.state;
    showState(root, selected);
  });
  return () => selected;
}

function liveExecution(root, selectedState) {
  const refresh = async () => {
    try {
      const answer = await fetch(root.dataset.live, { credentials: "same-origin", cache: "no-store" });
      if (!answer.ok) return;
      const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-state]");
      root.innerHTML = await answer.text();
      const name = selectedState();
      if (name) showState(root, name);
      if (focused) {
        const again = root.querySelector(`svg.graph [data-state="${CSS.escape(focused.dataset.state)}"]`);
        if (again) again.focus();
      }
      const status = root.querySelector("[data-execution-status]");
      if (status && status.dataset.executionStatus !== "RUNNING") clearInterval(timer);
    } catch (error) { /* the next round tries again */ }
  };
  const timer = setInterval(refresh, LIVE_SECONDS * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const overview = document.getElementById("overview");
  if (overview && overview.dataset.live) liveOverview(overview);
  const live = document.getElementById("live");
  if (live) {
    const selected = wireGraph(live);
    if (live.dataset.live) liveExecution(live, selected);
  }
});
