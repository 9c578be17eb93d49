"""The baseline of `bench/http_load.py`: a bare FastAPI app under uvicorn, one POST endpoint.

    python bench/bare_app.py [--host 127.0.0.1] [--port 8090]

`POST /v1/actions` reads the body, parses it into the same `gateway.models.Packet` pydantic
model Warden uses (422 when it does not fit) and returns a fixed JSON answer. No auth, no
database, no policies, no connector: what is left is the cost of the HTTP stack, JSON and
validation, which Warden pays too. uvicorn runs as `warden serve` runs it (one process, the
same event loop and HTTP parser, no access log).
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# Run as `python bench/X.py`, this folder comes first on sys.path, where this file
# (`http.py`) would hide the standard library's `http` (and `ledger.py` the `ledger`
# package): the folder is taken off the path before anything else is imported.
_sys.path[:] = [p for p in _sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from gateway.engine.models import Packet  # noqa: E402

ANSWER = {"decision_id": "dec_bare", "status": "executed", "risk": "L1", "autonomy": "A2"}

app = FastAPI(title="bare baseline")


@app.post("/v1/actions")
async def submit(request: Request) -> Response:
    body = await request.body()
    try:
        packet = Packet.model_validate_json(body)
    except ValidationError as exc:
        return JSONResponse({"errors": exc.errors(include_url=False, include_context=False)}, status_code=422)
    return JSONResponse({**ANSWER, "packet_id": packet.packet_id})


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
