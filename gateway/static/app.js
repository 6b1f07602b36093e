// The replate playground: one page that calls the public HTTP API with the key typed in (no build step, no CDN).
"use strict";

const KEY_STORAGE = "replate.apiKey";
const $ = (id) => document.getElementById(id);

const state = { operation: "replace", image: null, objectUrls: [] };

function init() {
  const demoKey = document.querySelector('meta[name="replate-demo-key"]').content;
  $("api-key").value = demoKey || localStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    localStorage.setItem(KEY_STORAGE, apiKey());
    refreshCredits();
  });
  $("show-key").addEventListener("click", toggleKeyVisibility);
  document.querySelectorAll('[role="tab"]').forEach((tab) => tab.addEventListener("click", () => selectTab(tab)));
  document.querySelectorAll('input[name="scene-source"]').forEach((radio) => {
    radio.addEventListener("change", showSceneSource);
  });
  $("image-input").addEventListener("change", (event) => chooseImage(event.target.files[0]));
  setUpDropZone($("drop-zone"));
  $("harmonize").addEventListener("input", () => ($("harmonize-value").textContent = $("harmonize").value));
  $("compare-slider").addEventListener("input", () => setSplit($("compare-slider").value));
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  setSplit(50);
  refreshCredits();
}

function apiKey() {
  return $("api-key").value.trim();
}

function toggleKeyVisibility() {
  const input = $("api-key");
  input.type = input.type === "password" ? "text" : "password";
  $("show-key").textContent = input.type === "password" ? "Show" : "Hide";
}

function selectTab(tab) {
  state.operation = tab.dataset.operation;
  document.querySelectorAll('[role="tab"]').forEach((other) => other.setAttribute("aria-selected", other === tab));
  $("replace-options").hidden = state.operation !== "replace";
  $("remove-options").hidden = state.operation !== "remove";
  hide("result");
  hide("error");
}

function sceneSource() {
  return document.querySelector('input[name="scene-source"]:checked').value;
}

function showSceneSource() {
  document.querySelectorAll("[data-source]").forEach((part) => (part.hidden = part.dataset.source !== sceneSource()));
}

function setUpDropZone(zone) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    chooseImage(event.dataTransfer.files[0]);
  });
  zone.addEventListener("click", (event) => {
    if (event.target === zone) $("image-input").click();
  });
}

function chooseImage(file) {
  if (!file) return;
  state.image = file;
  $("image-name").textContent = `${file.name} (${Math.round(file.size / 1024)} kB)`;
  hide("result");
  hide("error");
}

async function run() {
  hide("error");
  if (!state.image) return showError("Choose a photo first: drop it on the box or pick a file.");
  if (!apiKey()) return showError("Enter an API key: `replate serve` prints one, or `replate keys create`.");
  const stopProgress = startProgress();
  state.objectUrls.splice(0).forEach((url) => URL.revokeObjectURL(url));
  try {
    const result = state.operation === "replace" ? await replaceBackground() : await removeBackground();
    showResult(result);
  } catch (error) {
    showError(error.message);
  } finally {
    stopProgress();
  }
}

