// The camera grid: one card per camera with its live MJPEG view, status, resolution and fps,
// kept current by camera_status_update / recording_status_update notifications (no polling),
// and, for operators, snapshot and record buttons.

import { announce, el, formatElapsed, showError, streamName, withToken } from "./ui.js";

export class CameraGrid {
  // session: {call(method, params), token, can(role), onSnapshot(), onRecordingChanged()}
  constructor(session) {
    this.session = session;
    this.list = document.getElementById("grid");
    this.cards = new Map(); // device -> card state
    this.generation = 0; // bumps the live-view URLs so a reconnect opens fresh streams
    this.ticker = setInterval(() => this.#tick(), 1000);
  }

  destroy() {
    clearInterval(this.ticker);
    for (const card of this.cards.values()) this.#stopView(card);
    this.cards.clear();
    this.list.replaceChildren();
  }

  // The full list (get_camera_list): after sign-in and after each reconnect.
  setAll(cameras) {
    this.generation++;
    const seen = new Set();
    for (const camera of cameras) {
      seen.add(camera.device);
      this.#upsert(camera, true);
    }
    for (const device of [...this.cards.keys()]) if (!seen.has(device)) this.#remove(device);
    this.#updateCount();
  }

  onStatus(params) {
    if (params.status === "DISCONNECTED") {
      this.#remove(params.device);
      announce(`${streamName(params.device)} disconnected`);
    } else {
      const isNew = !this.cards.has(params.device);
      this.#upsert(params, false);
      if (isNew) announce(`${streamName(params.device)} connected`);
    }
    this.#updateCount();
  }

  onRecording(params) {
    const card = this.cards.get(params.device);
    if (!card) return;
    if (params.status === "STARTED") {
      this.#setRecording(card, true, 0);
    } else if (params.status === "SEGMENT") {
      this.#setRecording(card, true, params.duration || 0);
    } else if (params.status === "STOPPED" || params.status === "FAILED") {
      this.#setRecording(card, false, 0);
      if (params.status === "FAILED") {
        showError(`Recording of ${streamName(params.device)} failed: ${params.reason || "unknown reason"}`);
      }
    }
  }

  #upsert(camera, fromList) {
    let card = this.cards.get(camera.device);
    if (!card) {
      card = this.#build(camera.device);
      this.cards.set(camera.device, card);
      this.#insertSorted(card);
    }
    const wasConnected = card.status === "CONNECTED";
    card.status = camera.status;
    card.fields.name.textContent = camera.name || "";
    card.fields.status.textContent = camera.status;
    card.fields.status.dataset.status = camera.status;
    card.fields.resolution.textContent = camera.resolution || "unknown";
    card.fields.fps.textContent = camera.fps ? String(camera.fps) : "unknown";
    card.img.alt = `Live view of ${card.name}${camera.name ? ` (${camera.name})` : ""}`;
    // Notifications carry no recording fields; only the list says whether one is running.
    if (fromList && camera.recording !== undefined) {
      this.#setRecording(card, Boolean(camera.recording), camera.elapsed_time || 0);
    }
    const connected = camera.status === "CONNECTED";
    if (connected && (fromList || !wasConnected)) this.#startView(card);
    else if (!connected) this.#stopView(card, `No live view: the camera is ${camera.status}`);
    if (card.buttons) for (const button of Object.values(card.buttons)) button.disabled = !connected;
  }

