// Renders the drill-down from the embedded JSON; model text only ever goes through textContent.
(function () {
  "use strict";
  var holder = document.getElementById("drill-data");
  if (!holder) return;
  var data = JSON.parse(holder.textContent);
  var body = document.querySelector("#drill-table tbody");
  var search = document.getElementById("drill-search");
  var shown = document.getElementById("drill-shown");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("button[data-filter]"));
  var current = "all";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function longText(text) {  // short text inline, long text folded behind its first line
    if (text === null || text === undefined || text === "") return el("span", "muted", "\u2014");
    text = String(text);
    if (text.length <= 280) return el("div", "txt", text);
    var d = el("details"), s = el("summary", null, text.slice(0, 110).replace(/\s+/g, " ") + "\u2026");
    d.appendChild(s); d.appendChild(el("div", "txt", text));
    return d;
  }
  function answerCell(a) {
    var td = el("td");
    if (!a) { td.appendChild(el("span", "muted", "not evaluated")); return td; }
    td.appendChild(el("span", "ans " + (a.right ? "ok" : "bad"), "answer: " + (a.answer === null ? "none" : a.answer)));
    td.appendChild(longText(a.text));
    return td;
  }
  data.rows.forEach(function (r) {
    var tr = el("tr", "drill-row");
    tr.setAttribute("data-groups", r.groups.join(" "));
    tr.setAttribute("data-search", [r.id, r.question, r.draft, r.gold].join(" ").toLowerCase());
    tr.appendChild(el("td", "qid", r.id));
    var q = el("td"); q.appendChild(longText(r.question)); tr.appendChild(q);
    var d = el("td"); d.appendChild(longText(r.draft)); tr.appendChild(d);
    tr.appendChild(answerCell(r.strong));
    tr.appendChild(answerCell(r.ref));
    tr.appendChild(el("td", "gold", r.gold));
    var ul = el("ul", "sys"), td = el("td");
    r.systems.forEach(function (s) {
      var li = el("li", s.right ? "ok" : "bad", (s.right ? "\u2713 " : "\u2717 ") + s.name);
      li.title = "answer: " + (s.answer === null ? "none" : s.answer) + ", score " + s.score;
      ul.appendChild(li);
    });
    td.appendChild(ul); tr.appendChild(td);
    body.appendChild(tr);
  });

  function apply(filter) {
    if (!(filter in data.counts)) filter = "all";
    current = filter;
    var needle = search ? search.value.trim().toLowerCase() : "";
    var n = 0;
    Array.prototype.forEach.call(body.querySelectorAll("tr.drill-row"), function (tr) {
      var groups = tr.getAttribute("data-groups").split(" ");
      var ok = (filter === "all" || groups.indexOf(filter) >= 0) &&
               (!needle || tr.getAttribute("data-search").indexOf(needle) >= 0);
      if (ok) { tr.removeAttribute("hidden"); n++; } else { tr.setAttribute("hidden", ""); }
    });
    buttons.forEach(function (b) {
      var on = b.getAttribute("data-filter") === filter;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    if (shown) shown.textContent = "showing " + n + " of " + data.rows.length;
  }
  function fromHash() {
    var m = /(?:^#|&)filter=([\w-]+)/.exec(location.hash);
    apply(m ? m[1] : "all");
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var f = b.getAttribute("data-filter");
      if (location.hash === "#filter=" + f) apply(f); else location.hash = "filter=" + f;  // linkable view
    });
  });
  if (search) search.addEventListener("input", function () { apply(current); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
