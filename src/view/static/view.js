// cliffprobe view: a little progressive enhancement; every page works without it.
(function () {
  "use strict";
  // Filter forms write only the filters that are set into the query string, so a URL holds
  // exactly the page's filters (shareable, and it survives a refresh).
  document.querySelectorAll("form[data-clean-query]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (typeof value === "string" && value.trim() !== "") params.append(key, value.trim());
      });
      var q = params.toString();
      window.location.assign(window.location.pathname + (q ? "?" + q : ""));
    });
  });
  // Filters shown in the form come from the URL: mark the page as rendered with them.
  var page = document.getElementById("page");
  if (page) {
    page.setAttribute("data-query", window.location.search.replace(/^\?/, ""));
    // Stored text is data: if anything in it ever ran as script it would have set
    // window.__pwned first, and the page would say so instead of marking itself ready.
    page.setAttribute("data-ready", window.__pwned === undefined ? "yes" : "pwned");
  }
})();
