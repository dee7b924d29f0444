// The Junebug dashboard: a client of the JSON API, nothing more.
//
// Every view reads the API's ordinary routes (the page adds no route of its
// own) and polls them every POLL_MS while it is shown and the tab is visible.
// What the API says is put on the page as text nodes only (never as markup),
// so a channel label, message content or log line cannot become HTML.
// Fields a Junebug may not have yet (a channel's owner process, its queue
// per priority, whether it is paused) show as DASH; an action whose route
// this Junebug lacks shows the API's 404 in the banner.
"use strict";

(function () {
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const LOG_LINES = 30;
  const DASH = "\u2014";
  // The API's root: this page is served at <root>dashboard/.
  const ROOT = window.location.origin +
    window.location.pathname.replace(/dashboard\/.*$/, "");
  const RATES = [
    ["inbound_message_rate", "Inbound"], ["outbound_message_rate", "Outbound"],
    ["submitted_event_rate", "Submitted"], ["rejected_event_rate", "Rejected"],
    ["delivery_succeeded_rate", "Delivered"], ["delivery_failed_rate", "Delivery failed"],
    ["delivery_pending_rate", "Delivery pending"],
  ];
  const CHANNEL_TYPES = ["telnet", "smpp", "dmark", "http", "xmpp"];
  const NULLABLE = ["mo_url", "mo_url_auth_token", "amqp_queue", "status_url"];

  // -- DOM building (text only) ---------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else if (key === "dataset") {
        Object.assign(node.dataset, value);
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children) {
      if (child === null || child === undefined) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  function replace(node, ...children) {
    node.replaceChildren();
    append(node, children);
  }

  function byId(id) {
    return document.getElementById(id);
  }

  // -- reading values defensively --------------------------------------------

  function missing(value) {
    return value === null || value === undefined || value === "";
  }

  // A value as one line of text: DASH when absent.
  function text(value) {
    if (missing(value)) return DASH;
    if (typeof value === "number") {
      return Number.isInteger(value) ? String(value) : value.toFixed(2);
    }
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "string") return value;
    if (Array.isArray(value)) {
      return value.length ? value.map(text).join(", ") : DASH;
    }
    const parts = Object.entries(value).map(([key, item]) => {
      const shown = text(item);
      return `${key}: ${item && typeof item === "object" ? `(${shown})` : shown}`;
    });
    return parts.length ? parts.join(", ") : DASH;
  }

  function field(object, ...path) {
    let value = object;
    for (const key of path) {
      if (value === null || typeof value !== "object") return undefined;
      value = value[key];
    }
    return value;
  }

  function statusOf(channel) {
    return field(channel, "status") || {};
  }

  // "paused", "running", or DASH when the API does not say.
  function pausedText(channel) {
    const status = statusOf(channel);
    for (const value of [status.paused, channel && channel.paused]) {
      if (typeof value === "boolean") return value ? "paused" : "running";
    }
    return status.status === "paused" ? "paused" : DASH;
  }

  function owner(channel) {
    const value = field(channel, "status", "owner");
    if (value && typeof value === "object") {
      return value.id || value.process_id || value.name || value;
    }
    return value;
  }

  function levelNode(level) {
    const shown = missing(level) ? DASH : String(level);
    const known = ["ok", "degraded", "down", "paused"].includes(shown);
    return el("span", { class: known ? `level level-${shown}` : "level" }, shown);
  }

  const LEVELS = { 10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical" };

  function levelName(value) {
    return LEVELS[value] || text(value);
  }

  function time(value) {
    if (typeof value === "number") {
      return new Date(value * 1000).toISOString().replace("T", " ").slice(0, 19);
    }
    return text(value);
  }

  // -- the API -----------------------------------------------------------------

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(ROOT + path, options);
    } catch (error) {
      return { ok: false, status: 0, envelope: null, error: String(error) };
    }
    const envelope = await response.json().catch(() => null);
    const result = envelope ? envelope.result : undefined;
    return { ok: response.ok, status: response.status, envelope, result };
  }

  function channelPath(id, ...rest) {
    return ["channels", encodeURIComponent(id), ...rest].join("/");
  }

  // The API's answer to a failed request, as a title and its error lines.
  function problem(answer, what) {
    const envelope = answer.envelope || {};
    if (answer.status === 0) {
      return [`${what}: the API did not answer`, [answer.error]];
    }
    const code = missing(envelope.code) ? "" : ` ${envelope.code}`;
    const description = missing(envelope.description) ? "" : `: ${envelope.description}`;
    const errors = field(envelope, "result", "errors");
    const lines = Array.isArray(errors)
      ? errors.map((error) => {
        const where = Array.isArray(error.schema_path) && error.schema_path.length
          ? ` (at ${error.schema_path.join("/")})`
          : "";
        return `${text(error.message)}${where}`;
      })
      : [];
    const title = `${what} failed: ${answer.status}${code}${description}`;
    // A routing error's message repeats its description: say it once.
    const repeats = (line) => title.includes(line.replace(/^\d+ [^:]*: /, ""));
    return [title, lines.filter((line) => !repeats(line))];
  }

  // -- the banner ----------------------------------------------------------------

  function banner(kind, title, lines) {
    const node = byId("banner");
    node.className = kind;
    node.setAttribute("role", kind === "error" ? "alert" : "status");
    replace(
      node,
      el("div", {},
        el("strong", { id: "banner-title" }, title),
        lines && lines.length ? el("ul", {}, lines.map((line) => el("li", {}, line))) : null),
      el("button", { class: "close", type: "button", onclick: clearBanner }, "Dismiss"),
    );
    node.hidden = false;
  }

  function clearBanner() {
    const node = byId("banner");
    node.hidden = true;
    replace(node);
  }

  // Whether `answer` failed; if so the banner says why.
  function refused(answer, what) {
    if (answer.ok) return false;
    const [title, lines] = problem(answer, what);
    banner("error", title, lines);
    return true;
  }

  // -- polling -----------------------------------------------------------------

  let stopPolling = () => {};
  // Set just before navigating to keep the banner (what was just done).
  let keepBanner = false;

  function go(hash) {
    keepBanner = true;
    window.location.hash = hash;
  }

  // Run refresh now and every POLL_MS after the previous run ended (never two
  // at once), skipping runs while the tab is hidden.
  function poll(refresh) {
    let stopped = false;
    let timer = null;
    async function tick() {
      if (stopped) return;
      if (!document.hidden) {
        try {
          await refresh();
          byId("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
        } catch (error) {
          byId("updated").textContent = `update failed: ${error}`;
        }
      }
      if (!stopped) timer = window.setTimeout(tick, POLL_MS);
    }
    tick();
    return () => {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
    };
  }

  // -- views ---------------------------------------------------------------------

  // A table of rows, or one row saying `empty` when there are none.
  function table(id, headings, rows, empty) {
    return el("table", { id },
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows
        : el("tr", {}, el("td", { colspan: headings.length, class: "muted" }, empty))));
  }

  // A row of plain cells (nodes, or text).
  function tr(...cells) {
    return el("tr", {}, cells.map((cell) => el("td", {}, cell)));
  }

  function muted(...children) {
    return el("p", { class: "muted" }, ...children);
  }

  // Run `handler` instead of submitting `form` the browser's way.
  function onSubmit(form, handler) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      handler();
    });
  }

  function listOf(value) {
    return Array.isArray(value) ? value : [];
  }

  function channelRow(id, answer) {
    if (!answer.ok) {
      return el("tr", { dataset: { channelId: id } },
        el("td", { class: "label" }, el("a", { href: `#/channels/${encodeURIComponent(id)}` }, id)),
        el("td", { colspan: 8, class: "muted" }, problem(answer, "Reading the channel")[0]));
    }
    const channel = answer.result || {};
    const status = statusOf(channel);
    return el("tr", { dataset: { channelId: id } },
      el("td", { class: "label" },
        el("a", { href: `#/channels/${encodeURIComponent(id)}` },
          missing(channel.label) ? id : channel.label)),
      el("td", { class: "type" }, text(channel.type)),
      el("td", { class: "status" }, levelNode(status.status)),
      el("td", { class: "paused" }, pausedText(channel)),
      el("td", { class: "number inbound" }, text(status.inbound_message_rate)),
      el("td", { class: "number outbound" }, text(status.outbound_message_rate)),
      el("td", { class: "number submitted" }, text(status.submitted_event_rate)),
      el("td", { class: "queue" }, text(status.queue)),
      el("td", { class: "owner" }, text(owner(channel))));
  }

  function channelsView(main) {
    let page = 0;
    const body = el("tbody", {});
    const pager = el("div", { class: "pager" });
    const count = el("span", { id: "channel-count", class: "muted" });
    replace(main,
      el("h1", {}, "Channels ", count),
      el("table", { id: "channels-table" },
        el("thead", {}, el("tr", {},
          ["Channel", "Type", "Status", "Sending", "In /s", "Out /s", "Submitted /s",
            "Queue", "Owner"].map((h) => el("th", {}, h)))),
        body),
      pager,
      el("p", {}, el("a", { class: "button", href: "#/new" }, "New channel")));

    async function refresh() {
      const listed = await api("GET", "channels/");
      if (refused(listed, "Listing the channels")) return;
      const ids = listOf(listed.result).slice().sort();
      const pages = Math.max(1, Math.ceil(ids.length / PAGE_SIZE));
      page = Math.min(page, pages - 1);
      const shown = ids.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
      const answers = await Promise.all(shown.map((id) => api("GET", channelPath(id))));
      count.textContent = `(${ids.length})`;
      replace(body, shown.length
        ? shown.map((id, i) => channelRow(id, answers[i]))
        : el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No channels yet.")));
      replace(pager, pages > 1 ? [
        el("button", { type: "button", disabled: page === 0, onclick: () => { page -= 1; refresh(); } }, "Previous"),
        `page ${page + 1} of ${pages}`,
        el("button", { type: "button", disabled: page >= pages - 1, onclick: () => { page += 1; refresh(); } }, "Next"),
      ] : []);
    }
    return poll(refresh);
  }

  // A definition list of [name, value, id of the value (optional)].
  function facts(id, pairs) {
    return el("dl", { class: "facts", id }, pairs.map(([name, value, key]) => [
      el("dt", {}, name),
      el("dd", { id: key }, value instanceof Node ? value : text(value)),
    ]));
  }

  function componentsTable(status) {
    const components = status.components && typeof status.components === "object"
      ? Object.entries(status.components)
      : [];
    return table("components", ["Component", "Status", "Type", "Message", "Details"],
      components.map(([name, c]) => tr(name, levelNode(field(c, "status")),
        text(field(c, "type")), text(field(c, "message")), text(field(c, "details")))),
      "No component has reported a status.");
  }

  function logsTable(id, entries) {
    return table(id, ["Time", "Level", "Message"],
      entries.map((entry) => el("tr", {},
        el("td", {}, time(field(entry, "timestamp"))),
        el("td", {}, levelName(field(entry, "level"))),
        el("td", { class: "log-message" },
          entry && typeof entry === "object" && "message" in entry
            ? text(entry.message) : text(entry)))),
      "No log lines.");
  }

  function channelView(main, id) {
    const path = channelPath(id);
    const title = el("h1", {}, id);
    const overview = el("div", { id: "overview" });
    const components = el("div", {});
    const config = el("pre", { id: "channel-config" });
    const logs = el("div", { id: "logs" });
    const trace = el("div", { id: "trace" });
    const sendResult = el("p", { id: "send-result", class: "muted" });
    let traced = null;

    async function action(method, suffix, what, done) {
      const answer = await api(method, suffix ? `${path}/${suffix}` : path);
      if (refused(answer, what)) return;
      banner("info", `${what}: ${text(field(answer.envelope, "description"))}`, []);
      if (done) done(answer);
      else refresh();
    }

    // Deleting takes a second click, on the button the first one shows.
    const deleteButton = el("button", { id: "delete", type: "button", class: "danger",
      onclick: () => { confirmDelete.hidden = !confirmDelete.hidden; } }, "Delete");
    const confirmDelete = el("button", {
      id: "delete-confirm", type: "button", class: "danger", hidden: true,
      onclick: () => action("DELETE", "", "Deleting the channel", () => go("#/")),
    }, "Really delete this channel");

    const sendForm = el("form", { id: "send-form", class: "inline" },
      el("input", { name: "to", placeholder: "to", required: true }),
      el("input", { name: "content", placeholder: "content", size: 30 }),
      el("input", { name: "from", placeholder: "from (optional)" }),
      el("input", { name: "priority", placeholder: "priority (optional)", size: 8 }),
      el("button", { type: "submit", id: "send" }, "Send"));
    onSubmit(sendForm, async () => {
      const data = new FormData(sendForm);
      const body = { to: data.get("to"), content: data.get("content") };
      if (!missing(data.get("from"))) body.from = data.get("from");
      const priority = data.get("priority");
      if (!missing(priority)) {
        body.priority = /^-?\d+$/.test(priority) ? Number(priority) : priority;
      }
      const answer = await api("POST", `${path}/messages/`, body);
      if (refused(answer, "Sending the message")) return;
      const messageId = field(answer.result, "message_id");
      sendResult.textContent = `Sent: message ${text(messageId)}`;
      if (!missing(messageId)) {
        traceForm.elements.message_id.value = messageId;
        traced = messageId;
        await refreshTrace();
      }
    });

    const traceForm = el("form", { id: "trace-form", class: "inline" },
      el("input", { name: "message_id", placeholder: "message id", size: 38 }),
      el("button", { type: "submit", id: "trace-button" }, "Trace"));
    onSubmit(traceForm, async () => {
      const value = traceForm.elements.message_id.value.trim();
      traced = value || null;
      await refreshTrace();
    });

    replace(main,
      title,
      el("div", { class: "actions" },
        el("a", { class: "button", id: "edit", href: `#/channels/${encodeURIComponent(id)}/edit` }, "Edit"),
        el("button", { id: "restart", type: "button", onclick: () => action("POST", "restart", "Restarting the channel") }, "Restart"),
        el("button", { id: "pause", type: "button", onclick: () => action("POST", "pause", "Pausing the channel") }, "Pause"),
        el("button", { id: "resume", type: "button", onclick: () => action("POST", "resume", "Resuming the channel") }, "Resume"),
        deleteButton, confirmDelete),
      el("div", { class: "columns" },
        el("section", {}, el("h2", {}, "Status"), overview, el("h2", {}, "Components"), components),
        el("section", {}, el("h2", {}, "Config"), config)),
      el("h2", {}, "Send a test message"), sendForm, sendResult,
      el("h2", {}, "Message trace"), traceForm, trace,
      el("h2", {}, "Channel logs"), logs);

    async function refreshTrace() {
      if (traced === null) {
        replace(trace, muted("Enter a message id to see its events and logs."));
        return;
      }
      const messageId = traced;
      const [status, messageLogs] = await Promise.all([
        api("GET", channelPath(id, "messages", encodeURIComponent(messageId))),
        api("GET", channelPath(id, "messages", encodeURIComponent(messageId), "logs")),
      ]);
      if (messageId !== traced) return;
      const parts = [];
      if (status.ok) {
        const result = status.result || {};
        parts.push(facts("trace-facts", [
          ["Message", result.id, "trace-id"],
          ["Last event", result.last_event_type, "trace-last-event"],
          ["At", time(result.last_event_timestamp)],
        ]));
        parts.push(table("trace-events", ["Event", "Time", "Details"],
          listOf(result.events).map((e) => el("tr", {},
            el("td", { class: "event-type" }, text(field(e, "event_type"))),
            el("td", {}, text(field(e, "timestamp"))),
            el("td", {}, text(field(e, "event_details"))))),
          "No events yet."));
      } else {
        parts.push(el("p", { id: "trace-problem", class: "muted" },
          problem(status, "Reading the message status")[0]));
      }
      if (messageLogs.ok) {
        parts.push(el("h2", {}, "Message logs"), logsTable("trace-logs", listOf(messageLogs.result)));
      } else if (messageLogs.status === 404) {
        parts.push(el("p", { id: "trace-logs-missing", class: "muted" },
          "This Junebug keeps no logs by message id (the route answered 404)."));
      } else {
        parts.push(muted(problem(messageLogs, "Reading the message logs")[0]));
      }
      replace(trace, parts);
    }

    async function refresh() {
      const [answer, logAnswer] = await Promise.all(
        [api("GET", path), api("GET", `${path}/logs?n=${LOG_LINES}`)]);
      if (answer.status === 404) {
        replace(overview, el("p", { id: "gone" }, "This channel does not exist (any more)."));
        return;
      }
      if (refused(answer, "Reading the channel")) return;
      const channel = answer.result || {};
      const status = statusOf(channel);
      replace(title, missing(channel.label) ? id : channel.label, el("small", {}, id));
      replace(overview, facts("channel-facts", [
        ["Type", channel.type, "channel-type"],
        ["Status", levelNode(status.status), "channel-status"],
        ["Sending", pausedText(channel), "channel-paused"],
        ["Owner process", owner(channel), "channel-owner"],
        ["Queue", status.queue, "channel-queue"],
        ...RATES.map(([key, name]) => [`${name} /s`, status[key], `rate-${key}`]),
        ...["mo_url", "amqp_queue", "status_url"].map((key) => [key, channel[key]]),
        ["Rate limit", missing(channel.rate_limit_count) ? undefined
          : `${channel.rate_limit_count} per ${text(channel.rate_limit_window)} s`],
        ["Character limit", channel.character_limit],
      ]));
      replace(components, componentsTable(status));
      config.textContent = JSON.stringify(channel.config === undefined ? null : channel.config, null, 2);
      replace(logs, logAnswer.ok ? logsTable("channel-logs", listOf(logAnswer.result))
        : muted(problem(logAnswer, "Reading the logs")[0]));
      await refreshTrace();
    }
    return poll(refresh);
  }

  // -- create / modify ------------------------------------------------------------

  // The fields of POST /channels/ (schemas.CHANNEL_CREATE), by kind.
  const TEXT_FIELDS = ["label", "mo_url", "mo_url_auth_token", "amqp_queue", "status_url"];
  const NUMBER_FIELDS = ["rate_limit_count", "rate_limit_window", "character_limit"];
  const JSON_FIELDS = ["config", "metadata", "public_http"];

  function labelled(label, control) {
    return [el("label", { for: control.id }, label), control];
  }

  function formView(main, id) {
    const editing = id !== null;
    const form = el("form", { id: "channel-form", class: "panel", novalidate: true },
      labelled("type", el("input", { id: "f-type", name: "type", list: "channel-types" })),
      el("datalist", { id: "channel-types" }, CHANNEL_TYPES.map((t) => el("option", { value: t }))),
      TEXT_FIELDS.map((name) => labelled(name, el("input", { id: `f-${name}`, name }))),
      NUMBER_FIELDS.map((name) => labelled(name,
        el("input", { id: `f-${name}`, name, inputmode: "numeric" }))),
      JSON_FIELDS.map((name) => labelled(`${name} (JSON)`,
        el("textarea", { id: `f-${name}`, name, spellcheck: "false" }))),
      el("div", { class: "submit" },
        el("button", { type: "submit", class: "primary", id: "save" },
          editing ? "Save changes" : "Create channel")));
    if (!editing) form.elements.config.value = "{}";
    let original = {};

    replace(main,
      el("h1", {}, editing ? `Modify channel ${id}` : "New channel"),
      el("p", { class: "muted" },
        "The API checks what you submit against the same schema as any client's " +
        "request; its answer is shown above if it refuses."),
      form);

    if (editing) {
      api("GET", channelPath(id)).then((answer) => {
        if (refused(answer, "Reading the channel")) return;
        original = answer.result || {};
        form.elements.type.value = missing(original.type) ? "" : original.type;
        for (const name of [...TEXT_FIELDS, ...NUMBER_FIELDS]) {
          form.elements[name].value = missing(original[name]) ? "" : String(original[name]);
        }
        for (const name of JSON_FIELDS) {
          form.elements[name].value = original[name] === undefined
            ? "" : JSON.stringify(original[name], null, 2);
        }
      });
    }

    onSubmit(form, async () => {
      const body = {};
      const typed = form.elements.type.value.trim();
      if (typed || !editing) body.type = typed;
      for (const name of TEXT_FIELDS) {
        const value = form.elements[name].value.trim();
        if (value) body[name] = value;
        else if (editing && NULLABLE.includes(name) && !missing(original[name])) body[name] = null;
      }
      for (const name of NUMBER_FIELDS) {
        const value = form.elements[name].value.trim();
        // Anything that is not a whole number goes as typed: the API's
        // schema says what is wrong with it.
        if (value) body[name] = /^-?\d+$/.test(value) ? Number(value) : value;
      }
      for (const name of JSON_FIELDS) {
        const value = form.elements[name].value.trim();
        if (!value) continue;
        try {
          body[name] = JSON.parse(value);
        } catch (error) {
          banner("error", `${name} is not valid JSON`, [String(error.message || error)]);
          return;
        }
      }
      if (!editing && !("config" in body)) body.config = {};
      const answer = await api("POST", editing ? channelPath(id) : "channels/", body);
      if (refused(answer, editing ? "Modifying the channel" : "Creating the channel")) return;
      const saved = field(answer.result, "id") || id;
      banner("info", editing ? "Channel updated" : "Channel created", []);
      go(`#/channels/${encodeURIComponent(saved)}`);
    });
    return () => {};
  }

  // -- dead letters and processes ---------------------------------------------------

  function deadLettersView(main) {
    const list = el("div", { id: "dead-letters" });
    replace(main,
      el("h1", {}, "Dead letters"),
      el("p", { class: "muted" },
        "HTTP posts (mo_url, event_url, status_url) that gave up after their retries."),
      el("div", { class: "actions" },
        el("button", {
          id: "replay", type: "button",
          onclick: async () => {
            const answer = await api("POST", "dead-letters/http/replay");
            if (refused(answer, "Replaying the dead letters")) return;
            banner("info", `Replayed ${text(field(answer.result, "replayed"))} dead letters`, []);
            refresh();
          },
        }, "Replay all")),
      list);

    async function refresh() {
      const answer = await api("GET", "dead-letters/http?n=100");
      if (!answer.ok) {
        replace(list, muted(problem(answer, "Listing the dead letters")[0]));
        return;
      }
      replace(list, table("dead-letters-table",
        ["URL", "Attempts", "First attempt", "Last error", "Body"],
        listOf(answer.result).map((letter) => tr(
          text(field(letter, "url")),
          text(field(letter, "attempts")),
          time(field(letter, "first_attempt")),
          text(field(letter, "last_error")),
          el("code", {}, JSON.stringify(field(letter, "body")) || DASH))),
        "No dead letters."));
    }
    return poll(refresh);
  }

  function processesView(main) {
    const list = el("div", { id: "processes" });
    replace(main, el("h1", {}, "Processes"), list);

    async function refresh() {
      const answer = await api("GET", "processes/");
      if (answer.status === 404) {
        replace(list, el("p", { id: "processes-missing", class: "muted" },
          "This Junebug does not list its processes (GET /processes/ answered 404)."));
        return;
      }
      if (!answer.ok) {
        replace(list, muted(problem(answer, "Listing the processes")[0]));
        return;
      }
      const processes = listOf(answer.result);
      // Whatever a process record holds, one column per field.
      const keys = [...new Set(processes.flatMap((p) => Object.keys(p || {})))];
      replace(list, table("processes-table", keys.length ? keys : ["Process"],
        processes.map((p) => tr(...keys.map((key) => text(field(p, key))))),
        "No processes."));
    }
    return poll(refresh);
  }

  // -- routing ----------------------------------------------------------------------

  const VIEWS = [
    [/^#?\/?$/, (main) => channelsView(main), "nav-channels"],
    [/^#\/new$/, (main) => formView(main, null), "nav-new"],
    [/^#\/channels\/([^/]+)\/edit$/, (main, m) => formView(main, decodeURIComponent(m[1])), null],
    [/^#\/channels\/([^/]+)$/, (main, m) => channelView(main, decodeURIComponent(m[1])), null],
    [/^#\/dead-letters$/, (main) => deadLettersView(main), "nav-dead-letters"],
    [/^#\/processes$/, (main) => processesView(main), "nav-processes"],
  ];

  function route() {
    stopPolling();
    const main = byId("main");
    const hash = window.location.hash;
    document.querySelectorAll("header nav a").forEach((a) => a.classList.remove("current"));
    for (const [pattern, view, nav] of VIEWS) {
      const match = pattern.exec(hash);
      if (match) {
        if (nav) byId(nav).classList.add("current");
        main.dataset.view = nav || (hash.endsWith("/edit") ? "edit" : "channel");
        stopPolling = view(main, match);
        return;
      }
    }
    main.dataset.view = "unknown";
    replace(main, el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "Back to the channels")));
    stopPolling = () => {};
  }

  window.addEventListener("hashchange", () => {
    if (keepBanner) keepBanner = false;
    else clearBanner();
    route();
  });
  route();
})();
