// Small DOM helpers shared by the dashboard's parts: element building, formatting, the error
// region, the polite status line and the delete confirmation dialog.

import { RpcError } from "./rpc.js";

// el("button", {type: "button", class: "x", onclick: f}, "text", child...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit && value < 10 ? 1 : 0)} ${units[unit]}`;
}

// 75 -> "0:01:15"
export function formatElapsed(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${mm}:${ss}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

// The stream name of a device path: "/dev/video3" -> "camera3" (PROTOCOL 5).
export function streamName(device) {
  const match = /video(\d+)$/.exec(device);
  return match ? `camera${match[1]}` : device;
}

// A URL of the service with the token in the query, for <img>, <video> and links, which
// cannot send an Authorization header (PROTOCOL 7).
export function withToken(path, token, extra = {}) {
  const url = new URL(path, location.origin);
  url.searchParams.set("token", token);
  for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
  return url.pathname + url.search;
}

const MAX_ERRORS = 5;

// Errors go to a live region (role=alert) and stay until dismissed: never swallowed.
export function showError(error) {
  const text = error instanceof RpcError ? error.describe() : String(error.message || error);
  const list = document.getElementById("errors");
  const item = el(
    "li",
    {},
    el("span", {}, text),
    el("button", {
      type: "button", class: "link", "aria-label": "Dismiss this error",
      onclick: () => item.remove(),
    }, "Dismiss"),
  );
  list.append(item);
  while (list.children.length > MAX_ERRORS) list.firstElementChild.remove();
}

export function clearErrors() {
  document.getElementById("errors").replaceChildren();
}

export function announce(text) {
  document.getElementById("announce").textContent = text;
}

// Resolves true when the user confirms; a native <dialog> keeps focus inside and Escape cancels.
export function confirmDialog(text, action) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
