// Storage use and the retention policy (PROTOCOL 5.14, 5.15), shown to admins only.

import { announce, el, formatBytes, showError } from "./ui.js";

export class AdminPanel {
  constructor(session) {
    this.session = session;
    this.storage = document.getElementById("storage-facts");
    this.form = document.getElementById("retention-form");
    this.form.onsubmit = (event) => {
      event.preventDefault();
      this.#saveRetention();
    };
    this.form.elements.policy_type.onchange = () => this.#syncFields();
    document.getElementById("storage-refresh").onclick = () => this.#loadStorage();
    document.getElementById("cleanup").onclick = () => this.#cleanup();
  }

  async refresh() {
    await Promise.all([this.#loadStorage(), this.#loadRetention()]);
  }

  refreshStorage() {
    return this.#loadStorage();
  }

  async #loadStorage() {
    try {
      const info = await this.session.call("get_storage_info");
      const meter = el("meter", {
        id: "storage-meter", min: 0, max: 100, value: info.used_percent,
        low: info.warn_threshold, high: info.block_threshold, optimum: 0,
      }, `${info.used_percent}%`);
      const state = info.critical_space_warning ? "critical: recordings and snapshots are refused"
        : info.low_space_warning ? "low space" : "ok";
      this.storage.replaceChildren(
        el("label", { for: "storage-meter" }, `Disk used: ${Number(info.used_percent).toFixed(1)}% (${state})`),
        meter,
        el("dl", { class: "facts" },
          el("dt", {}, "Used"), el("dd", {}, `${formatBytes(info.used_space)} of ${formatBytes(info.total_space)}`),
          el("dt", {}, "Available"), el("dd", {}, formatBytes(info.available_space)),
          el("dt", {}, "Recordings"), el("dd", {}, `${info.recordings_count} (${formatBytes(info.recordings_size)})`),
          el("dt", {}, "Snapshots"), el("dd", {}, `${info.snapshots_count} (${formatBytes(info.snapshots_size)})`),
          el("dt", {}, "Thresholds"), el("dd", {}, `warn ${info.warn_threshold}%, block ${info.block_threshold}%`)),
      );
    } catch (error) {
      this.storage.replaceChildren(el("p", {}, `Storage information unavailable: ${error.message}`));
      showError(error);
    }
  }

  async #loadRetention() {
    try {
      const policy = await this.session.call("get_retention_policy");
      const fields = this.form.elements;
      fields.policy_type.value = policy.policy_type;
      fields.enabled.checked = Boolean(policy.enabled);
      if (policy.max_age_days !== undefined) fields.max_age_days.value = policy.max_age_days;
      if (policy.max_size_gb !== undefined) fields.max_size_gb.value = policy.max_size_gb;
      this.#syncFields();
    } catch (error) {
      showError(error);
    }
  }

  #syncFields() {
    const type = this.form.elements.policy_type.value;
    document.getElementById("age-field").hidden = type !== "age";
    document.getElementById("size-field").hidden = type !== "size";
  }

  async #saveRetention() {
    const fields = this.form.elements;
    const params = { policy_type: fields.policy_type.value, enabled: fields.enabled.checked };
    if (params.policy_type === "age") params.max_age_days = Number(fields.max_age_days.value);
    if (params.policy_type === "size") params.max_size_gb = Number(fields.max_size_gb.value);
    try {
      const result = await this.session.call("set_retention_policy", params);
      announce(result.message || "Retention policy updated");
    } catch (error) {
      showError(error);
    }
  }

  async #cleanup() {
    try {
      const result = await this.session.call("cleanup_old_files");
      announce(`Cleanup: ${result.files_deleted} files deleted, ${formatBytes(result.space_freed)} freed`);
      this.session.onFilesChanged();
    } catch (error) {
      showError(error);
    }
    await this.#loadStorage();
  }
}
