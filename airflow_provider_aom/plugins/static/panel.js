// The AOM execution panel: reads the execution from the plugin's API and renders it with textContent only
// (nothing from AOM or Airflow is parsed as HTML). Buttons ask for confirmation in the page (the UI's iframe
// sandbox has no allow-modals, so window.confirm() is not available) and send one POST per confirmed press.
(function () {
  "use strict";
  var root = document.getElementById("aom-panel");
  var api = root.getAttribute("data-api");
  var query = "?map_index=" + encodeURIComponent(root.getAttribute("data-map-index") || "-1");
  var REFRESH_MS = 3000;
  var timer = null;
  var busy = false;
  var pending = null;
  var notice = null;
  var last = null;

  var STATUS_CLASS = {
    success: "s-success", fail: "s-fail", failed: "s-fail", cancel: "s-fail", timeout: "s-fail",
    approvalfailed: "s-fail", executing: "s-running", running: "s-running", pausing: "s-waiting",
    waitapproval: "s-waiting", skip: "s-other"
  };
  var VERB = { restart: "Restart", skip: "Skip", "continue": "Continue past", terminate: "Terminate" };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function badge(status) {
    var key = String(status || "").toLowerCase();
    return el("span", "badge " + (STATUS_CLASS[key] || ""), status || "unknown");
  }

  function when(iso) {
    if (!iso) { return "–"; }
    var date = new Date(iso);
    return isNaN(date.getTime()) ? "–" : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function seconds(value) {
    if (value === null || value === undefined) { return "–"; }
    return value < 60 ? value.toFixed(1) + " s" : Math.floor(value / 60) + " min " + Math.round(value % 60) + " s";
  }

  function schedule(ms) {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(load, ms);
  }

  function load() {
    timer = null;
    fetch(api + query, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(
          function (body) { return { status: response.status, body: body }; },
          function () { return { status: response.status, body: {} }; }
        );
      })
      .then(render, function () { render({ status: 0, body: { detail: "The api-server did not answer." } }); });
  }

  function render(answer) {
    var body = answer.body || {};
    root.replaceChildren();
    if (answer.status !== 200) {
      last = null;
      var text = body.detail || ("The panel's API answered " + answer.status + ".");
      if (answer.status === 401) { text = "Log in to Airflow to see the AOM execution."; }
      if (answer.status === 403) { text = "You may not read this DAG's task instances."; }
      root.appendChild(el("p", answer.status === 404 ? "muted" : "message error", text));
      if (answer.status === 0 || answer.status >= 424) { schedule(REFRESH_MS * 3); }
      return;
    }
    last = body;
    var header = el("div", "header");
    var title = el("div");
    title.appendChild(el("h1", null, "AOM workflow execution"));
    var ids = el("div", "ids muted", "workflow " + body.workflow_id + " · execution " + body.execution_id);
    title.appendChild(ids);
    header.appendChild(title);
    var state = el("div");
    state.appendChild(badge(body.status));
    state.appendChild(el("span", "muted", "  " + when(body.begin_time) + (body.end_time ? " → " + when(body.end_time) : "")));
    header.appendChild(state);
    if (body.console_url && /^https?:\/\//i.test(body.console_url)) {
      var link = el("a", null, "Open in the AOM console");
      link.href = body.console_url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      header.appendChild(link);
    }
    root.appendChild(header);
    if (body.approvers && body.approvers.length) {
      root.appendChild(el("p", "message", "Waits for approval by: " + body.approvers.join(", ")));
    }
    if (notice) { root.appendChild(el("p", "message " + notice.kind, notice.text)); }
    root.appendChild(timeline(body));
    if (body.nodes_not_shown) {
      root.appendChild(el("p", "muted", body.nodes_not_shown + " more node(s): see the AOM console."));
    }
    root.appendChild(buttons(body));
    if (pending) { root.appendChild(confirmation(body)); }
    if (body.running && !pending) { schedule(REFRESH_MS); }
  }

  function timeline(body) {
    var table = el("table");
    table.setAttribute("aria-label", "Nodes of the execution");
    var head = el("tr");
    ["Node", "Status", "Begin", "End", "Duration", "Timeline", "Output"].forEach(function (name) {
      head.appendChild(el("th", null, name));
    });
    var thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var tbody = el("tbody");
    var nodes = body.nodes || [];
    var now = Date.now();
    var start = null, stop = null;
    nodes.forEach(function (n) {
      var b = n.begin_time ? Date.parse(n.begin_time) : null;
      var e = n.end_time ? Date.parse(n.end_time) : (b !== null ? now : null);
      if (b !== null && (start === null || b < start)) { start = b; }
      if (e !== null && (stop === null || e > stop)) { stop = e; }
    });
    var span = start !== null && stop !== null && stop > start ? stop - start : 1;
    nodes.forEach(function (n) {
      var row = el("tr");
      row.setAttribute("data-node", n.node_id);
      row.appendChild(el("td", "ids", n.node_id));
      var status = el("td");
      status.appendChild(badge(n.status));
      row.appendChild(status);
      row.appendChild(el("td", "num", when(n.begin_time)));
      row.appendChild(el("td", "num", when(n.end_time)));
      row.appendChild(el("td", "num", seconds(n.duration_seconds)));
      var cell = el("td");
      var track = el("div", "track");
      var b = n.begin_time ? Date.parse(n.begin_time) : null;
      if (b !== null && start !== null) {
        var e = n.end_time ? Date.parse(n.end_time) : now;
        var bar = el("div", "bar " + (STATUS_CLASS[String(n.status).toLowerCase()] || ""));
        bar.style.left = (100 * (b - start) / span).toFixed(2) + "%";
        bar.style.width = Math.max(0.5, 100 * (e - b) / span).toFixed(2) + "%";
        track.appendChild(bar);
      }
      cell.appendChild(track);
      row.appendChild(cell);
      var output = el("td");
      output.appendChild(el("pre", "output", n.output || ""));
      row.appendChild(output);
      tbody.appendChild(row);
    });
    table.appendChild(tbody);
    return table;
  }

  function buttons(body) {
    var box = el("div", "actions");
    var list = body.actions || [];
    if (!body.may_act) {
      box.appendChild(el("span", "muted", "You may read this execution; acting on it needs edit access to the DAG's task instances."));
      return box;
    }
    if (!list.length) {
      box.appendChild(el("span", "muted", body.running ? "Nothing to act on now." : "The execution has ended."));
      return box;
    }
    list.forEach(function (action) {
      var button = el("button", action.action === "terminate" ? "danger" : "primary", action.label);
      button.type = "button";
      button.disabled = busy || pending !== null;
      button.addEventListener("click", function () {
        if (busy || pending) { return; }
        pending = action;
        if (timer) { clearTimeout(timer); timer = null; }
        render({ status: 200, body: last });
      });
      box.appendChild(button);
    });
    return box;
  }

  function confirmation(body) {
    var action = pending;
    var box = el("div", "confirm");
    box.setAttribute("role", "alertdialog");
    var what = action.action === "terminate"
      ? "Terminate execution " + body.execution_id + "? Its running nodes are cancelled."
      : VERB[action.action] + " node " + action.node_id + " of execution " + body.execution_id + "?";
    if (action.clears_task) { what += " The task instance is then cleared: its next try follows this execution."; }
    box.appendChild(el("p", null, what));
    var yes = el("button", action.action === "terminate" ? "danger" : "primary", "Confirm");
    yes.type = "button";
    var no = el("button", null, "Cancel");
    no.type = "button";
    yes.addEventListener("click", function () {
      if (busy) { return; }
      busy = true;
      yes.disabled = true;
      no.disabled = true;
      send(action);
    });
    no.addEventListener("click", function () {
      pending = null;
      render({ status: 200, body: last });
    });
    box.appendChild(yes);
    box.appendChild(document.createTextNode(" "));
    box.appendChild(no);
    return box;
  }

  function send(action) {
    fetch(api + "/actions" + query, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ action: action.action, node_id: action.node_id })
    })
      .then(function (response) {
        return response.json().then(
          function (b) { return { status: response.status, body: b }; },
          function () { return { status: response.status, body: {} }; }
        );
      }, function () { return { status: 0, body: { detail: "The api-server did not answer; look at the execution before pressing again." } }; })
      .then(function (answer) {
        busy = false;
        pending = null;
        if (answer.status === 200) {
          var r = answer.body.result || {};
          var text = VERB[r.action] + (r.node_id ? " " + r.node_id : "") + ": sent to AOM.";
          if (r.task_cleared) { text += " The task instance was cleared: its next try follows this execution."; }
          notice = { kind: "ok", text: text };
        } else {
          notice = { kind: "error", text: (answer.body && answer.body.detail) || ("The action failed (" + answer.status + ").") };
        }
        load();
      });
  }

  load();
})();
