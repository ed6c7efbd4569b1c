// The apps serve playground: one panel per served signature, chosen from what the
// signature takes and returns. Plain DOM, no framework; every value from a model or a
// user is inserted as text (textContent / text nodes), never as HTML.
"use strict";

let uniqueId = 0;

// An element with attributes; children are nodes or strings (strings become text nodes).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function nextId(prefix) {
  uniqueId += 1;
  return `${prefix}-${uniqueId}`;
}

// ------------------------------------------------------------------ which panel

const AUDIO_NAME = /audio|wav|sound|speech|waveform/i;
const ALIGNMENT_NAME = /^(alignments?|attention|attention_weights)$/;

function isString(spec) { return spec && spec.dtype === "string"; }
function isInteger(spec) { return spec && /^u?int/.test(spec.dtype); }
function isFloat(spec) { return spec && /^(float|double|half|bfloat)/.test(spec.dtype); }

function panelKind(signature) {
  const inputs = signature.inputs, outputs = signature.outputs;
  const names = Object.keys(inputs);
  const single = names.length === 1 && isString(inputs[names[0]]) ? names[0] : null;
  if (single && (AUDIO_NAME.test(single) || "transcript" in outputs)) return "audio";
  if (isString(inputs.prompt) && isString(outputs.text)) return "generation";
  if (isString(outputs.translation) || isString(outputs.translations)) return "translation";
  if (single && scoresOutput(signature)) return "classification";
  return "generic";
}

function scoresOutput(signature) {
  const outputs = signature.outputs;
  const preferred = ["probabilities", "scores", "probs", "logits"];
  for (const key of preferred.concat(Object.keys(outputs).sort())) {
    const spec = outputs[key];
    if (isFloat(spec) && spec.shape && spec.shape.length === 2) return key;
  }
  return null;
}

function streamable(signature) {
  return isString(signature.inputs.prompt) && isInteger(signature.inputs.max_tokens)
    && isString(signature.outputs.text);
}

// ------------------------------------------------------------------ requests

function modelPath(model) {
  return `/v1/models/${encodeURIComponent(model.name)}/versions/${model.version}`;
}

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function curlCommand(path, body, stream) {
  const url = `${location.origin}${path}`;
  const flags = stream ? "-sS -N" : "-sS";
  return `curl ${flags} -X POST ${shellQuote(url)} -H 'Content-Type: application/json' -d ${shellQuote(JSON.stringify(body))}`;
}

