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
