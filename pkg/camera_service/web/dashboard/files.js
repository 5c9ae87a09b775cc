// A paged file list (PROTOCOL 5.12/5.13): recordings or snapshots, newest first, with a
// download link, in-page playback for recordings and, for operators, delete with confirmation.

import { announce, confirmDialog, el, formatBytes, formatTime, showError, withToken } from "./ui.js";

const PAGE_SIZE = 10;

export class FileList {
  // kind: "recordings" | "snapshots"; session: {call, token, can(role)}; onPlay(file) or null
  constructor(kind, session, onPlay) {
    this.kind = kind;
    this.session = session;
    this.onPlay = onPlay;
    this.offset = 0;
    this.total = 0;
    this.root = document.getElementById(kind);
    this.body = this.root.querySelector("tbody");
    this.state = this.root.querySelector(".list-state");
    this.range = this.root.querySelector(".range");
    this.prev = this.root.querySelector(".prev");
    this.next = this.root.querySelector(".next");
    this.prev.onclick = () => this.show(Math.max(0, this.offset - PAGE_SIZE));
    this.next.onclick = () => this.show(this.offset + PAGE_SIZE);
    this.root.querySelector(".refresh").onclick = () => this.show(this.offset);
  }

  async show(offset = 0) {
    try {
      const page = await this.session.call(`list_${this.kind}`, { limit: PAGE_SIZE, offset });
      if (page.files.length === 0 && offset > 0 && page.total > 0) {
        return this.show(Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE));
      }
      this.offset = offset;
      this.total = page.total;
      this.body.replaceChildren(...page.files.map((file) => this.#row(file)));
      this.state.textContent = page.total === 0 ? `No ${this.kind} yet.` : "";
    } catch (error) {
      this.body.replaceChildren();
      this.total = 0;
      this.state.textContent = `Cannot list ${this.kind}: ${error.message}`;
      showError(error);
    }
    const last = Math.min(this.offset + PAGE_SIZE, this.total);
    this.range.textContent = this.total ? `${this.offset + 1}-${last} of ${this.total}` : "";
    this.prev.disabled = this.offset === 0;
    this.next.disabled = last >= this.total;
  }

  #row(file) {
    const href = withToken(file.download_url, this.session.token);
    const detail = this.kind === "recordings"
      ? (file.duration === null || file.duration === undefined ? "writing" : `${Number(file.duration).toFixed(1)} s`)
      : (file.resolution || "");
    const actions = el("td", { class: "actions" },
      el("a", { href, download: file.filename, "aria-label": `Download ${file.filename}` }, "Download"));
    if (this.onPlay) {
      actions.append(el("button", { type: "button", class: "play", "aria-label": `Play ${file.filename}`,
        onclick: () => this.onPlay(file) }, "Play"));
    }
    if (this.session.can("operator")) {
      actions.append(el("button", { type: "button", class: "delete danger", "aria-label": `Delete ${file.filename}`,
        onclick: () => this.#delete(file) }, "Delete"));
    }
    return el("tr", { "data-filename": file.filename },
      el("th", { scope: "row", class: "filename" }, file.filename),
      el("td", { class: "num" }, formatBytes(file.file_size)),
      el("td", {}, formatTime(file.modified_time)),
      el("td", {}, detail),
      actions);
  }

  async #delete(file) {
    const kind = this.kind === "recordings" ? "recording" : "snapshot";
    if (!(await confirmDialog(`Delete the ${kind} ${file.filename}? This cannot be undone.`, "Delete"))) return;
    try {
      await this.session.call(`delete_${kind}`, { filename: file.filename });
      announce(`Deleted ${file.filename}`);
      this.session.onFileDeleted();
    } catch (error) {
      showError(error);
    }
    await this.show(this.offset);
  }
}