// One sentence for the panel: the server's own message, without TensorFlow's framing
// (an assertion's text when the graph refused the input), first line, not too long.
function sentence(message) {
  const full = String(message || "The request failed.");
  const asserted = full.match(/assertion failed: \[([^\]]*)\]/);
  const lines = full.split("\n").map((line) => line.trim()).filter(Boolean);
  const useful = lines.filter((line) =>
    !/^(Graph execution error|Detected at node|<stack traces|\[\[\{\{node)/.test(line));
  let text = asserted ? asserted[1] : (useful[0] || lines[0] || "The request failed.");
  text = text.replace(/\s*\[Op:[^\]]*\]\s*$/, "");
  return text.length > 400 ? `${text.slice(0, 397)}...` : text;
}

async function post(path, body, signal) {
  let response;
  try {
    response = await fetch(path, { method: "POST", body: JSON.stringify(body), signal,
      headers: { "Content-Type": "application/json" } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Error(`The server did not answer (${error.message}).`);
  }
  return response;
}

async function predict(path, body) {
  const response = await post(`${path}:predict`, body);
  let document;
  try {
    document = await response.json();
  } catch (error) {
    throw new Error(`The server answered ${response.status} without JSON.`);
  }
  if (!response.ok) throw new Error(sentence(document.error || `HTTP ${response.status}`));
  return document;
}

// The first row of a row-form answer as {output: value}.
function firstRow(document, signature) {
  const rows = document.predictions;
  const outputs = Object.keys(signature.outputs);
  const row = Array.isArray(rows) ? rows[0] : rows;
  if (outputs.length === 1 && (row === null || typeof row !== "object" || Array.isArray(row))) {
    return { [outputs[0]]: row };
  }
  return row;
}

// Server-sent events from a fetch body: calls onEvent(name, data) for each event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      onEvent(name, data ? JSON.parse(data) : {});
    }
  }
}

// ------------------------------------------------------------------ form pieces

function field(labelText, control, hint) {
  const id = control.id || nextId("field");
  control.id = id;
  const parts = [el("label", { for: id, text: labelText }), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(el("span", { class: "hint", id: hintId, text: hint }));
  }
  return el("div", { class: "field" }, ...parts);
}

function numberInput(name, value, step, min, max) {
  return el("input", { type: "number", name, value, step, min, max, inputmode: "decimal" });
}

function textArea(name, placeholder) {
  return el("textarea", { name, rows: 3, placeholder, spellcheck: "false" });
}

function readNumber(form, name, spec) {
  const control = form.elements[name];
  const value = control.value.trim();
  if (value === "") throw new Error(`Give a value for ${name}.`);
  const number = Number(value);
  if (!Number.isFinite(number)) throw new Error(`${name} must be a number.`);
  if (isInteger(spec) && !Number.isInteger(number)) throw new Error(`${name} must be a whole number.`);
  return number;
}

const DEFAULTS = {
  max_tokens: ["Max tokens", 80, 1, 0], temperature: ["Temperature", 0.8, 0.05, 0],
  top_k: ["Top-k (0: all)", 0, 1, 0], top_p: ["Top-p", 1, 0.05, 0, 1],
  seed: ["Seed", 1, 1, 0], beam_size: ["Beam size", 1, 1, 1],
  max_length: ["Max length", 100, 1, 0], n_best: ["N-best", 2, 1, 1],
  num_hypotheses: ["N-best", 2, 1, 1],
};

// Controls for every input but `skip`: numbers for numeric inputs, text otherwise.
function inputControls(signature, skip, defaults = {}) {
  const controls = [];
  for (const [name, spec] of Object.entries(signature.inputs)) {
    if (skip.includes(name)) continue;
    if (isInteger(spec) || isFloat(spec)) {
      const [title, value, step, min, max] = DEFAULTS[name] || [name, 0, isInteger(spec) ? 1 : "any"];
      const shown = name in defaults ? defaults[name] : value;
      controls.push(field(`${title}`, numberInput(name, shown, step, min, max), `${name}: ${spec.described}`));
    } else if (spec.dtype === "bool") {
      const box = el("input", { type: "checkbox", name, id: nextId("check") });
      controls.push(el("div", { class: "field" }, el("label", { class: "check", for: box.id }, box, name)));
    } else {
      controls.push(field(name, textArea(name, `${name} (${spec.described})`)));
    }
  }
  return controls;
}

function readInputs(form, signature, skip) {
  const values = {};
  for (const [name, spec] of Object.entries(signature.inputs)) {
    if (skip.includes(name)) continue;
    const control = form.elements[name];
    if (isInteger(spec) || isFloat(spec)) values[name] = readNumber(form, name, spec);
    else if (spec.dtype === "bool") values[name] = control.checked;
    else values[name] = control.value;
  }
  return values;
}

function requestBody(signatureName, signature, values) {
  const names = Object.keys(signature.inputs);
  const instance = names.length === 1 ? values[names[0]] : values;
  return { signature_name: signatureName, instances: [instance] };
}

// ------------------------------------------------------------------ panels

function panelShell(model, signatureName, signature, kind) {
  const headingId = nextId("panel");
  const inputs = Object.entries(signature.inputs).map(([k, s]) => `${k} ${s.described}`).join(", ");
  const outputs = Object.entries(signature.outputs).map(([k, s]) => `${k} ${s.described}`).join(", ");
  const panel = el("section", { class: `panel panel-${kind}`, "aria-labelledby": headingId,
    "data-model": model.name, "data-signature": signatureName, "data-kind": kind },
  el("h3", { id: headingId, text: `${signatureName} · ${kind}` }),
  el("p", { class: "signature-io", text: `${inputs} → ${outputs}` }));
  const form = el("form", { novalidate: true });
  const result = el("div", { class: "result", role: "status", "aria-live": "polite" });
  const error = el("p", { class: "error", role: "alert" });
  const curl = el("pre", { class: "curl-command", tabindex: 0 });
  const curlBox = el("details", { class: "curl" }, el("summary", { text: "Equivalent curl command" }), curl);
  curlBox.hidden = true;
  panel.append(form, error, result, curlBox);
  return { panel, form, result, error, curl, curlBox };
}

function showCurl(parts, command) {
  parts.curl.textContent = command;
  parts.curlBox.hidden = false;
}

function submitButton(text) {
  return el("button", { type: "submit", text });
}

// Ctrl+Enter (or Cmd+Enter) in a text box sends the form.
function submitOnCtrlEnter(form) {
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

function runPanel(parts, handler) {
  const button = parts.form.querySelector("button[type=submit]");
  parts.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    parts.error.textContent = "";
    button.disabled = true;
    try {
      await handler();
    } catch (error) {
      if (error.name !== "AbortError") parts.error.textContent = sentence(error.message);
    } finally {
      button.disabled = false;
    }
  });
  submitOnCtrlEnter(parts.form);
}

