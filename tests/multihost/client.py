"""Runs inside the client namespace: one JSON request per stdin line, one JSON
answer per stdout line ({"status", "body"} or {"status": null, "error"})."""

import json
import sys

import requests

session = requests.Session()
for line in sys.stdin:
    request = json.loads(line)
    try:
        reply = session.post(request["url"], data=request.get("data", {}),
                             headers=request.get("headers", {}),
                             timeout=request.get("timeout", 10))
        answer = {"status": reply.status_code, "body": reply.json()}
    except (requests.RequestException, ValueError) as e:
        answer = {"status": None, "error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
