"""Passkeys in the harness: a virtual authenticator (CDP) answers navigator.credentials on a page
opened at http://localhost:PORT, and the answers verify as a relying party would check them
(the `webauthn` package the console uses), registration and then sign-in."""

from __future__ import annotations

import base64
import json
import secrets

from playwright.sync_api import Page, expect
from webauthn import verify_authentication_response, verify_registration_response

from browser_support import StaticSite, credentials, virtual_authenticator


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ceremony(page: Page, button: str, challenge: bytes) -> str:
    page.evaluate("hash => { location.hash = hash }", b64url(challenge))
    page.get_by_role("button", name=button).click()
    result = page.locator("#result")
    expect(result).not_to_have_attribute("data-state", "idle")
    state = result.get_attribute("data-state")
    text = result.text_content() or ""
    assert state == "done", text
    page.evaluate("() => { document.getElementById('result').dataset.state = 'idle' }")
    return text


def test_a_passkey_is_created_and_signs_in(page: Page, static_site: StaticSite) -> None:
    authenticator = virtual_authenticator(page)
    page.goto(f"{static_site.url}/webauthn.html")

    challenge = secrets.token_bytes(32)
    registered = verify_registration_response(
        credential=ceremony(page, "Create a passkey", challenge), expected_challenge=challenge,
        expected_origin=static_site.url, expected_rp_id="localhost", require_user_verification=True)
    assert registered.user_verified
    [stored] = credentials(page, authenticator)
    assert stored["rpId"] == "localhost" and stored["isResidentCredential"]

    challenge = secrets.token_bytes(32)
    answer = ceremony(page, "Sign in with a passkey", challenge)
    assert json.loads(answer)["id"] == b64url(registered.credential_id)
    signed_in = verify_authentication_response(
        credential=answer, expected_challenge=challenge, expected_origin=static_site.url,
        expected_rp_id="localhost", credential_public_key=registered.credential_public_key,
        credential_current_sign_count=registered.sign_count, require_user_verification=True)
    assert signed_in.user_verified


def test_an_authenticator_that_cannot_verify_the_user_is_refused(page: Page, static_site: StaticSite) -> None:
    virtual_authenticator(page, isUserVerified=False)
    page.goto(f"{static_site.url}/webauthn.html#{b64url(secrets.token_bytes(32))}")
    page.get_by_role("button", name="Create a passkey").click()
    expect(page.locator("#result")).to_have_attribute("data-state", "failed")
    assert (page.locator("#result").text_content() or "").startswith("NotAllowedError")
