"""A small OpenAI chat-completions server for tests/test_llm.c, on 127.0.0.1 and a free port.

Usage: llm_server.py DIR. Writes DIR/port once it listens; serves until killed. Every request is
checked and logged as one line of DIR/log.jsonl (flushed at once): the path, the Authorization
header, the model, temperature, max_tokens, the messages' roles and texts, and the image part
decoded with Pillow (its data URI prefix, mode, width, height and the grey value of the
original's top-left pixel), plus "problems" for anything not shaped as the API says.

What it answers depends on that pixel (its 8-bit grey value, so the test picks a fault per
image), or on DIR/mode when it exists ("fail-half": HTTP 500 for requests whose SHA-1 starts
with an even hex digit, "ok" otherwise):
  10 a normal answer naming the pixel: "The image is too dark (pixel P)."
  20 a reply slower than any test timeout (3 s)
  30 HTTP 500 the first time a body is seen, then a normal answer
  40 malformed JSON          50 an empty choice list     60 a connection closed mid-reply
  70 a message with no text  80 HTTP 500 always         90 HTTP 401 (a bad key)
"""
import base64
import hashlib
import io
import json
import os
import sys
import threading
import time

from PIL import Image

import fake_http

out = sys.argv[1]
lock = threading.Lock()
seen = set()


def inspect(req, problems):
    """The logged view of a request body, appending what is wrong to problems."""
    rec = {k: req.get(k) for k in ("model", "temperature", "max_tokens")}
    msgs = req.get("messages")
    if not isinstance(msgs, list) or len(msgs) != 2:
        problems.append("messages is not a list of two")
        return rec, None
    rec["roles"] = [m.get("role") for m in msgs]
    rec["system"] = msgs[0].get("content")
    parts = msgs[1].get("content")
    if not isinstance(parts, list) or len(parts) != 2:
        problems.append("the user content is not a list of two parts")
        return rec, None
    if parts[0].get("type") != "text" or not isinstance(parts[0].get("text"), str):
        problems.append("the first part is not text")
    rec["instruction"] = parts[0].get("text")
    if parts[1].get("type") != "image_url":
        problems.append("the second part is not image_url")
    url = (parts[1].get("image_url") or {}).get("url", "")
    prefix = "data:image/png;base64,"
    rec["uri_prefix"] = url[: len(prefix)]
    if not url.startswith(prefix):
        problems.append("the image is not a PNG data URI")
        return rec, None
    try:
        im = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):], validate=True)))
        im.load()
    except Exception as e:  # the test reports it
        problems.append("the image does not decode: %s" % e)
        return rec, None
    rec.update(mode=im.mode, width=im.width, height=im.height)
    pair = "side-by-side" in (rec["instruction"] or "")
    px = im.convert("L").getpixel((10, 10) if pair else (0, 0))
    rec["pixel"] = px
    return rec, px


def answer(text):
    return {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}]}


class Handler(fake_http.JSONHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        problems = []
        if self.headers.get("Content-Type") != "application/json":
            problems.append("Content-Type is %r" % self.headers.get("Content-Type"))
        try:
            req = json.loads(raw)
        except ValueError:
            req, problems = {}, problems + ["the body is not JSON"]
        rec, px = inspect(req, problems)
        digest = hashlib.sha1(raw).hexdigest()
        rec.update(path=self.path, authorization=self.headers.get("Authorization"),
                   problems=problems, sha1=digest)
        mode = None
        if os.path.exists(out + "/mode"):
            with open(out + "/mode") as f:
                mode = f.read().strip()
        with lock:
            first = digest not in seen
            seen.add(digest)
            with open(out + "/log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
        if mode == "fail-half":
            fault = 80 if int(digest[0], 16) % 2 == 0 else 10
        elif mode == "ok":
            fault = 10
        else:
            fault = px if px in (10, 20, 30, 40, 50, 60, 70, 80, 90) else 10
        try:
            if fault == 20:
                time.sleep(3)
                self.send(200, answer("Too late."))
            elif fault == 30 and first or fault == 80:
                self.send(500, {"error": {"message": "the model is loading"}})
            elif fault == 90:
                self.send(401, {"error": {"message": "invalid API key"}})
            elif fault == 40:
                self.send(200, b'{"choices": [{"message": ')
            elif fault == 50:
                self.send(200, {"choices": []})
            elif fault == 60:
                self.send_response(200)
                self.send_header("Content-Length", "400")
                self.end_headers()
                self.wfile.write(b'{"choices": [{"mess')
                self.wfile.flush()
                self.close_connection = True
            elif fault == 70:
                self.send(200, {"choices": [{"message": {"role": "assistant", "content": ""}}]})
            else:
                self.send(200, answer("The image is too dark (pixel %s)." % px))
        except (BrokenPipeError, ConnectionResetError):
            pass


fake_http.serve(Handler, out)
