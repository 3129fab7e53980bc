/* fazhi_flow — small progressive enhancements. Written for this project; MIT licence.
   Every page works without this file: confirmations also exist as pages, forms post normally. */
(function () {
  "use strict";

  // Ask before a form with data-confirm is sent (e.g. 提交审核, 撤回, 批量通过).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitting", "1");
  }, true);

  // Warn before leaving a page whose form has unsaved changes.
  var guarded = document.querySelectorAll("form[data-unsaved-warning]");
  Array.prototype.forEach.call(guarded, function (form) {
    var dirty = false;
    form.addEventListener("input", function () { dirty = true; });
    // The server has every typed character (autosave): nothing would be lost by leaving.
    form.addEventListener("fazhi:autosaved", function () { dirty = false; });
    window.addEventListener("beforeunload", function (event) {
      if (dirty && !form.getAttribute("data-submitting")) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  });

  // Live character count for a textarea with data-counter="<id of the output element>".
  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-counter]"), function (area) {
    var out = document.getElementById(area.getAttribute("data-counter"));
    var limit = parseInt(area.getAttribute("data-limit") || "0", 10);
    if (!out) { return; }
    function update() {
      var n = area.value.replace(/\s/g, "").length;
      out.textContent = limit ? ("已填写 " + n + " 字 / 建议不超过 " + limit + " 字") : ("已填写 " + n + " 字");
      out.classList.toggle("over", limit > 0 && n > limit);
    }
    area.addEventListener("input", update);
    update();
  });

  // Keep a copy of the editor's text in this browser until the server has it: if a save fails
  // (page expired, logged out elsewhere), the next visit offers to restore it.
  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-backup-key]"), function (area) {
    var key = "fazhi-draft:" + area.getAttribute("data-backup-key");
    var notice = document.getElementById(area.getAttribute("data-backup-notice") || "");
    var store;
    try { store = window.localStorage; } catch (e) { return; }
    if (!store) { return; }
    var kept = store.getItem(key);
    if (kept !== null && (kept === area.value || !kept.trim())) {
      store.removeItem(key);  // the server has this text already
    } else if (kept !== null && notice) {
      notice.hidden = false;
      notice.querySelector("[data-backup-restore]").addEventListener("click", function () {
        area.value = kept;
        area.dispatchEvent(new Event("input", { bubbles: true }));
        notice.hidden = true;
      });
      notice.querySelector("[data-backup-discard]").addEventListener("click", function () {
        store.removeItem(key);
        notice.hidden = true;
      });
    }
    area.addEventListener("input", function () {
      try { store.setItem(key, area.value); } catch (e) { /* storage full or disabled */ }
    });
    // The server saved exactly what is in the box: the copy here is no longer needed.
    area.addEventListener("fazhi:autosaved", function () { store.removeItem(key); });
  });

  // Autosave (自动保存): a few seconds after typing pauses (at most every ~10 s while typing goes on)
  // the editor posts the text with the version it was loaded at. The server checks the version: a
  // colleague's save in between is shown as a conflict and nothing is overwritten; the text stays in
  // the box and in this browser's copy above. The buttons keep working as before.
  Array.prototype.forEach.call(document.querySelectorAll("form[data-autosave-url]"), function (form) {
    var area = form.querySelector("textarea[name=body]");
    var version = form.querySelector("input[name=version]");
    var status = document.getElementById(form.getAttribute("data-autosave-status") || "");
    var alertBox = document.getElementById(form.getAttribute("data-autosave-alert") || "");
    if (!area || !version || !window.fetch || !window.FormData) { return; }
    var PAUSE = 3000, LONGEST = 10000, OFFLINE = "自动保存失败，内容已保存在本机浏览器";
    var timer = null, firstChange = 0, busy = false, pending = false, stopped = false, sent = area.value;

    function say(text, bad) {
      if (!status) { return; }
      status.textContent = text;
      status.classList.toggle("bad", !!bad);
    }
    function warn(text) {
      if (!alertBox) { return; }
      alertBox.textContent = "";
      var strong = document.createElement("strong");
      strong.textContent = "没有自动保存：";
      alertBox.appendChild(strong);
      alertBox.appendChild(document.createTextNode(text));
      alertBox.hidden = false;
    }
    function schedule(delay) {
      if (stopped) { return; }
      var now = Date.now();
      if (!firstChange) { firstChange = now; }
      window.clearTimeout(timer);
      // Debounced, but never later than LONGEST after the first unsaved change.
      timer = window.setTimeout(send, Math.max(0, Math.min(delay, firstChange + LONGEST - now)));
    }
    function send() {
      timer = null;
      if (stopped || form.getAttribute("data-submitting")) { return; }
      if (busy) { pending = true; return; }
      var text = area.value;
      firstChange = 0;
      if (text === sent) { return; }
      busy = true;
      var data = new FormData();
      data.append("body", text);
      data.append("version", version.value);
      var token = form.querySelector("input[name=csrf_token]");
      if (token) { data.append("csrf_token", token.value); }
      window.fetch(form.getAttribute("data-autosave-url"), {
        method: "POST", body: data, credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (answer) { return { status: response.status, answer: answer }; },
          function () { return { status: response.status, answer: null }; });
      }).then(function (result) {
        busy = false;
        var answer = result.answer || {};
        if (result.status === 200 && answer.version) {
          var old = version.value;
          // Every form of this page posting the draft's version (保存草稿, 以上年度文字开始起草 …).
          Array.prototype.forEach.call(document.querySelectorAll("input[name=version]"), function (input) {
            if (input.value === old) { input.value = String(answer.version); }
          });
          sent = text;
          say(answer.message);
          if (alertBox && !alertBox.hidden) { alertBox.hidden = true; }
          if (area.value === text) {
            area.dispatchEvent(new CustomEvent("fazhi:autosaved"));
            form.dispatchEvent(new CustomEvent("fazhi:autosaved"));
          }
        } else if (answer.message && result.status < 500) {
          say("没有自动保存", true);
          if (answer.kind === "conflict") {
            stopped = true;
            warn(answer.message + " 您填写的内容仍保留在下面的输入框中，也保存在本机浏览器。点“保存草稿”可以看到对方保存的版本，合并后再保存。");
          } else if (answer.kind === "invalid") {
            warn(answer.message + " 您填写的内容仍保留在下面，改正后会再自动保存。");
            sent = text;  // the same text would be refused again; the next change is tried
          } else {
            stopped = true;
            warn(answer.message + (answer.kind === "state" ? " 您填写的内容仍保留在下面，也保存在本机浏览器。请刷新页面查看材料的状态。" : ""));
          }
        } else {
          say(OFFLINE, true);
          schedule(LONGEST);  // tried again later, and at the next keystroke
        }
        if (release()) { return; }
        if (pending) { pending = false; schedule(0); }
      }, function () {
        busy = false;
        if (release()) { return; }
        say(OFFLINE, true);
        schedule(LONGEST);
        pending = false;
      });
    }
    // A button pressed while an autosave is on its way waits for its answer, so that the form posts the
    // version the server has just given (else the liaison would conflict with her own autosave).
    var held = null;
    form.addEventListener("submit", function (event) {
      window.clearTimeout(timer);
      if (busy) {
        event.preventDefault();
        held = { button: event.submitter || null };
      }
    });
    function release() {
      if (held === null) { return false; }
      var button = held.button;
      held = null;
      if (form.requestSubmit) { form.requestSubmit(button || undefined); } else { form.submit(); }
      return true;
    }
    area.addEventListener("input", function () { schedule(PAUSE); });
    window.addEventListener("online", function () { if (area.value !== sent) { schedule(0); } });
  });

  // A checkbox with data-check-all="<name>" ticks every checkbox of that name.
  Array.prototype.forEach.call(document.querySelectorAll("input[data-check-all]"), function (box) {
    var name = box.getAttribute("data-check-all");
    box.addEventListener("change", function () {
      Array.prototype.forEach.call(document.querySelectorAll('input[type=checkbox][name="' + name + '"]'), function (b) {
        b.checked = box.checked;
      });
    });
  });

  // On a phone (app.css) table rows become cards: each cell shows its column's heading, taken from
  // the table's <thead> (headings that are only for screen readers, e.g. 操作, are not repeated).
  // Explicit roles keep them a table for screen readers once CSS lays them out as blocks.
  function keepTableRoles(table) {
    table.setAttribute("role", "table");
    Array.prototype.forEach.call(table.querySelectorAll(":scope > thead, :scope > tbody, :scope > tfoot"), function (group) {
      group.setAttribute("role", "rowgroup");
      Array.prototype.forEach.call(group.rows, function (row) {
        row.setAttribute("role", "row");
        Array.prototype.forEach.call(row.cells, function (cell) {
          if (cell.tagName === "TD") { cell.setAttribute("role", "cell"); }
          else { cell.setAttribute("role", cell.getAttribute("scope") === "row" || group.tagName !== "THEAD" ? "rowheader" : "columnheader"); }
        });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("main table:not(.matrix):not(.gw-table):not(.unit-grid):not(.fig-summary)"), function (table) {
    var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!head) { return; }
    keepTableRoles(table);
    var labels = [];
    Array.prototype.forEach.call(head.cells, function (th) {
      var shown = th.querySelector(".sr-only") ? "" : th.textContent.replace(/\s+/g, " ").trim();
      for (var i = 0; i < (th.colSpan || 1); i += 1) { labels.push(shown); }
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          var label = labels[column];
          if (label && !cell.hasAttribute("data-label")) { cell.setAttribute("data-label", label); }
          column += cell.colSpan || 1;
        });
      });
    });
  });

  // A table too wide for the screen scrolls inside its wrapper (.table-wrap, the progress matrix, the
  // report sheet): make such a wrapper reachable by keyboard and give it a name, and undo that when
  // it fits again (resizing, rotating a phone).
  var wraps = document.querySelectorAll(".table-wrap, .matrix-wrap, .gw-sheet");
  function markScrollable() {
    Array.prototype.forEach.call(wraps, function (wrap) {
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        if (!wrap.hasAttribute("tabindex")) {
          var card = wrap.closest(".card, section");
          var heading = (card && card.querySelector("h1, h2, h3")) || document.querySelector("main h1");
          wrap.setAttribute("tabindex", "0");
          wrap.setAttribute("role", "region");
          wrap.setAttribute("aria-label", (heading ? heading.textContent.trim() + "：" : "") + "表格（可左右滚动）");
          wrap.setAttribute("data-scroll-marked", "1");
        }
      } else if (wrap.hasAttribute("data-scroll-marked")) {
        ["tabindex", "role", "aria-label", "data-scroll-marked"].forEach(function (a) { wrap.removeAttribute(a); });
      }
    });
  }
  if (wraps.length) {
    markScrollable();
    window.addEventListener("resize", markScrollable);
  }

  // A select with data-autosubmit sends its form when changed (the button stays for no-JS users).
  Array.prototype.forEach.call(document.querySelectorAll("select[data-autosubmit]"), function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // New cycle: the proposed title follows the chosen year (the year in it is replaced when the year
  // changes); the hidden data-title-year tells the server which year the title on the page is for.
  Array.prototype.forEach.call(document.querySelectorAll("input[data-year-title]"), function (title) {
    var form = title.form;
    var year = form && form.querySelector("input[name$='year']:not([type=hidden])");
    var shownFor = form && form.querySelector("input[data-title-year]");
    if (!year || !shownFor) { return; }
    function follow() {
      var from = (shownFor.value || "").trim(), to = year.value.trim();
      if (!/^(20\d\d|2100)$/.test(to) || !/^\d{4}$/.test(from) || from === to) { return; }
      var pattern = new RegExp("(^|\\D)" + from + "(?!\\d)", "g");
      if (pattern.test(title.value)) {
        title.value = title.value.replace(pattern, "$1" + to);
        shownFor.value = to;
      }
    }
    year.addEventListener("input", follow);
    year.addEventListener("change", follow);
  });
})();
