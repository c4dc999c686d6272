"""Copy as code: the page's request as a complete bash + curl script or Python program.

Each does what the page does for one image, at the official SDK's paths: create the
task, poll its status every 2 s until it completes (or stop with RunAPI's reason), then
download the image to `<task id>.png` (`.jpg`, `.webp` when served so).

The key is read from RUNAPI_API_KEY when the code runs; no function here takes one. The
body is written so that the prompt reaches RunAPI character for character: inside bash
single quotes nothing is expanded, and Python gets `repr` literals. Characters that do
not print (newlines, tabs, bidi controls) are written as escapes, so the code a visitor
sees is the code that runs.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from ..runapi.client import AnyRequest, _api_root
from ..runapi.files import FILES_PATH
from ..runapi.remix import RemixRequest
from ..runs.remixing import remix_requests

_CURL = """\
#!/usr/bin/env bash
# Imagen 4 on RunAPI, one image (__SUMMARY__): create the task, poll it, save the image.
# Needs bash, curl and python3. The key comes from your environment:
#   export RUNAPI_API_KEY=...
set -euo pipefail
: "${RUNAPI_API_KEY:?Set RUNAPI_API_KEY to your RunAPI key first}"

API=__ENDPOINT__
BODY=__BODY__

field() {  # field NAME: a field of the JSON on stdin; images.0.url walks into lists
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value.get(key)
print("" if value is None else value)' "$1"
}

__UPLOAD__answer=$(curl -sS --fail-with-body "$API" -H "Authorization: Bearer $RUNAPI_API_KEY" \\
  -H "Content-Type: application/json" --data-binary "$BODY") ||
  { echo "RunAPI did not create the task: $answer" >&2; exit 1; }
id=$(field id <<<"$answer")
[ -n "$id" ] || id=$(field task_id <<<"$answer")
case $id in ''|*[!A-Za-z0-9_-]*) echo "No task id in RunAPI's answer: $answer" >&2; exit 1 ;; esac
echo "Task $id created; waiting for it..."

for _ in $(seq 450); do  # every 2 s, for 15 minutes at most
  state=$(curl -sS --fail-with-body "$API/$id" -H "Authorization: Bearer $RUNAPI_API_KEY") ||
    { echo "Could not read the task's status: $state" >&2; exit 1; }
  status=$(field status <<<"$state")
  case $status in
    completed) break ;;
    failed) echo "The generation failed: $(field error <<<"$state")" >&2; exit 1 ;;
  esac
  sleep 2
done
[ "$status" = completed ] || { echo "Task $id did not finish in 15 minutes." >&2; exit 1; }

# The image link needs no key, so none is sent to the image host.
url=$(field images.0.url <<<"$state")
type=$(curl -sS --fail -L -o "$id.download" -w '%{content_type}' "$url")
case $type in image/jpeg*) ext=jpg ;; image/webp*) ext=webp ;; *) ext=png ;; esac
mv "$id.download" "$id.$ext"
echo "Saved $id.$ext"
"""

_PYTHON = """\
\"\"\"Imagen 4 on RunAPI, one image (__SUMMARY__): create the task, poll it, save the image.

Needs httpx (pip install httpx). The key comes from your environment:
    export RUNAPI_API_KEY=...
\"\"\"

__IMPORTS__import os
import re
import sys
import time

import httpx

API = __ENDPOINT__
BODY = __BODY__


def answer(response: httpx.Response) -> dict:
    \"\"\"The answer's JSON, or stop with what RunAPI said.\"\"\"
    if response.is_error:
        sys.exit(f"RunAPI answered HTTP {response.status_code}: {response.text}")
    return response.json()


if not os.environ.get("RUNAPI_API_KEY"):
    sys.exit("Set RUNAPI_API_KEY to your RunAPI key first.")
key = os.environ["RUNAPI_API_KEY"]
auth = {"Authorization": f"Bearer {key}"}

with httpx.Client(timeout=60) as client:
__UPLOAD__    task = answer(client.post(API, json=BODY, headers=auth))
    task_id = str(task.get("id") or task.get("task_id") or "")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", task_id):
        sys.exit(f"No task id in RunAPI's answer: {task}")
    print(f"Task {task_id} created; waiting for it...")

    deadline = time.monotonic() + 15 * 60
    while True:  # every 2 s, for 15 minutes at most
        state = answer(client.get(f"{API}/{task_id}", headers=auth))
        if state["status"] == "completed":
            break
        if state["status"] == "failed":
            sys.exit(f"The generation failed: {state.get('error')}")
        if time.monotonic() > deadline:
            sys.exit(f"Task {task_id} did not finish in 15 minutes.")
        time.sleep(2)

    # The image link needs no key, so none is sent to the image host.
    image = client.get(state["images"][0]["url"], follow_redirects=True)
    image.raise_for_status()

content_type = image.headers.get("content-type", "").split(";")[0]
extension = {"image/jpeg": "jpg", "image/webp": "webp"}.get(content_type, "png")
with open(f"{task_id}.{extension}", "wb") as file:
    file.write(image.content)
