// The space page: live status, submitting without leaving the page, following requests.
// Everything from the app or the user is set with textContent, never innerHTML.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("space-config").textContent);
  const t = config.strings;
  const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

  // --- small helpers ---------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  }

  function csrfToken() {
    const input = document.querySelector("#request-form input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // A WebSocket that reconnects with exponential backoff and jitter.
  function liveSocket(path, handlers) {
    let socket = null;
    let attempt = 0;
    let stopped = false;
    let timer = null;
    function open() {
      socket = new WebSocket(wsBase + path);
      socket.addEventListener("open", () => {
        attempt = 0;
        if (handlers.open) handlers.open();
      });
      socket.addEventListener("message", (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        handlers.message(frame);
      });
      socket.addEventListener("close", (event) => {
        if (stopped) return;
        if (handlers.close && handlers.close(event) === false) return;
        const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
        attempt += 1;
        timer = setTimeout(open, delay);
      });
    }
    open();
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
        if (socket) socket.close();
      },
    };
  }

  // --- live status ----------------------------------------------------------------

  const badge = document.getElementById("app-status");
  const queueSize = document.getElementById("queue-size");
  const hubNotice = document.getElementById("hub-unreachable");
  const form = document.getElementById("request-form");
  const submitButton = document.getElementById("submit-button");
  const reason = document.getElementById("not-connected-reason");
  const formError = document.getElementById("form-error");
  let connected = config.connected;

  function showConnected(value) {
    connected = value;
    if (badge) {
      badge.textContent = value ? t.connected : t.not_connected;
      badge.classList.toggle("text-bg-success", value);
      badge.classList.toggle("text-bg-secondary", !value);
      badge.dataset.connected = String(value);
    }
    if (submitButton) submitButton.disabled = !value;
    if (reason) reason.hidden = value;
  }

  showConnected(connected);
  liveSocket(config.space_stream, {
    open() {
      if (hubNotice) hubNotice.hidden = true;
    },
    message(frame) {
      if (frame.type !== "space") return;
      showConnected(frame.connected);
      if (queueSize) queueSize.textContent = String(frame.queue_size);
    },
    close() {
      if (hubNotice) hubNotice.hidden = false;
    },
  });

  // --- following requests ---------------------------------------------------------

  const list = document.getElementById("requests");
  const cards = new Map();

  function errorText(error) {
    if (!error) return "";
    switch (error.code) {
      case "timed_out":
        return format(t.timed_out, { seconds: config.timeout_seconds });
      case "app_error":
        return format(t.app_error, { message: error.message });
      case "app_disconnected":
        return t.app_disconnected;
      case "cancelled":
        return t.cancelled;
      default:
        return error.message || error.code;
    }
  }

  function humanSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function renderFiles(container, files) {
    container.replaceChildren();
    for (const file of files || []) {
      const item = el("div", "result-file mb-2");
      const type = file.content_type || "";
      if (type.startsWith("image/")) {
        const img = el("img", "img-fluid rounded border d-block mb-1");
        img.src = file.url;
        img.alt = file.name;
        item.append(img);
      } else if (type.startsWith("audio/")) {
        const audio = el("audio", "d-block mb-1");
        audio.controls = true;
        audio.src = file.url;
        item.append(audio);
      } else if (type.startsWith("video/")) {
        const video = el("video", "d-block mb-1 mw-100");
        video.controls = true;
        video.src = file.url;
        item.append(video);
      }
      const link = el("a", "", file.name);
      link.href = file.url;
      link.download = file.name;
      item.append(link, el("span", "text-body-secondary small ms-2", `(${type}, ${humanSize(file.size)})`));
      container.append(item);
    }
  }

  class RequestCard {
    constructor(state) {
      this.id = state.id;
      const node = document.getElementById("request-template").content.firstElementChild.cloneNode(true);
      node.id = `request-${state.id}`;
      node.dataset.requestId = state.id;
      this.node = node;
      this.status = node.querySelector(".request-status");
      this.position = node.querySelector(".request-position");
      this.bar = node.querySelector(".progress-bar");
      this.progress = node.querySelector(".progress");
      this.message = node.querySelector(".request-message");
      this.text = node.querySelector(".result-text");
      this.files = node.querySelector(".result-files");
      this.error = node.querySelector(".request-error");
      this.cancel = node.querySelector(".cancel-button");
      this.when = node.querySelector(".request-when");
      this.cancel.addEventListener("click", () => this.doCancel());
      this.apply(state);
      this.socket = null;
    }

    apply(state) {
      this.state = state;
      this.setStatus(state.status, state.position);
      this.setProgress(state.progress, state.message);
      this.text.textContent = state.text || "";
      this.text.hidden = !state.text;
      if (state.outputs) this.showResult(state.outputs);
      this.error.textContent = errorText(state.error);
      this.error.hidden = !state.error;
      if (this.when && state.created_at) {
        this.when.textContent = new Date(state.created_at).toLocaleString(document.documentElement.lang || undefined);
      }
    }

    setStatus(status, position) {
      this.state.status = status;
      this.status.textContent = t.status[status] || status;
      this.status.dataset.status = status;
      this.node.dataset.status = status;
      const live = status === "queued" || status === "running";
      this.cancel.hidden = !live;
      this.position.hidden = status !== "queued" || !position;
      if (position) this.position.textContent = format(t.position, { position });
      this.progress.hidden = status !== "running";
      if (!live) this.message.hidden = true; // "done", "step 4/10": over now
    }

    setProgress(value, message) {
      if (value === null || value === undefined) {
        this.bar.classList.add("progress-bar-striped", "progress-bar-animated");
        this.bar.style.width = "100%";
        this.progress.setAttribute("aria-valuenow", "0");
      } else {
        this.bar.classList.remove("progress-bar-striped", "progress-bar-animated");
        this.bar.style.width = `${Math.round(value * 100)}%`;
        this.progress.setAttribute("aria-valuenow", String(Math.round(value * 100)));
      }
      this.message.textContent = message || "";
      this.message.hidden = !message;
    }

    showResult(outputs) {
      if (typeof outputs.text === "string") {
        this.text.textContent = outputs.text;
        this.text.hidden = !outputs.text;
      }
      renderFiles(this.files, outputs.files);
    }

    follow() {
      if (this.socket) return;
      this.socket = liveSocket(`/ws/requests/${this.id}/`, {
        message: (frame) => this.onFrame(frame),
        close: (event) => {
          // 1000: the request ended; 4403: not ours. Either way, nothing more to follow.
          if (event.code === 1000 || event.code === 4403) {
            this.socket = null;
            return false;
          }
          return true;
        },
      });
    }

    onFrame(frame) {
      switch (frame.type) {
        case "state":
          this.apply(frame.request);
          break;
        case "status":
          if (frame.status === "running") {
            this.text.textContent = "";
            this.text.hidden = true;
            this.setProgress(null, null);
          }
          this.setStatus(frame.status, frame.position);
          break;
        case "progress":
          this.setProgress(frame.progress, frame.message);
          break;
        case "partial":
          this.text.append(document.createTextNode(frame.text));
          this.text.hidden = false;
          break;
        case "result":
          this.setStatus("succeeded");
          this.showResult(frame.outputs || {});
          break;
        case "error":
        {
          const code = frame.error ? frame.error.code : "";
          this.setStatus(code === "timed_out" || code === "cancelled" ? code : "failed");
          this.error.textContent = errorText(frame.error);
          this.error.hidden = false;
          break;
        }
      }
    }

    async doCancel() {
      this.cancel.disabled = true;
      try {
        const response = await fetch(`/api/requests/${this.id}/cancel/`, {
          method: "POST",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
          credentials: "same-origin",
        });
        if (response.ok) this.apply(await response.json());
      } finally {
        this.cancel.disabled = false;
      }
    }
  }

  function addCard(state, atTop) {
    let card = cards.get(state.id);
    if (!card) {
      card = new RequestCard(state);
      cards.set(state.id, card);
      if (atTop) list.prepend(card.node);
      else list.append(card.node);
      const empty = document.getElementById("no-requests");
      if (empty) empty.hidden = true;
    }
    if (state.status === "queued" || state.status === "running") card.follow();
    return card;
  }

  for (const state of config.requests) addCard(state, false);

  // --- submitting -----------------------------------------------------------------

  function showFormError(message) {
    if (!formError) return;
    formError.textContent = message || "";
    formError.hidden = !message;
  }

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showFormError("");
      if (!connected) {
        showFormError(t.not_connected_reason);
        return;
      }
      submitButton.disabled = true;
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: new FormData(form),
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
          credentials: "same-origin",
        });
        let body = null;
        try {
          body = await response.json();
        } catch (err) {
          body = null;
        }
        if (response.status === 201 && body) {
          const now = new Date().toISOString();
          addCard({ id: body.id, status: "queued", position: body.position, text: "", created_at: now }, true);
          form.reset();
        } else if (body && body.error) {
          const fields = body.error.fields || {};
          const details = Object.values(fields).flat().join(" ");
          const refusedForNoApp = body.error.code === "app_not_connected";
          showFormError(refusedForNoApp ? t.not_connected_reason : `${body.error.message} ${details}`.trim());
          if (body.error.code === "app_not_connected") showConnected(false);
        } else {
          showFormError(format(t.http_error, { status: response.status }));
        }
      } catch (err) {
        showFormError(t.hub_unreachable);
      } finally {
        submitButton.disabled = !connected;
      }
    });
  }
})();