function classificationPanel(model, name, signature) {
  const parts = panelShell(model, name, signature, "classification");
  const textName = Object.keys(signature.inputs)[0];
  const box = textArea(textName, "Type a sentence to classify");
  parts.form.append(field("Text", box), el("div", { class: "buttons" }, submitButton("Classify")));
  const scoresKey = scoresOutput(signature);
  runPanel(parts, async () => {
    const body = requestBody(name, signature, { [textName]: box.value });
    showCurl(parts, curlCommand(`${modelPath(model)}:predict`, body));
    const row = firstRow(await predict(modelPath(model), body), signature);
    const scores = row[scoresKey];
    const labels = model.metadata.labels || scores.map((_, i) => `class ${i}`);
    let best = 0;
    scores.forEach((value, i) => { if (value > scores[best]) best = i; });
    const top = Math.max(...scores), bottom = Math.min(0, ...scores);
    const list = el("ul", { class: "bars", "aria-label": "Scores by label" });
    scores.forEach((value, i) => {
      const bar = el("div", { class: "bar" });
      bar.style.width = `${top > bottom ? (100 * (value - bottom)) / (top - bottom) : 0}%`;
      const item = el("li", { class: i === best ? "bar-row winner" : "bar-row", "data-label": labels[i] ?? i },
        el("span", { class: "bar-name", text: i === best ? `${labels[i] ?? i} ✓` : `${labels[i] ?? i}` }),
        el("div", { class: "bar-track", "aria-hidden": "true" }, bar),
        el("span", { class: "bar-value", text: String(value) }));
      list.append(item);
    });
    const others = Object.entries(row).filter(([k]) => k !== scoresKey)
      .map(([k, v]) => el("div", { class: "meta", "data-output": k }, `${k}: `, el("span", { class: "value", text: String(v) })));
    parts.result.replaceChildren(list, ...others);
  });
  return parts.panel;
}

