// Dockyard catalog: progressive enhancement only. Every page works without this file.
"use strict";
(function () {
  // Search as you type: ask the server for the results block and swap it in.
  var input = document.getElementById("search");
  var form = document.getElementById("repo-search");
  if (input && form) {
    var timer = null, seq = 0;
    var refresh = function () {
      var params = new URLSearchParams(new FormData(form));
      if (!params.get("q")) params.delete("q");
      var url = "/ui/?" + params.toString();
      var mine = ++seq;
      params.set("fragment", "1");
      fetch("/ui/?" + params.toString(), { headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          if (mine !== seq) return; // an older answer arriving late
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("results");
          var old = document.getElementById("results");
          if (fresh && old) old.replaceWith(document.importNode(fresh, true));
          history.replaceState(null, "", url);
        })
        .catch(function () { /* keep the current list; the form still submits */ });
    };
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    });
    form.addEventListener("submit", function (e) { e.preventDefault(); clearTimeout(timer); refresh(); });
  }

  // Copy buttons: hidden without JavaScript (the command is selectable text then).
  var copyText = function (text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  };
  document.querySelectorAll("button.copy").forEach(function (b) { b.hidden = false; });
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.copy");
    if (!b) return;
    copyText(b.getAttribute("data-copy")).then(function () {
      b.classList.add("done"); b.textContent = "Copied";
      setTimeout(function () { b.classList.remove("done"); b.textContent = "Copy"; }, 1400);
    });
  });

  // docker pull / dockyard pull switch on the repository page.
  var chooser = document.querySelector(".pullwith");
  if (chooser) {
    chooser.hidden = false;
    var apply = function (tool) {
      document.querySelectorAll(".pull[data-docker]").forEach(function (p) {
        var cmd = p.getAttribute("data-" + tool);
        p.querySelector("code.cmd").textContent = cmd;
        p.querySelector("button.copy").setAttribute("data-copy", cmd);
      });
      try { localStorage.setItem("dockyard.pullwith", tool); } catch (err) { /* private mode */ }
    };
    chooser.addEventListener("change", function (e) { if (e.target.name === "pullwith") apply(e.target.value); });
    var saved = null;
    try { saved = localStorage.getItem("dockyard.pullwith"); } catch (err) { /* ignore */ }
    if (saved === "dockyard") { chooser.querySelector("input[value=dockyard]").checked = true; apply("dockyard"); }
  }
})();