async function replaceBackground() {
  const body = {
    image_url: await readAsDataUrl(state.image),
    preserve_shadow: $("preserve-shadow").checked,
    num_outputs: Number($("num-outputs").value),
    output_format: $("output-format").value,
    harmonize: Number($("harmonize").value),
  };
  const source = sceneSource();
  if (source === "prompt") body.scene_prompt = $("prompt").value;
  if (source === "color") body.bg_color = $("bg-color").value;
  if (source === "reference") {
    const scene = $("scene-image-input").files[0];
    if (!scene) throw new Error("Choose a reference image for the scene.");
    body.scene_image_url = await readAsDataUrl(scene);
  }
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  if ($("mode").value) body.mode = $("mode").value;
  if ($("shadow").value) body.shadow = $("shadow").value;
  if ($("negative-prompt").value.trim()) body.negative_prompt = $("negative-prompt").value.trim();
  const response = await callApi("/v1/image/replace-background", {
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const result = await response.json();
  return {
    outputs: result.outputs,
    extension: body.output_format,
    info: `${result.width}×${result.height}, seed ${result.seed}, ${result.credits_charged} credits, ` +
      `engines: ${describeEngines(result.engines)}${result.notes.map((note) => `. ${note}`).join("")}`,
  };
}

async function removeBackground() {
  const form = new FormData();
  form.append("file", state.image);
  form.append("channels", $("channels").value);
  form.append("output_format", $("remove-format").value);
  const response = await callApi("/v1/remove-background", { body: form });
  const url = URL.createObjectURL(await response.blob());
  state.objectUrls.push(url);
  const headers = response.headers;
  return {
    outputs: [url],
    extension: $("remove-format").value,
    info: `${headers.get("x-width")}×${headers.get("x-height")}, ${headers.get("x-credits-charged")} credit, ` +
      `engines: ${describeEngines(Object.fromEntries(headers.get("x-engines").split(",").map((e) => e.split("="))))}`,
  };
}

async function callApi(path, init) {
  let response;
  try {
    response = await fetch(path, { method: "POST", ...init, headers: { ...init.headers, ...authHeaders() } });
  } catch (error) {
    throw new Error(`Could not reach the server: ${error.message}`);
  }
  showCredits(response.headers.get("x-remaining-credits"));
  if (!response.ok) throw new Error(await errorMessage(response));
  return response;
}

async function refreshCredits() {
  if (!apiKey()) return showCredits(null);
  try {
    const response = await fetch("/v1/credits", { headers: authHeaders() });
    showCredits(response.ok ? (await response.json()).available : null);
  } catch {
    showCredits(null);
  }
}

function authHeaders() {
  return { Authorization: `Bearer ${apiKey()}` };
}

async function errorMessage(response) {
  try {
    const { error } = await response.json();
    return `${error.message} (${error.code}, HTTP ${response.status})`;
  } catch {
    return `HTTP ${response.status} ${response.statusText}`;
  }
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`Could not read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

function startProgress() {
  const started = performance.now();
  const operation = state.operation === "replace" ? "Replacing the background" : "Removing the background";
  const tick = () => {
    $("progress-text").textContent = `${operation}… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  };
  tick();
  show("progress");
  $("run").disabled = true;
  const timer = setInterval(tick, 100);
  return () => {
    clearInterval(timer);
    hide("progress");
    $("run").disabled = false;
  };
}

function showResult(result) {
  const before = URL.createObjectURL(state.image);
  state.objectUrls.push(before);
  $("before-image").onload = () => {
    const { naturalWidth: width, naturalHeight: height } = $("before-image");
    $("compare").style.aspectRatio = `${width} / ${height}`;
    $("compare").style.maxWidth = `calc(75vh * ${width} / ${height})`; // the whole photo in view, no letterbox
  };
  $("before-image").src = before;
  showOutput(result.outputs[0]);
  $("thumbs").replaceChildren(...(result.outputs.length > 1 ? result.outputs.map(thumbnail) : []));
  $("downloads").replaceChildren(...result.outputs.map((url, index) => downloadLink(url, index, result.extension)));
  $("result-info").textContent = result.info;
  show("result");
}

function showOutput(url) {
  $("result-image").src = url;
}

function thumbnail(url, index) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "thumb";
  button.title = `Output ${index + 1}`;
  const image = document.createElement("img");
  image.src = url;
  image.alt = `output ${index + 1}`;
  button.append(image);
  button.addEventListener("click", () => showOutput(url));
  return button;
}

function downloadLink(url, index, extension) {
  const link = document.createElement("a");
  link.className = "button";
  link.href = url;
  link.download = `replate-${index + 1}.${extension}`;
  link.textContent = `Download ${index + 1}`;
  return link;
}

function setSplit(percent) {
  $("compare").style.setProperty("--split", `${percent}%`);
}

function describeEngines(engines) {
  return Object.entries(engines).map(([stage, engine]) => `${stage} ${engine}`).join(", ");
}

function showCredits(available) {
  $("credits").textContent = `Credits: ${available ?? "–"}`;
}

function showError(message) {
  $("error").textContent = message;
  show("error");
}

function show(id) {
  $(id).hidden = false;
}

function hide(id) {
  $(id).hidden = true;
}

init();
