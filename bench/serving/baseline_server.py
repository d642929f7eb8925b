"""Baseline (a): the seed function in-process behind a minimal aiohttp server, one call per request.

``python baseline_server.py PORT`` serves ``POST /predict`` with ``{"input": [4 doubles]}`` and
answers ``{"output": y}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_model import build_centered_predict

predict = build_centered_predict()


async def handle(request: web.Request) -> web.Response:
    doc = json.loads(await request.read())
    output = predict(np.array([doc["input"]], dtype=np.float64))
    return web.Response(
        body=json.dumps({"output": output.tolist()[0]}).encode(), content_type="application/json"
    )


def main() -> None:
    app = web.Application()
    app.router.add_post("/predict", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