  #build(device) {
    const name = streamName(device);
    const titleId = `cam-${name}-title`;
    const fields = {
      name: el("span", { class: "camera-name" }),
      status: el("dd", { class: "status" }),
      resolution: el("dd"),
      fps: el("dd"),
    };
    const img = el("img", { class: "live", width: 640, height: 360, decoding: "async" });
    const note = el("p", { class: "view-note", hidden: true });
    img.addEventListener("error", () => {
      const src = img.getAttribute("src");
      if (!src) return;
      this.#stopView(card, "Live view unavailable");
      this.#explain(card, src);
    });
    const recState = el("p", { class: "rec-state", hidden: true });
    const node = el(
      "li",
      { class: "camera", "data-device": device, "data-name": name },
      el("article", { "aria-labelledby": titleId },
        el("div", { class: "view" }, img, note),
        el("h3", { id: titleId }, name, " ", fields.name),
        el("dl", { class: "facts" },
          el("dt", {}, "Status"), fields.status,
          el("dt", {}, "Resolution"), fields.resolution,
          el("dt", {}, "FPS"), fields.fps),
        recState),
    );
    const card = { device, name, node, img, note, fields, recState, status: null,
      recording: false, recordingSince: 0, busy: false, buttons: null };
    if (this.session.can("operator")) {
      card.buttons = {
        snapshot: el("button", { type: "button", class: "snapshot", onclick: () => this.#snapshot(card) },
          "Take snapshot"),
        record: el("button", { type: "button", class: "record", "aria-pressed": "false",
          onclick: () => this.#toggleRecording(card) }, "Start recording"),
      };
      node.querySelector("article").append(
        el("div", { class: "controls", role: "group", "aria-label": `${name} controls` },
          card.buttons.snapshot, card.buttons.record));
    }
    return card;
  }

  #insertSorted(card) {
    const number = (c) => Number(/\d+$/.exec(c.name)?.[0] ?? 0);
    const after = [...this.cards.values()].filter((c) => c !== card && c.node.isConnected)
      .sort((a, b) => number(a) - number(b)).find((c) => number(c) > number(card));
    this.list.insertBefore(card.node, after ? after.node : null);
  }

  #remove(device) {
    const card = this.cards.get(device);
    if (!card) return;
    this.#stopView(card);
    card.node.remove();
    this.cards.delete(device);
  }

  #startView(card) {
    card.note.hidden = true;
    card.img.hidden = false;
    card.img.src = withToken(`/stream/${card.name}.mjpeg`, this.session.token, { v: this.generation });
  }

  // Removing src ends the browser's request, so the service can release the capture.
  #stopView(card, why) {
    card.img.removeAttribute("src");
    card.img.hidden = true;
    if (why) {
      card.note.textContent = why;
      card.note.hidden = false;
    }
  }

  // An <img> cannot read an error response; ask once more to show the service's reason.
  async #explain(card, src) {
    try {
      const response = await fetch(src);
      if (response.ok) {
        response.body?.cancel();
        return;
      }
      const body = await response.json();
      card.note.textContent = `Live view unavailable: ${body.reason || body.error} (HTTP ${response.status})`;
    } catch {
      // the first message stands
    }
  }

  #setRecording(card, recording, elapsedSeconds) {
    card.recording = recording;
    card.recordingSince = performance.now() - elapsedSeconds * 1000;
    card.recState.hidden = !recording;
    card.node.classList.toggle("recording", recording);
    if (card.buttons) {
      card.buttons.record.textContent = recording ? "Stop recording" : "Start recording";
      card.buttons.record.setAttribute("aria-pressed", String(recording));
    }
    this.#tickCard(card);
  }

  #tick() {
    for (const card of this.cards.values()) if (card.recording) this.#tickCard(card);
  }

  #tickCard(card) {
    if (!card.recording) return;
    const elapsed = (performance.now() - card.recordingSince) / 1000;
    card.recState.textContent = `Recording ${formatElapsed(elapsed)}`;
  }

  async #snapshot(card) {
    const button = card.buttons.snapshot;
    button.disabled = true;
    try {
      const result = await this.session.call("take_snapshot", { device: card.device });
      announce(`Snapshot saved: ${result.filename}`);
      this.session.onSnapshot(result);
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = card.status !== "CONNECTED";
    }
  }

  async #toggleRecording(card) {
    if (card.busy) return;
    card.busy = true;
    const button = card.buttons.record;
    button.disabled = true;
    try {
      if (card.recording) {
        const result = await this.session.call("stop_recording", { device: card.device });
        this.#setRecording(card, false, 0);
        announce(`Recording stopped: ${result.filename} (${Math.round(result.duration)} s)`);
      } else {
        const result = await this.session.call("start_recording", { device: card.device });
        this.#setRecording(card, true, 0);
        announce(`Recording started: ${result.filename}`);
      }
      this.session.onRecordingChanged();
    } catch (error) {
      showError(error);
    } finally {
      card.busy = false;
      button.disabled = card.status !== "CONNECTED";
    }
  }

  #updateCount() {
    const total = this.cards.size;
    document.getElementById("camera-count").textContent = `(${total})`;
    document.getElementById("no-cameras").hidden = total > 0;
  }
}