function generationPanel(model, name, signature) {
  const parts = panelShell(model, name, signature, "generation");
  const prompt = textArea("prompt", "Start a text for the model to continue");
  const canStream = streamable(signature);
  const controls = inputControls(signature, ["prompt"]);
  const streamBox = el("input", { type: "checkbox", name: "stream", id: nextId("stream"), checked: canStream, disabled: !canStream });
  const stop = el("button", { type: "button", class: "secondary", text: "Stop", disabled: true });
  parts.form.append(field("Prompt", prompt), el("div", { class: "row" }, ...controls),
    el("div", { class: "buttons" }, submitButton("Generate"), stop,
      el("label", { class: "check", for: streamBox.id }, streamBox, "Show tokens as they are generated")));
  let controller = null;
  stop.addEventListener("click", () => { if (controller) controller.abort(); });
  runPanel(parts, async () => {
    const values = { prompt: prompt.value, ...readInputs(parts.form, signature, ["prompt"]) };
    const body = requestBody(name, signature, values);
    const output = el("div", { class: "output generated" });
    const stats = el("p", { class: "meta stats" });
    parts.result.replaceChildren(output, stats);
    if (!streamBox.checked) {
      showCurl(parts, curlCommand(`${modelPath(model)}:predict`, body));
      const row = firstRow(await predict(modelPath(model), body), signature);
      output.textContent = row.text;
      stats.textContent = "tokens" in row ? `${row.tokens} tokens` : "";
      return;
    }
    showCurl(parts, curlCommand(`${modelPath(model)}:stream`, body, true));
    controller = new AbortController();
    stop.disabled = false;
    output.textContent = values.prompt;
    let pieces = 0;
    try {
      const response = await post(`${modelPath(model)}:stream`, body, controller.signal);
      if (!response.ok) {
        const document = await response.json().catch(() => ({}));
        throw new Error(sentence(document.error || `HTTP ${response.status}`));
      }
      await readEvents(response, (event, data) => {
        if (event === "token") {
          pieces += 1;
          output.append(data.text);
          output.dataset.pieces = String(pieces);
        } else if (event === "done") {
          output.textContent = data.text;
          output.dataset.done = "true";
          stats.textContent = `${data.tokens} tokens in ${pieces} pieces`;
        } else if (event === "error") {
          throw new Error(sentence(data.error));
        }
      });
    } catch (error) {
      if (error.name === "AbortError") stats.textContent = "Stopped.";
      else throw error;
    } finally {
      stop.disabled = true;
      controller = null;
    }
  });
  return parts.panel;
}

function translationPanel(model, name, signature) {
  const parts = panelShell(model, name, signature, "translation");
  const textName = isString(signature.inputs.text) ? "text"
    : Object.keys(signature.inputs).find((k) => isString(signature.inputs[k]));
  const box = textArea(textName, "A sentence to translate");
  const controls = inputControls(signature, [textName], { beam_size: model.metadata.beam_size || 1 });
  parts.form.append(field("Source text", box), el("div", { class: "row" }, ...controls),
    el("div", { class: "buttons" }, submitButton("Translate")));
  runPanel(parts, async () => {
    const values = { [textName]: box.value, ...readInputs(parts.form, signature, [textName]) };
    const body = requestBody(name, signature, values);
    showCurl(parts, curlCommand(`${modelPath(model)}:predict`, body));
    const row = firstRow(await predict(modelPath(model), body), signature);
    const key = "translation" in row ? "translation" : "translations";
    const found = Array.isArray(row[key]) ? row[key] : [row[key]];
    const scoreKey = Object.keys(row).find((k) => /^scores?$/.test(k));
    const scores = scoreKey === undefined ? [] : (Array.isArray(row[scoreKey]) ? row[scoreKey] : [row[scoreKey]]);
    const list = el("ol", { class: "nbest", "aria-label": found.length > 1 ? "Best translations" : "Translation" });
    found.forEach((text, i) => list.append(el("li", {},
      el("span", { class: "output translation", text }),
      scores[i] === undefined ? null : el("span", { class: "meta score", text: `score ${scores[i]}` }))));
    const shown = [list];
    const alignmentKey = Object.keys(row).find((k) => ALIGNMENT_NAME.test(k));
    if (alignmentKey) shown.push(heatmap(row, alignmentKey));
    parts.result.replaceChildren(...shown);
  });
  return parts.panel;
}

