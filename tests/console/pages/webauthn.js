// The challenge is the page's fragment (base64url), chosen by the test, which verifies the answer
// as a relying party would. The result is the credential's toJSON(), written into #result.
const fromB64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const challenge = () => fromB64url(location.hash.slice(1));
const show = (state, value) => {
  const out = document.getElementById("result");
  out.textContent = typeof value === "string" ? value : JSON.stringify(value);
  out.dataset.state = state;
};

document.getElementById("register").addEventListener("click", async () => {
  try {
    const credential = await navigator.credentials.create({publicKey: {
      challenge: challenge(),
      rp: {id: location.hostname, name: "Warden test"},
      user: {id: crypto.getRandomValues(new Uint8Array(16)), name: "approver@test.local", displayName: "Approver"},
      pubKeyCredParams: [{type: "public-key", alg: -7}, {type: "public-key", alg: -257}],
      authenticatorSelection: {residentKey: "required", userVerification: "required"},
      timeout: 10000,
    }});
    show("done", credential.toJSON());
  } catch (error) {
    show("failed", `${error.name}: ${error.message}`);
  }
});

document.getElementById("sign-in").addEventListener("click", async () => {
  try {
    const credential = await navigator.credentials.get({publicKey: {
      challenge: challenge(), rpId: location.hostname, userVerification: "required", timeout: 10000,
    }});
    show("done", credential.toJSON());
  } catch (error) {
    show("failed", `${error.name}: ${error.message}`);
  }
});
