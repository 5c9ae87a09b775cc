// The dashboard's entry point: sign-in, the WebSocket session with reconnect, and the parts
// (camera grid, file lists, admin panel) built for the signed-in role.

import { AdminPanel } from "./admin.js";
import { CameraGrid } from "./cameras.js";
import { FileList } from "./files.js";
import { RpcClient, RpcError } from "./rpc.js";
import { announce, clearErrors, showError, withToken } from "./ui.js";

// sessionStorage only: the token lives as long as this tab and is never written to disk.
const TOKEN_KEY = "camera-service.token";
const ROLE_LEVELS = { viewer: 1, operator: 2, admin: 3 };
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 15000;
const AUTH_FAILED = -32001;

const $ = (id) => document.getElementById(id);

class Session {
  constructor(token) {
    this.token = token;
    this.role = null;
    this.user = null;
    this.client = null;
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.ended = false;
    this.parts = null;
  }

  can(role) {
    return (ROLE_LEVELS[this.role] || 0) >= ROLE_LEVELS[role];
  }

  async call(method, params) {
    if (!this.client) throw new RpcError(method, { message: "Not connected" });
    try {
      return await this.client.call(method, params);
    } catch (error) {
      // An expired token or a revoked key: nothing will work until the user signs in again.
      if (error instanceof RpcError && error.code === AUTH_FAILED) this.#fail(error);
      throw error;
    }
  }

  // Back to sign-in, unless a newer session has taken over meanwhile.
  #fail(error) {
    if (session === this) end(error);
    else this.close();
  }

  async connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const client = new RpcClient(`${scheme}//${location.host}/ws`);
    setConnection("Connecting...");
    try {
      await client.open();
    } catch {
      return this.#retryLater();
    }
    if (this.ended) return client.close();
    let auth;
    try {
      auth = await client.call("authenticate", { auth_token: this.token });
    } catch (error) {
      client.close();
      if (error instanceof RpcError && error.code === AUTH_FAILED) return this.#fail(error);
      showError(error);
      return this.#retryLater();
    }
    if (this.ended) return client.close(); // signed out while authenticating
    this.client = client;
    this.retryMs = FIRST_RETRY_MS;
    client.addEventListener("close", () => {
      this.client = null;
      if (!this.ended) this.#retryLater();
    });
    client.addEventListener("camera_status_update", (e) => this.parts?.grid.onStatus(e.detail));
    client.addEventListener("recording_status_update", (e) => {
      this.parts?.grid.onRecording(e.detail);
      this.onRecordingChanged();
    });
    if (this.role !== auth.role) this.#build(auth.role);
    this.user = auth.user_id;
    setConnection(`Connected as ${this.user} (${this.role})`);
    await this.#loadAll();
  }

  #retryLater() {
    if (this.ended) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    setConnection(`Not connected; retrying in ${Math.round(wait / 100) / 10} s`);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  // The parts depend on the role: controls a role may not use are never created.
  #build(role) {
    this.#teardown();
    this.role = role;
    document.body.dataset.role = role;
    const parts = {
      grid: new CameraGrid(this),
      recordings: new FileList("recordings", this, (file) => play(this, file)),
      snapshots: new FileList("snapshots", this, null),
      admin: this.can("admin") ? new AdminPanel(this) : null,
    };
    this.parts = parts;
    $("admin").hidden = !parts.admin;
    $("sign-in").hidden = true;
    $("dashboard").hidden = false;
    $("sign-out").hidden = false;
    $("cameras-title").focus();
  }

  async #loadAll() {
    const { grid, recordings, snapshots, admin } = this.parts;
    const cameras = this.call("get_camera_list").then((r) => grid.setAll(r.cameras), showError);
    await Promise.all([cameras, recordings.show(recordings.offset), snapshots.show(snapshots.offset),
      admin?.refresh()]);
  }

  onSnapshot() {
    this.parts?.snapshots.show(0);
    this.parts?.admin?.refreshStorage();
  }

  // Several notifications may arrive together (stop + its response): list once.
  onRecordingChanged() {
    clearTimeout(this.recordingsTimer);
    this.recordingsTimer = setTimeout(() => {
      this.parts?.recordings.show(0);
      this.parts?.admin?.refreshStorage();
    }, 200);
  }

  onFilesChanged() {
    this.parts?.recordings.show(0);
    this.parts?.snapshots.show(0);
  }

  // A deletion changes the storage figures too.
  onFileDeleted() {
    this.parts?.admin?.refreshStorage();
  }

  #teardown() {
    this.parts?.grid.destroy();
    this.parts = null;
  }

  close() {
    this.ended = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.recordingsTimer);
    this.client?.close();
    this.client = null;
    this.#teardown();
  }
}

let session = null;

function setConnection(text) {
  $("conn").textContent = text;
}

function start(token) {
  session?.close();
  session = new Session(token);
  session.connect();
}

// Back to the sign-in form; `error` says why (a refused token, an expired session).
function end(error) {
  session?.close();
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stopPlayer();
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  delete document.body.dataset.role;
  setConnection("Signed out");
  if (error) showError(error);
  $("token").focus();
}

function play(owner, file) {
  const player = $("player");
  player.src = withToken(file.download_url, owner.token);
  $("player-title").textContent = file.filename;
  $("player-section").hidden = false;
  player.focus();
  player.play().catch(() => {}); // autoplay may be refused; the controls are there
}

function stopPlayer() {
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  $("player-section").hidden = true;
}

$("player").addEventListener("error", () => {
  const player = $("player");
  if (!player.getAttribute("src")) return;
  showError(`Cannot play ${$("player-title").textContent} here (${player.error?.message || "unsupported"}). ` +
    "Browsers play H.264 recordings (recording.codec = \"h264\"); use Download for MJPEG ones.");
});
$("player-close").addEventListener("click", stopPlayer);

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  clearErrors();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  start(token);
});

$("sign-out").addEventListener("click", () => {
  clearErrors();
  end(null);
  announce("Signed out");
});

const stored = sessionStorage.getItem(TOKEN_KEY);
if (stored) start(stored);
else $("token").focus();
