"""A fake OPA server: OPA's REST data API on loopback, evaluating real Rego with `regopy`.

    opa = FakeOpa().start()                      # the modules of tests/fakes/rego
    opa.base_url                                 # http://127.0.0.1:PORT, for opa_url
    opa.inputs("warden/refunds/decision")        # every `input` it was sent for that path
    opa.fail("POST /v1/data/*", kind="hang_before", seconds=2)   # faults as every fake has

What it answers, as OPA documents its REST API (v1, "Data API"):

- `POST /v1/data/{path}` with `{"input": ...}`: 200 `{"result": value}` where `data.{path}`
  (slashes as dots) is defined, 200 `{}` without `result` where it is undefined; a body that is
  not a JSON object, or whose `input` is missing, 400 `{"code": "invalid_parameter", "message"}`;
  a Rego evaluation error 500 `{"code": "internal_error", "message"}`.
- `GET /health`: 200 `{}`.
- Anything else: 404 `{"code": "resource_not_found", "message"}`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fakes.base import FakeProvider, Reply, Request

REGO_DIR = Path(__file__).parent / "rego"
_DATA = re.compile(r"/v1/data/([A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*)")


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


class FakeOpa(FakeProvider):
    name = "opa"

    def __init__(self, modules: dict[str, str] | None = None) -> None:
        super().__init__()
        self.modules = modules if modules is not None else {
            path.name: path.read_text(encoding="utf-8") for path in sorted(REGO_DIR.glob("*.rego"))}
        self.received: list[tuple[str, Any]] = []  # (path, input), in order

    def inputs(self, path: str) -> list[Any]:
        with self.lock:
            return [document for seen, document in self.received if seen == path]

    def handle(self, request: Request) -> Reply:
        if request.route == "GET /health":
            return Reply(200, {})
        found = _DATA.fullmatch(request.path)
        if request.method != "POST" or found is None:
            return _error(404, "resource_not_found", f"{request.method} {request.path} is not served")
        try:
            body = request.json()
        except ValueError as exc:
            return _error(400, "invalid_parameter", f"body contains malformed input document: {exc}")
        if not isinstance(body, dict) or "input" not in body:
            return _error(400, "invalid_parameter", "the body must be an object with an input document")
        path = found.group(1)
        with self.lock:
            self.received.append((path, body["input"]))
        return self.evaluate(path, body["input"])

    def evaluate(self, path: str, document: Any) -> Reply:
        from regopy import Interpreter
        from regopy.rego_shared import RegoError

        rego = Interpreter()  # one per query: the fake serves each connection on its own thread
        try:
            for name, source in self.modules.items():
                rego.add_module(name, source)
            rego.set_input(document)
            output = rego.query("data." + path.replace("/", "."))
        except RegoError as exc:
            return _error(500, "internal_error", str(exc))
        if not output.ok():
            return _error(500, "internal_error", str(output))
        if str(output) == "undefined":
            return Reply(200, {})
        return Reply(200, {"result": json.loads(str(output))["expressions"][0]})