// Attention weights [target, source] (or the best hypothesis' of [k, target, source]).
function heatmap(row, key) {
  let matrix = row[key];
  while (Array.isArray(matrix) && Array.isArray(matrix[0]) && Array.isArray(matrix[0][0])) matrix = matrix[0];
  const sourceTokens = row.source_tokens || (matrix[0] || []).map((_, i) => String(i + 1));
  const targetTokens = row.target_tokens || matrix.map((_, i) => String(i + 1));
  const top = Math.max(1e-9, ...matrix.flat());
  const table = el("table", { class: "heatmap", "aria-label": "Attention: target tokens by source tokens" });
  const head = el("tr", {}, el("th", { scope: "col", text: "" }));
  sourceTokens.forEach((token) => head.append(el("th", { scope: "col", text: String(token) })));
  table.append(el("thead", {}, head));
  const bodyRows = el("tbody");
  matrix.forEach((weights, t) => {
    const line = el("tr", {}, el("th", { scope: "row", text: String(targetTokens[t] ?? t + 1) }));
    weights.forEach((weight, s) => {
      const cell = el("td", { title: `${targetTokens[t] ?? t + 1} ← ${sourceTokens[s] ?? s + 1}: ${weight}` });
      cell.style.backgroundColor = `rgba(11, 92, 173, ${Math.max(0, weight) / top})`;
      line.append(cell);
    });
    bodyRows.append(line);
  });
  table.append(bodyRows);
  return el("figure", {}, el("figcaption", { class: "meta", text: "Where the attention looked" }), table);
}

function audioPanel(model, name, signature) {
  const parts = panelShell(model, name, signature, "audio");
  const inputName = Object.keys(signature.inputs)[0];
  const rate = model.metadata.sample_rate || 16000;
  const file = el("input", { type: "file", name: "audio-file", accept: ".wav,.flac,audio/wav,audio/x-wav,audio/flac" });
  const record = el("button", { type: "button", class: "secondary", text: "Record from the microphone" });
  const status = el("span", { class: "meta recording", role: "status" });
  parts.form.append(field("Audio file (WAV or FLAC)", file, `Sent as ${rate} Hz 16-bit mono WAV.`),
    el("div", { class: "buttons" }, submitButton("Transcribe"), record, status));
  let recorded = null;
  let recorder = null;
  file.addEventListener("change", () => { recorded = null; status.textContent = ""; });
  record.addEventListener("click", async () => {
    parts.error.textContent = "";
    if (recorder) { recorder.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
      recorder.addEventListener("stop", async () => {
        stream.getTracks().forEach((track) => track.stop());
        recorder = null;
        record.textContent = "Record from the microphone";
        try {
          recorded = await toWav(await new Blob(chunks).arrayBuffer(), rate);
          status.textContent = `Recorded ${(recorded.byteLength - 44) / 2 / rate} s.`;
          parts.form.requestSubmit();
        } catch (error) {
          parts.error.textContent = sentence(`The recording could not be converted: ${error.message}`);
        }
      });
      recorder.start();
      record.textContent = "Stop recording";
      status.textContent = "Recording…";
    } catch (error) {
      recorder = null;
      parts.error.textContent = sentence(`The microphone is not available: ${error.message}`);
    }
  });
  runPanel(parts, async () => {
    let wav = recorded;
    if (!wav) {
      if (!file.files.length) throw new Error("Choose a WAV or FLAC file, or record one.");
      wav = await prepareAudio(await file.files[0].arrayBuffer(), rate);
    }
    const body = requestBody(name, signature, { [inputName]: { b64: toBase64(wav) } });
    showCurl(parts, curlCommand(`${modelPath(model)}:predict`, body));
    const row = firstRow(await predict(modelPath(model), body), signature);
    const shown = [];
    for (const [key, value] of Object.entries(row)) {
      shown.push(el("div", { class: "meta", "data-output": key }, `${key}: `,
        el("span", { class: key === "transcript" ? "output transcript" : "value", text: String(value) })));
    }
    parts.result.replaceChildren(...shown);
  });
  return parts.panel;
}