print(f"Saved {task_id}.{extension}")
"""


# A remix's first step: the image files named on the command line, each uploaded
# through RunAPI's file API; their URLs (good for about an hour) complete the body.
_CURL_UPLOAD = """\
# The source images are the files you name: bash remix.sh photo.jpg logo.png (1 to 8).
# Each goes to RunAPI's file API as it is: remove location data (EXIF GPS) first if it
# matters to you (the playground does that for you).
[ $# -ge 1 ] && [ $# -le 8 ] || { echo "Usage: bash $0 IMAGE [IMAGE...] (1 to 8)" >&2; exit 1; }
urls=()
for file in "$@"; do
  upload=$(python3 -c '
import base64, json, sys
data = base64.b64encode(open(sys.argv[1], "rb").read()).decode()
print(json.dumps({"source": {"type": "base64", "data": data}}))' "$file" |
    curl -sS --fail-with-body __FILES__ -H "Authorization: Bearer $RUNAPI_API_KEY" \\
      -H "Content-Type: application/json" --data-binary @-) ||
    { echo "RunAPI did not take $file: $upload" >&2; exit 1; }
  urls+=("$(field url <<<"$upload")")
done
BODY=$(python3 -c '
import json, sys
body = json.loads(sys.argv[1])
body["source_image_urls"] = sys.argv[2:]
print(json.dumps(body))' "$BODY" "${urls[@]}")
echo "Uploaded ${#urls[@]} source image(s)."

"""

_PYTHON_UPLOAD = """\
    # The source images are the files you name: python remix.py photo.jpg logo.png (1
    # to 8). Each goes to RunAPI's file API as it is: remove location data (EXIF GPS)
    # first if it matters to you (the playground does that for you).
    if not 1 <= len(sys.argv) - 1 <= 8:
        sys.exit(f"Usage: python {sys.argv[0]} IMAGE [IMAGE...] (1 to 8)")
    for path in sys.argv[1:]:
        with open(path, "rb") as file:
            source = {"type": "base64", "data": base64.b64encode(file.read()).decode()}
        uploaded = answer(client.post(__FILES__, json={"source": source}, headers=auth))
        BODY["source_image_urls"].append(uploaded["url"])
    print(f"Uploaded {len(BODY['source_image_urls'])} source image(s).")

"""


def curl_snippet(request: AnyRequest, base_url: str) -> str:
    """A bash script (curl, with python3 to read JSON) that makes this request's image
    (a remix's from the image files named when it runs).

    Raises the client's ValidationError for a request the page would refuse too.
    """
    request = _checked(request)
    remix = isinstance(request, RemixRequest)
    upload = _filled(_CURL_UPLOAD, FILES=shlex.quote(_api_root(base_url) + FILES_PATH))
    return _filled(
        _CURL,
        ENDPOINT=shlex.quote(_endpoint(request, base_url)),
        BODY=shlex.quote(_visible_json(request.to_body())),
        SUMMARY=_summary(request),
        UPLOAD=upload if remix else "",
    )


def python_snippet(request: AnyRequest, base_url: str) -> str:
    """A Python program (httpx) that makes this request's image (a remix's from the
    image files named when it runs).

    Raises the client's ValidationError for a request the page would refuse too.
    """
    request = _checked(request)
    remix = isinstance(request, RemixRequest)
    upload = _filled(_PYTHON_UPLOAD, FILES=_python_literal(_api_root(base_url) + FILES_PATH))
    return _filled(
        _PYTHON,
        ENDPOINT=_python_literal(_endpoint(request, base_url)),
        BODY=_python_dict(request.to_body()),
        SUMMARY=_summary(request),
        IMPORTS="import base64\n" if remix else "",
        UPLOAD=upload if remix else "",
    )


def _checked(request: AnyRequest) -> AnyRequest:
    """The request validated; a remix's without source URLs (the code uploads them)."""
    if isinstance(request, RemixRequest):
        return remix_requests(
            request.prompt,
            request.aspect_ratio,
            request.output_resolution,
            request.output_format,
            count=1,
        )[0]
    return request.validated()


def _endpoint(request: AnyRequest, base_url: str) -> str:
    return _api_root(base_url) + request.create_paths[0]


def _summary(request: AnyRequest) -> str:
    if isinstance(request, RemixRequest):
        return f"{request.model}, {request.aspect_ratio}, {request.output_resolution}"
    seed = "random seed" if request.seed is None else f"seed {request.seed}"
    return f"{request.model}, {request.aspect_ratio}, {seed}"


def _filled(template: str, **values: str) -> str:
    # One pass: a prompt that happens to contain `__BODY__` is not filled in again.
    return re.sub(r"__([A-Z]+)__", lambda match: values[match[1]], template)


def _visible_json(body: dict[str, Any]) -> str:
    """JSON with printable characters as typed and every other one as a \\u escape."""
    text = json.dumps(body, ensure_ascii=False)
    return "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in text)


def _python_dict(body: dict[str, Any]) -> str:
    """A dict literal, one field a line (a list as JSON writes it: `[]`)."""
    lines = [
        f"    {_python_literal(name)}: {_python_literal(value)}," for name, value in body.items()
    ]
    return "{\n" + "\n".join(lines) + "\n}"


def _python_literal(value: Any) -> str:
    """A double-quoted str literal, or an int's `repr`."""
    if not isinstance(value, str):
        return repr(value)
    return '"' + "".join(_python_char(char) for char in value) + '"'


def _python_char(char: str) -> str:
    if char in '\\"':
        return "\\" + char
    return char if char.isprintable() else repr(char)[1:-1]  # \n, \t, \u202e, \x00
