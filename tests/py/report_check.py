"""Checks a report.html that `cfx report` wrote, as a reader's browser sees it.

usage: report_check.py RUN REPORT SCREENSHOT
- every embedded image (data URI) decodes as a PNG (Pillow);
- the results table holds, per method, the success rate and mean rho after recomputed here
  from RUN/results.jsonl;
- Debian's chromium, headless and with the network disabled, opens the file from disk and its
  screenshot is not blank (more than one colour, and not almost all background).
Prints "ok" or the first problem, and exits 0 or 1."""
import base64
import io
import json
import re
import subprocess
import sys

from PIL import Image

run, report, shot = sys.argv[1], sys.argv[2], sys.argv[3]
html = open(report, encoding="utf-8").read()


def fail(msg):
    print(msg)
    sys.exit(1)


if re.search(r'(src|href)="(https?:)?//', html):
    fail("the report refers to the network")
uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
if not uris:
    fail("no embedded image")
for k, u in enumerate(uris):
    try:
        Image.open(io.BytesIO(base64.b64decode(u))).load()
    except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
        fail(f"embedded image {k} does not decode: {e}")

rows = {}
for line in open(run + "/results.jsonl"):
    r = json.loads(line)
    rows.setdefault(r["method"], []).append(r)
for method, rs in rows.items():
    n = len(rs)
    success = 100.0 * sum(r["success"] for r in rs) / n
    after = sum(r["rho_after"] for r in rs) / n
    want = (f"<tr><td class=\"l\"><b>{method}</b></td>(<td class=\"l\">all</td>)?"
            f"<td>{n}</td><td>{success:.1f}%</td><td>[0-9.]+</td><td>{after:.3f}</td>")
    if not re.search(want, html):
        fail(f"the table has no row for {method} with {n} images, {success:.1f}% and {after:.3f}")

# metrics.json (cfx evaluate): its success rates agree with results.jsonl, and the report's
# metrics table holds every row's numbers as printed.
try:
    metrics = json.load(open(run + "/metrics.json"))
except FileNotFoundError:
    metrics = None
if metrics is not None:
    for row in metrics["rows"]:
        rs = [r for r in rows[row["method"]] if row["cause"] in (None, r.get("cause"))]
        if row["images"] != len(rs) or row["success"] != sum(r["success"] for r in rs):
            fail(f"metrics.json row {row['method']}/{row['cause']}: {row['images']} images, "
                 f"{row['success']} successes; results.jsonl has {len(rs)} and "
                 f"{sum(r['success'] for r in rs)}")
        cells = []
        for key, fmt in (("lpips", "%.4f"), ("feature_similarity", "%.4f"), ("latent_similarity", "%.4f"),
                         ("fid", "%.4g"), ("kid", "%.4g"), ("cmmd", "%.4g")):
            cells.append("none" if row[key] is None else fmt % row[key])
        want = (f"<td class=\"l\">{row['method']}</td><td class=\"l\">{row['cause'] or 'all'}"
                f"</td>" + "".join(f"<td>{c}</td>" for c in cells))
        if want not in html:
            fail(f"the metrics table has no row {want}")
    if f"FID[{metrics['networks']['fid']}]" not in html:
        fail("the metrics table does not name the FID network")

cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
       "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
       "--window-size=1100,1600", "--screenshot=" + shot, "file://" + report]
p = subprocess.run(cmd, capture_output=True, timeout=120)
try:
    im = Image.open(shot).convert("RGB")
except Exception as e:  # noqa: BLE001
    fail(f"chromium wrote no screenshot ({e}): {p.stderr.decode()[-500:]}")
colours = im.getcolors(maxcolors=1 << 20) or []
background = max(c for c, _ in colours) if colours else im.width * im.height
if len(colours) < 16 or background > 0.98 * im.width * im.height:
    fail(f"the screenshot looks blank ({len(colours)} colours)")
print("ok")