// A WAV that is already 16-bit mono PCM at `rate` goes as it is; anything else the
// browser can decode (WAV of other kinds, FLAC, a recording) is converted.
async function prepareAudio(bytes, rate) {
  const view = new DataView(bytes);
  const text = (offset) => String.fromCharCode(...new Uint8Array(bytes, offset, 4));
  if (bytes.byteLength >= 44 && text(0) === "RIFF" && text(8) === "WAVE" && text(12) === "fmt "
      && view.getUint16(20, true) === 1 && view.getUint16(22, true) === 1
      && view.getUint32(24, true) === rate && view.getUint16(34, true) === 16) {
    return bytes;
  }
  return toWav(bytes, rate);
}

async function toWav(bytes, rate) {
  const decoder = new OfflineAudioContext(1, 1, rate);
  const decoded = await decoder.decodeAudioData(bytes.slice(0));
  const frames = Math.max(1, Math.ceil(decoded.duration * rate));
  const context = new OfflineAudioContext(1, frames, rate);
  const source = context.createBufferSource();
  source.buffer = decoded;
  source.connect(context.destination);
  source.start();
  const rendered = await context.startRendering();
  return encodeWav(rendered.getChannelData(0), rate);
}

function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const write = (offset, text) => { for (let i = 0; i < text.length; i += 1) view.setUint8(offset + i, text.charCodeAt(i)); };
  write(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); write(8, "WAVE");
  write(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); write(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((sample, i) => {
    view.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, Math.round(sample * 32768))), true);
  });
  return buffer;
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function genericPanel(model, name, signature) {
  const parts = panelShell(model, name, signature, "generic");
  parts.form.append(el("div", { class: "row" }, ...inputControls(signature, [])),
    el("div", { class: "buttons" }, submitButton("Send")));
  runPanel(parts, async () => {
    const body = requestBody(name, signature, readInputs(parts.form, signature, []));
    showCurl(parts, curlCommand(`${modelPath(model)}:predict`, body));
    const row = firstRow(await predict(modelPath(model), body), signature);
    const list = el("dl", { class: "outputs" });
    for (const [key, value] of Object.entries(row)) {
      list.append(el("dt", { text: key }), el("dd", { class: "value", "data-output": key,
        text: typeof value === "string" ? value : JSON.stringify(value) }));
    }
    parts.result.replaceChildren(list);
  });
  return parts.panel;
}

const PANELS = { classification: classificationPanel, generation: generationPanel,
  translation: translationPanel, audio: audioPanel, generic: genericPanel };

// ------------------------------------------------------------------ the page

function modelSection(model) {
  const id = `model-${model.name}`;
  const section = el("section", { class: "model", id, "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title`, text: model.name }));
  if (model.error) {
    section.append(el("p", { class: "error", text: sentence(model.error) }));
    return section;
  }
  const task = model.metadata.task ? `${model.metadata.task} · ` : "";
  section.append(el("p", { class: "about", text: `${task}version ${model.version} (loaded: ${model.versions.join(", ")})` }));
  const names = Object.keys(model.signatures).sort((a, b) =>
    (a === "serving_default" ? -1 : 0) - (b === "serving_default" ? -1 : 0) || a.localeCompare(b));
  for (const name of names) {
    const signature = model.signatures[name];
    section.append(PANELS[panelKind(signature)](model, name, signature));
  }
  return section;
}

async function main() {
  const summary = document.getElementById("summary");
  let listing;
  try {
    const response = await fetch("/ui/models.json");
    listing = await response.json();
  } catch (error) {
    summary.textContent = sentence(`The model list could not be read: ${error.message}`);
    return;
  }
  const models = listing.models;
  summary.textContent = models.length
    ? `${models.length} model${models.length > 1 ? "s" : ""} served: pick a panel, fill it in and send.`
    : "No model is served: export one into the model base path (apps <task> export).";
  const nav = document.getElementById("model-list");
  const main = document.getElementById("models");
  for (const model of models) {
    nav.append(el("li", {}, el("a", { href: `#model-${model.name}`, text: model.name })));
    main.append(modelSection(model));
  }
  document.body.dataset.ready = "true";
}

main();
