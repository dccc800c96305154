"""A fake AUTOMATIC1111 web UI (Replacer and img2img) and OpenAI chat server for
tests/test_vcece_http.c, on 127.0.0.1 and a free port.

Usage: vcece_server.py DIR. Writes DIR/port once it listens; serves until killed. Every request is
logged as one line of DIR/log.jsonl (flushed at once): the path, every field of the body except the
images, and each image decoded with Pillow (width, height, its top-left RGB pixel; for a mask, the
bounding box of the pixels above 127 and their count).

Edits are deterministic: img2img paints the mask's pixels above 127 pure red; Replacer paints the
top-left quarter red. Chat answers come from DIR/answers.json (a list, one popped per request);
when it is empty, a classification says "summer" when the image's top-left pixel is red and
"winter" otherwise, and a planner's request is answered with the first edit listed.

Faults come from DIR/faults.json (a list, one popped per editor or chat request; empty: none):
"timeout" (a reply after 3 s), "500" (HTTP 500), "malformed" (JSON cut short), "baddecode" (an
image that is not PNG or JPEG), "nothing" (no image and a message, as Replacer finding nothing),
"wrongsize" (a 10x10 image), "ok".
"""
import base64
import io
import json
import os
import re
import sys
import threading
import time

from PIL import Image

import fake_http

out = sys.argv[1]
lock = threading.Lock()


def pop(name):
    """The next entry of DIR/name (a JSON list), or None when there is none."""
    path = os.path.join(out, name)
    with lock:
        if not os.path.exists(path):
            return None
        with open(path) as f:
            items = json.load(f)
        if not items:
            return None
        first = items.pop(0)
        with open(path + ".tmp", "w") as f:
            json.dump(items, f)
        os.rename(path + ".tmp", path)
        return first


def decode(b64):
    if b64.startswith("data:"):
        b64 = b64.split(",", 1)[1]
    im = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    im.load()
    return im


def encode(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def describe(im, mask=False):
    d = {"width": im.width, "height": im.height, "mode": im.mode}
    if mask:
        g = im.convert("L")
        px = [(x, y) for y in range(g.height) for x in range(g.width) if g.getpixel((x, y)) > 127]
        d["count"] = len(px)
        if px:
            d["bbox"] = [min(p[0] for p in px), min(p[1] for p in px),
                         max(p[0] for p in px) + 1, max(p[1] for p in px) + 1]
    else:
        d["pixel"] = list(im.convert("RGB").getpixel((0, 0)))
    return d


class Handler(fake_http.JSONHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        rec = {"path": self.path, "content_type": self.headers.get("Content-Type"),
               "authorization": self.headers.get("Authorization")}
        try:
            req = json.loads(raw)
        except ValueError:
            req = {}
            rec["problem"] = "the body is not JSON"
        image, mask = None, None
        for k, v in req.items():
            if k in ("input_image", "init_images", "mask"):
                continue
            if k != "messages":
                rec[k] = v
        try:
            if "input_image" in req:
                image = decode(req["input_image"])
                rec["input_image"] = describe(image)
            if "init_images" in req:
                rec["n_init_images"] = len(req["init_images"])
                image = decode(req["init_images"][0])
                rec["init_image"] = describe(image)
            if "mask" in req:
                mask = decode(req["mask"])
                rec["mask"] = describe(mask, True)
            if "messages" in req:
                parts = req["messages"][-1]["content"]
                rec["roles"] = [m["role"] for m in req["messages"]]
                rec["text"] = parts[0]["text"]
                if len(parts) > 1:
                    image = decode(parts[1]["image_url"]["url"])
                    rec["image"] = describe(image)
                    rec["uri_prefix"] = parts[1]["image_url"]["url"][:22]
        except Exception as e:  # the test reports it
            rec["problem"] = "an image does not decode: %s" % e
        fault = pop("faults.json") or "ok"
        rec["fault"] = fault
        with lock:
            with open(out + "/log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
        try:
            self.answer(fault, image, mask, rec)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer(self, fault, image, mask, rec):
        if fault == "timeout":
            time.sleep(3)
        if fault == "500":
            self.send(500, {"error": "the model is loading"})
            return
        if fault == "malformed":
            self.send(200, b'{"images": ["iVBOR')
            return
        if self.path.endswith("/chat/completions"):
            text = pop("answers.json")
            if text is None:
                if "remain" in rec.get("text", ""):
                    m = re.search(r"^1\. (\[.*\])$", rec["text"], re.M)
                    text = m.group(1) if m else "?"
                else:
                    red = image is not None and rec["image"]["pixel"] == [255, 0, 0]
                    text = "summer" if red else "winter"
            self.send(200, {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                 "content": text}}]})
            return
        if fault == "nothing":
            self.send(200, {"image": None, "detail": "nothing detected for the prompt"})
            return
        if fault == "baddecode":
            self.send(200, {"images": [base64.b64encode(b"this is not an image").decode()]})
            return
        if image is None:
            self.send(422, {"detail": "no image"})
            return
        im = image.convert("RGB")
        if fault == "wrongsize":
            im = im.resize((10, 10))
        elif mask is not None:
            g = mask.convert("L")
            for y in range(im.height):
                for x in range(im.width):
                    if g.getpixel((x, y)) > 127:
                        im.putpixel((x, y), (255, 0, 0))
        else:
            for y in range(im.height // 2):
                for x in range(im.width // 2):
                    im.putpixel((x, y), (255, 0, 0))
        if self.path.startswith("/replacer"):
            self.send(200, {"image": encode(im)})
        else:
            self.send(200, {"images": [encode(im)], "parameters": {}, "info": ""})


fake_http.serve(Handler, out)
