#!/usr/bin/env python3
"""A Peregrine exec plugin (protocol v1, docs/plugins.md): each alert becomes a ticket POSTed as
JSON to TICKET_URL with the bearer token TICKET_TOKEN. Standard library only.

    - name: tickets
      type: exec
      command: ["/usr/lib/peregrine/plugins/http_ticket.py", "--project", "SEC"]
      env: { TICKET_URL: "https://tickets.example/api/issues", TICKET_TOKEN: "${TICKET_TOKEN}" }

Answers: 2xx -> ok; 429 or 503 -> retry (after Retry-After); other 5xx and network errors ->
retry; other 4xx -> fail, with the service's status as the reason.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request

PROTOCOL = 1


def ticket(alert, project):
    fields = alert.get("output_fields") or {}
    return {
        "project": project,
        "title": "[%s] %s" % (alert.get("priority", "?"), alert.get("rule", "?")),
        "body": alert.get("output", ""),
        "host": alert.get("hostname"),
        "container": fields.get("container.name"),
        # The alert's uuid makes the ticket idempotent on services that take a key.
        "external_id": alert.get("uuid"),
    }


def post(url, token, body, timeout):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + token},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return {"status": "ok"}
    except urllib.error.HTTPError as e:
        if e.code in (429, 503):
            after = e.headers.get("Retry-After", "")
            result = {"status": "retry"}
            if after.isdigit():
                result["after_ms"] = int(after) * 1000
            return result
        if e.code >= 500:
            return {"status": "retry"}
        return {"status": "fail", "reason": "the ticket service answered %d" % e.code}
    except (urllib.error.URLError, OSError) as e:
        print("cannot reach the ticket service: %s" % getattr(e, "reason", e), file=sys.stderr)
        return {"status": "retry"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="SEC")
    parser.add_argument("--request-timeout", type=float, default=5.0)
    args = parser.parse_args()
    url, token = os.environ.get("TICKET_URL"), os.environ.get("TICKET_TOKEN")
    if not url or not token:
        print("TICKET_URL and TICKET_TOKEN must be set in the output's env", file=sys.stderr)
        return 2
    for line in sys.stdin:
        batch = json.loads(line)
        if batch.get("v") != PROTOCOL:
            print("unsupported protocol version %r" % batch.get("v"), file=sys.stderr)
            return 2
        results = [post(url, token, ticket(a, args.project), args.request_timeout) for a in batch["alerts"]]
        print(json.dumps({"batch": batch["batch"], "results": results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
