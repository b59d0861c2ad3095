"""Schemathesis against the project's own OpenAPI document, the API served for real."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def test_the_served_api_honours_its_openapi_document(served):
    app, url = served
    token = app.waiverdesk(
        "token",
        "create",
        "adam",
        "--scope",
        "read",
        "--scope",
        "write",
        "--scope",
        "decide",
        "--scope",
        "admin",
    )
    run = subprocess.run(
        [
            BIN / "schemathesis",
            "run",
            f"{url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            # Not status_code_conformance: gunicorn itself answers 414 to over-long URLs.
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "15",
            "--phases",
            "examples,fuzzing",
            "--seed",
            "7",
            "--max-time",
            "25",
        ],
        env=app.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[:3000]
    schema = json.loads(urllib.request.urlopen(f"{url}/api/openapi.json").read())
    operations = sum(len(methods) for methods in schema["paths"].values())
    assert f"{operations} passed" in run.stdout  # every operation was exercised
