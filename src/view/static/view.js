// cliffprobe view: a little progressive enhancement; every page works without it.
(function () {
  "use strict";
  // The query string a filter form stands for: its fields that are set, in form order.
  function formQuery(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && value.trim() !== "") params.append(key, value.trim());
    });
    return params.toString();
  }
  // Filter forms write only the filters that are set into the query string, so a URL holds
  // exactly the page's filters (shareable, and it survives a refresh).
  var forms = document.querySelectorAll("form[data-clean-query]");
  forms.forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var q = formQuery(form);
      window.location.assign(window.location.pathname + (q ? "?" + q : ""));
    });
    // What submitting the form as rendered would ask for: the filters the page shows.
    form.setAttribute("data-form-query", formQuery(form));
  });
  var page = document.getElementById("page");
  if (page) {
    page.setAttribute("data-query", window.location.search.replace(/^\?/, ""));
    // Stored text is data: if anything in it ever ran as script it would have set
    // window.__pwned first, and the page would say so instead of marking itself ready.
    page.setAttribute("data-ready", window.__pwned === undefined ? "yes" : "pwned");
  }
})();
