// JSON-RPC 2.0 over the service's WebSocket (PROTOCOL 2): requests matched to responses by
// id, notifications re-dispatched as DOM events named after their method.

const CALL_TIMEOUT_MS = 30000;

export class RpcError extends Error {
  constructor(method, error) {
    super(error.message);
    this.method = method;
    this.code = error.code;
    this.data = error.data || {};
  }

  // What the page shows: the method, the server's message and code, and its reason.
  describe() {
    const reason = this.data.reason && this.data.reason !== this.message ? `: ${this.data.reason}` : "";
    const code = this.code !== undefined ? ` (${this.code})` : "";
    return `${this.method}: ${this.message}${code}${reason}`;
  }
}

export class RpcClient extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.ws = null;
  }

  // Resolves once the socket is open; rejects if it closes first.
  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => { opened = true; resolve(); };
      ws.onmessage = (event) => this.#receive(event.data);
      ws.onclose = (event) => {
        this.#failPending(new RpcError("connection", { message: "Connection lost", code: event.code }));
        if (opened) this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code } }));
        else reject(new Error(`cannot connect to ${this.url}`));
      };
    });
  }

  close() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.#failPending(new RpcError("connection", { message: "Connection closed" }));
      this.ws = null;
    }
  }

  call(method, params) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RpcError(method, { message: "Not connected" }));
    }
    const id = this.nextId++;
    const request = { jsonrpc: "2.0", method, id };
    if (params !== undefined) request.params = params;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(method, { message: "No answer from the service" }));
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, { method, resolve, reject, timer });
      this.ws.send(JSON.stringify(request));
    });
  }

  #receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // the service only sends JSON; anything else is not ours to interpret
    }
    for (const item of Array.isArray(message) ? message : [message]) {
      if (item.id === undefined && item.method) {
        this.dispatchEvent(new CustomEvent(item.method, { detail: item.params || {} }));
        continue;
      }
      const entry = this.pending.get(item.id);
      if (!entry) continue;
      this.pending.delete(item.id);
      clearTimeout(entry.timer);
      if (item.error) entry.reject(new RpcError(entry.method, item.error));
      else entry.resolve(item.result);
    }
  }

  #failPending(error) {
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new RpcError(entry.method, { message: error.message, code: error.code }));
    }
    this.pending.clear();
  }
}
