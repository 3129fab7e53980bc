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

  // A checkbox with data-check-all="<name>" ticks every checkbox of that name.
  Array.prototype.forEach.call(document.querySelectorAll("input[data-check-all]"), function (box) {
    var name = box.getAttribute("data-check-all");
    box.addEventListener("change", function () {
      Array.prototype.forEach.call(document.querySelectorAll('input[type=checkbox][name="' + name + '"]'), function (b) {
        b.checked = box.checked;
      });
    });
  });

  // A select with data-autosubmit sends its form when changed (the button stays for no-JS users).
  Array.prototype.forEach.call(document.querySelectorAll("select[data-autosubmit]"), function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
