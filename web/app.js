// The explorer's entry point: hash routing between the views, the header's model line and the
// API-key button. Views live in their own modules and render into <main id="view">.
import { apiKey, get, setApiKey, withQuery } from "./api.js";
import { featureView } from "./feature.js";
import { featureListView } from "./features.js";
import { generateView } from "./generate.js";
import { runView } from "./run.js";

const view = document.getElementById("view");

// Navigates to path with params; re-renders when the hash is already that.
function go(path, params = {}) {
  const target = withQuery(path, params);
  if (location.hash === target) route();
  else location.hash = target;
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/features";
  const [path, query] = hash.split("?", 2);
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] || "features";
  document.querySelectorAll("nav a[data-section]").forEach((a) =>
    a.classList.toggle("active", a.dataset.section === section));
  window.scrollTo(0, 0);
  if (section === "feature" && parts[1] !== undefined) return featureView(view, parts[1], go);
  if (section === "run") return runView(view, params);
  if (section === "generate") return generateView(view, params, go);
  return featureListView(view, params, go);  // #/, #/features and anything unknown
}

async function showModel() {
  const line = document.getElementById("model-info");
  try {
    const m = await get("/api/model");
    const name = String(m.model || "").split("/").pop();
    const sae = m.sae ? `${m.sae.arch} SAE, d_sae ${m.sae.d_sae} at ${m.sae.hook}` : "no SAE";
    line.textContent = `${name} · ${sae}${m.db ? "" : " · no feature database"}`;
    line.title = m.model || "";
  } catch (e) {
    line.textContent = e.status === 401 ? "API key needed" : e.message;
  }
}

document.getElementById("key-button").addEventListener("click", () => {
  const key = prompt("API key (empty to forget it):", apiKey());
  if (key === null) return;
  setApiKey(key.trim());
  window.dispatchEvent(new Event("glassbox-key"));
});
// A new API key (from the button or an error box's form): reload what failed without one.
window.addEventListener("glassbox-key", () => {
  showModel();
  route();
});
window.addEventListener("hashchange", route);
showModel();
route();
