// The search page: browse the gallery, choose a reference, type a modification, show the results.
// Plain JavaScript against the JSON API of cirlab.serve.app; every value from the server is placed with
// textContent or as an attribute, never as HTML.
"use strict";

const PAGE_SIZE = 24;

const state = {
  offset: 0,
  total: 0,
  category: "",
  reference: null, // {id, url} for a gallery image, or {file, url} for an upload
  limits: null,
};

const $ = (id) => document.getElementById(id);

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    const field = body && body.field ? `${body.field}: ` : "";
    throw new Error(`${field}${detail} (HTTP ${response.status})`);
  }
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  const box = $("error");
  box.textContent = "";
  box.hidden = true;
}

function fillCategories(select, categories) {
  for (const category of categories) {
    const option = document.createElement("option");
    option.value = category;
    option.textContent = category;
    select.appendChild(option);
  }
}

function tile(item, testid, extraLines) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "tile";
  button.setAttribute("data-testid", testid);
  button.dataset.id = item.id;
  button.title = `${item.id} (${item.category})`;
  const img = document.createElement("img");
  img.src = item.image_url;
  img.alt = item.id;
  img.loading = "lazy";
  button.appendChild(img);
  for (const [cls, text, lineTestid] of extraLines) {
    const line = document.createElement("span");
    line.className = cls;
    line.textContent = text;
    if (lineTestid) line.setAttribute("data-testid", lineTestid);
    button.appendChild(line);
  }
  button.addEventListener("click", () => chooseGalleryReference(item));
  return button;
}

async function loadGallery() {
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE_SIZE });
  if (state.category) params.set("category", state.category);
  const gallery = $("gallery");
  try {
    const page = await fetchJSON(`/api/gallery?${params}`);
    state.total = page.total;
    gallery.replaceChildren(...page.items.map((item) =>
      tile(item, "gallery-item", [["caption", item.id, null], ["category", item.category, null]])));
    const last = Math.min(state.offset + page.items.length, page.total);
    $("gallery-page").textContent = page.total ? `${state.offset + 1}–${last} of ${page.total}` : "no images";
    $("gallery-prev").disabled = state.offset === 0;
    $("gallery-next").disabled = last >= page.total;
  } catch (error) {
    showError(`Gallery: ${error.message}`);
  }
}

function setReference(reference, label) {
  if (state.reference && state.reference.file && state.reference.url) URL.revokeObjectURL(state.reference.url);
  state.reference = reference;
  const img = $("reference-image");
  img.src = reference.url;
  img.alt = label;
  img.hidden = false;
  $("reference").classList.remove("empty");
  $("reference").dataset.referenceId = reference.id || "";
  $("reference-label").textContent = label;
  for (const node of document.querySelectorAll(".tile.selected")) node.classList.remove("selected");
  if (reference.id) {
    for (const node of document.querySelectorAll(".tile")) {
      if (node.dataset.id === reference.id) node.classList.add("selected");
    }
  }
}

function chooseGalleryReference(item) {
  clearError();
  $("reference-upload").value = "";
  setReference({ id: item.id, url: item.image_url }, `${item.id} · ${item.category}`);
}

function chooseUpload(file) {
  clearError();
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    showError(`The file is ${file.size} bytes; the limit is ${state.limits.max_upload_bytes} bytes.`);
    $("reference-upload").value = "";
    return;
  }
  setReference({ file, url: URL.createObjectURL(file) }, `uploaded: ${file.name}`);
}

function renderResults(response) {
  const results = $("results");
  const items = response.results.map((hit) => tile(hit, "result-item", [
    ["rank", `#${hit.rank}`, "result-rank"],
    ["caption", hit.id, null],
    ["score", hit.score.toFixed(3), "result-score"],
    ["category", hit.category, null],
  ]));
  results.replaceChildren(...items);
  results.dataset.state = "done";
  results.dataset.count = String(items.length);
  const where = response.query.category ? ` in ${response.query.category}` : "";
  $("results-summary").textContent = `${items.length} for “${response.query.text}”${where}`;
}

async function search(event) {
  event.preventDefault();
  clearError();
  if (!state.reference) {
    showError("Choose a reference image first: click a gallery image or upload one.");
    return;
  }
  const text = $("query-text").value.trim();
  if (!text) {
    showError("Type how the reference should change.");
    return;
  }
  const form = new FormData();
  form.set("text", text);
  form.set("k", $("query-k").value || "10");
  const category = $("search-category").value;
  if (category) form.set("category", category);
  if (state.reference.id) form.set("reference_id", state.reference.id);
  else form.set("reference_image", state.reference.file, state.reference.file.name);

  const results = $("results");
  const button = $("search-button");
  results.dataset.state = "loading";
  button.disabled = true;
  try {
    renderResults(await fetchJSON("/api/search", { method: "POST", body: form }));
  } catch (error) {
    results.dataset.state = "error";
    showError(error.message);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  $("search-form").addEventListener("submit", search);
  $("reference-upload").addEventListener("change", (event) => {
    if (event.target.files.length) chooseUpload(event.target.files[0]);
  });
  $("gallery-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadGallery();
  });
  $("gallery-next").addEventListener("click", () => {
    if (state.offset + PAGE_SIZE < state.total) state.offset += PAGE_SIZE;
    loadGallery();
  });
  $("gallery-category").addEventListener("change", (event) => {
    state.category = event.target.value;
    state.offset = 0;
    loadGallery();
  });
  try {
    const info = await fetchJSON("/api/info");
    state.limits = info.limits;
    fillCategories($("gallery-category"), info.categories);
    fillCategories($("search-category"), info.categories);
    $("query-k").max = String(info.limits.max_k);
    $("query-text").maxLength = info.limits.max_text_chars;
    $("gallery-summary").textContent =
      `${info.gallery_size} ${info.split} images · ${info.categories.join(", ")} · ${info.model} (${info.dim}-d, ` +
      `${info.index_kind} index)`;
  } catch (error) {
    showError(`Cannot reach the service: ${error.message}`);
  }
  await loadGallery();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
