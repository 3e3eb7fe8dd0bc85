// The search page: browse the gallery, choose a reference, type a modification, show the results.
// Plain JavaScript against the JSON API of cirlab.serve.app; every value from the server is placed with
// textContent or as an attribute, never as HTML.
//
// The two category filters are linked: choosing a gallery category searches in it too, choosing a search
// category shows its images in the gallery, and choosing a reference searches in the reference's category.
// A picked validation query fills the reference and the caption, searches, and marks its true target.
//
// A service started with --token needs it on every API request and image. The page takes it from its
// address (/#token=TOKEN, then removed from the address bar) or asks for it when the API answers 401, and
// keeps it in a same-site cookie, which the browser sends with fetches and <img> requests alike.
"use strict";

const PAGE_SIZE = 24;
const VALIDATION_PER_CATEGORY = 50;
const TOKEN_COOKIE = "cirlab_token";

const state = {
  offset: 0,
  total: 0,
  galleryRequest: 0, // number of the latest gallery request: an older answer arriving late is dropped
  category: "",
  reference: null, // {id, url} for a gallery image, or {file, url} for an upload
  limits: null,
  validation: [], // the validation queries offered, in the order of the picker's options
  picked: null, // the validation query last picked: {category, reference_id, caption, target_id, ...}
  askedForToken: false, // the token is asked for at most once per page load
};

const $ = (id) => document.getElementById(id);

function storeToken(token) {
  document.cookie = `${TOKEN_COOKIE}=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
}

// A token in the page's address (#token=TOKEN) is stored, and the address shown without it.
function takeTokenFromAddress() {
  const match = /^#(?:.*&)?token=([^&]*)/.exec(window.location.hash);
  if (!match) return;
  storeToken(decodeURIComponent(match[1]));
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
}

// The API answered 401: ask for the token once, store it and start the page again.
function askForToken() {
  if (state.askedForToken) return;
  state.askedForToken = true;
  const token = window.prompt("This search service needs an access token:");
  if (token && token.trim()) {
    storeToken(token.trim());
    window.location.reload();
  }
}

async function fetchJSON(url, options) {
  const response = await fetch(url, options);
  if (response.status === 401) askForToken();
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
  const request = ++state.galleryRequest;
  try {
    const page = await fetchJSON(`/api/gallery?${params}`);
    if (request !== state.galleryRequest) return;
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

function setSearchCategory(category) {
  const select = $("search-category");
  if ([...select.options].some((option) => option.value === category)) select.value = category;
}

function setGalleryCategory(category) {
  if (state.category === category) return;
  $("gallery-category").value = category;
  state.category = category;
  state.offset = 0;
  loadGallery();
}

function chooseGalleryReference(item) {
  clearError();
  $("reference-upload").value = "";
  setReference({ id: item.id, url: item.image_url }, `${item.id} · ${item.category}`);
  setSearchCategory(item.category);
  syncValidation();
}

// The true target of the search ``query`` ({reference_id, text}) when it is the picked validation query, else null.
function pickedTarget(query) {
  const picked = state.picked;
  if (!picked || query.reference_id !== picked.reference_id) return null;
  return query.text.trim() === picked.caption.trim() ? picked.target_id : null;
}

// Keep the picker's choice and its target line only while the query on the page is still that query.
function syncValidation() {
  const reference = state.reference && state.reference.id ? state.reference.id : null;
  const target = pickedTarget({ reference_id: reference, text: $("query-text").value });
  const line = $("validation-target");
  line.hidden = target === null;
  line.textContent = target === null ? "" : `true target: ${target}`;
  if (target === null) $("validation-query").value = "";
}

function chooseValidationQuery(index) {
  const query = state.validation[index];
  if (!query) return;
  clearError();
  $("reference-upload").value = "";
  state.picked = query;
  setReference({ id: query.reference_id, url: query.reference_url }, `${query.reference_id} · ${query.category}`);
  $("query-text").value = query.caption;
  setSearchCategory(query.category);
  syncValidation();
  $("search-form").requestSubmit();
}

async function loadValidationQueries(categories) {
  const select = $("validation-query");
  for (const category of categories) {
    const params = new URLSearchParams({ category, limit: VALIDATION_PER_CATEGORY });
    const page = await fetchJSON(`/api/validation-queries?${params}`);
    if (!page.items.length) continue;
    const group = document.createElement("optgroup");
    group.label = `${category} (${page.items.length} of ${page.total})`;
    for (const query of page.items) {
      const option = document.createElement("option");
      option.value = String(state.validation.length);
      option.textContent = `${query.reference_id}: ${query.caption}`;
      option.dataset.referenceId = query.reference_id;
      option.dataset.targetId = query.target_id;
      group.appendChild(option);
      state.validation.push(query);
    }
    select.appendChild(group);
  }
  $("validation-picker").hidden = state.validation.length === 0;
}

function chooseUpload(file) {
  clearError();
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    showError(`The file is ${file.size} bytes; the limit is ${state.limits.max_upload_bytes} bytes.`);
    $("reference-upload").value = "";
    return;
  }
  setReference({ file, url: URL.createObjectURL(file) }, `uploaded: ${file.name}`);
  syncValidation();
}

function renderResults(response) {
  const results = $("results");
  const target = pickedTarget(response.query);
  const items = response.results.map((hit) => {
    const lines = [
      ["rank", `#${hit.rank}`, "result-rank"],
      ["caption", hit.id, null],
      ["score", hit.score.toFixed(3), "result-score"],
      ["category", hit.category, null],
    ];
    if (hit.id === target) lines.push(["target-mark", "✓ true target", "result-target"]);
    const node = tile(hit, "result-item", lines);
    if (hit.id === target) node.classList.add("target");
    return node;
  });
  results.replaceChildren(...items);
  results.dataset.state = "done";
  results.dataset.count = String(items.length);
  const where = response.query.category ? ` in ${response.query.category}` : "";
  $("results-summary").textContent = `${items.length} for “${response.query.text}”${where}`;
  const found = response.results.find((hit) => hit.id === target);
  let note = "";
  if (target !== null) note = found ? `· true target ${target} at #${found.rank}` : `· true target ${target} not shown`;
  $("results-target").textContent = note;
}

async function search(event) {
  if (event) event.preventDefault();
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
  takeTokenFromAddress();
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
    setGalleryCategory(event.target.value);
    setSearchCategory(event.target.value);
  });
  $("search-category").addEventListener("change", (event) => setGalleryCategory(event.target.value));
  $("query-text").addEventListener("input", syncValidation);
  $("validation-query").addEventListener("change", (event) => {
    if (event.target.value !== "") chooseValidationQuery(Number(event.target.value));
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
    if (info.validation_queries > 0) {
      await loadValidationQueries(info.categories).catch((error) => showError(`Validation queries: ${error.message}`));
    }
  } catch (error) {
    showError(`Cannot reach the service: ${error.message}`);
  }
  await loadGallery();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
