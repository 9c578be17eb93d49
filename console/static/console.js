// Warden console: small enhancements over server-rendered pages. Everything works without this
// file except live countdowns and passkeys; htmx (vendored) does the partial updates.
(function () {
  "use strict";

  function plural(n, unit) { return n + unit; }

  function remaining(seconds) {
    if (seconds <= 0) { return "expired"; }
    seconds = Math.ceil(seconds);  // "in 0m 1s" until the deadline itself, never "in 0m 0s"
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
        m = Math.floor(seconds % 3600 / 60), s = Math.floor(seconds % 60);
    var parts = [];
    if (d) { parts.push(plural(d, "d")); }
    if (d || h) { parts.push(plural(h, "h")); }
    if (!d) { parts.push(plural(m, "m")); }
    if (!d && !h) { parts.push(plural(s, "s")); }
    return "in " + parts.join(" ");
  }

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = parseFloat(el.getAttribute("data-expires")) - now;
      var text = remaining(left);
      if (el.textContent !== text) { el.textContent = text; }
      el.classList.toggle("soon", left > 0 && left < 300);
      el.classList.toggle("expired", left <= 0);
    });
  }

  function retitle() {
    var badge = document.getElementById("pending-badge");
    var base = document.body && document.body.getAttribute("data-title");
    if (!badge || !base) { return; }
    var count = parseInt(badge.getAttribute("data-count") || "0", 10);
    document.title = base + (count ? " (" + count + ")" : "") + " · Warden";
  }

  // ---- passkeys (WebAuthn) ------------------------------------------------------------------
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function csrf() {
    var headers = document.body.getAttribute("hx-headers");
    try { return JSON.parse(headers)["X-CSRF-Token"]; } catch (e) { return ""; }
  }
  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()}, body: JSON.stringify(body || {})})
      .then(function (r) {
        if (!r.ok) { return r.text().then(function (t) { throw new Error(t || r.statusText); }); }
        return r.json();
      });
  }
  function credentialJSON(cred) {
    var r = cred.response, out = {id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}, response: {
        clientDataJSON: bufToB64url(r.clientDataJSON)}};
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64url(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = bufToB64url(r.authenticatorData);
      out.response.signature = bufToB64url(r.signature);
      out.response.userHandle = r.userHandle ? bufToB64url(r.userHandle) : null;
    }
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    return out;
  }
  function say(el, text) {
    var box = el.querySelector(".passkey-message");
    if (!box) { box = document.createElement("p"); box.className = "error passkey-message"; box.setAttribute("role", "alert"); el.appendChild(box); }
    box.textContent = text;
  }

  // Approve with a passkey: fetch the options (challenge bound to this action), sign, submit.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-passkey-options]") || form.dataset.signed === "yes") { return; }
    event.preventDefault();
    event.stopImmediatePropagation();
    post(form.getAttribute("data-passkey-options")).then(function (options) {
      options.challenge = b64urlToBuf(options.challenge);
      (options.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
      return navigator.credentials.get({publicKey: options});
    }).then(function (cred) {
      form.querySelector("input[name=passkey]").value = JSON.stringify(credentialJSON(cred));
      form.dataset.signed = "yes";
      if (window.htmx) { window.htmx.trigger(form, "submit"); } else { form.submit(); }
    }).catch(function (err) { say(form, "The passkey did not sign: " + (err && err.message ? err.message : err)); });
  }, true);

  // Register a passkey on the account page.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-passkey-register]");
    if (!button) { return; }
    event.preventDefault();
    var url = button.getAttribute("data-passkey-register");
    post(url + "/options").then(function (options) {
      options.challenge = b64urlToBuf(options.challenge);
      options.user.id = b64urlToBuf(options.user.id);
      (options.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
      return navigator.credentials.create({publicKey: options});
    }).then(function (cred) {
      return post(url, {credential: credentialJSON(cred)});
    }).then(function () { window.location.reload(); })
      .catch(function (err) { say(button.parentNode, "The passkey was not added: " + (err && err.message ? err.message : err)); });
  });

  function refreshed() { tick(); retitle(); }  // swapped-in content shows its countdowns at once
  document.addEventListener("htmx:afterSwap", refreshed);
  document.addEventListener("htmx:oobAfterSwap", refreshed);
  document.addEventListener("htmx:sseMessage", function (event) {
    if (event.detail && event.detail.type === "signed-out") { window.location.reload(); }
  });
  document.addEventListener("DOMContentLoaded", function () { tick(); retitle(); setInterval(tick, 1000); });
})();
