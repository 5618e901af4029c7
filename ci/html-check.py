"""Checks the pages ci/html-check.sh had Chromium render: each screenshot has ink in many
colours (a blank or unstyled page fails), and each DOM, as the browser parsed it, holds the
report's elements. Usage: python ci/html-check.py DIR"""
import re
import sys
from pathlib import Path

from PIL import Image

work = Path(sys.argv[1])
problems = []

EXPECTED = {
    # page: [(what, regex over the browser's DOM)]
    "run": [
        ("a failed verdict", r'id="verdict" class="verdict failed"'),
        ("the verdict table", r'<table id="verdicts"'),
        ("failing rows", r'<tr class="case FAIL"'),
        ("a folded transcript", r"<details><summary>transcript</summary><pre>"),
    ],
    "load": [
        ("a verdict", r'id="verdict" class="verdict (passed|failed|invalid)"'),
        ("the percentile spectrum", r'<svg id="spectrum"'),
        ("throughput over time", r'<svg id="throughput"'),
        ("p99 over time", r'<svg id="p99-over-time"'),
        ("a plotted series", r'<polyline class="series" data-series="corrected"'),
        ("the error table", r'<table id="errors"'),
    ],
    "merged": [
        ("the merged spectrum", r'<polyline class="series" data-series="corrected, merged"'),
        ("shard 1's line", r'data-series="shard 1/2"'),
        ("shard 2's line", r'data-series="shard 2/2"'),
        ("the shard table", r'<table id="shards"'),
    ],
    "capacity": [
        ("a verdict", r'id="verdict" class="verdict (passed|failed)"'),
        ("the latency-throughput curve", r'<svg id="curve"'),
        ("the p99 line", r'<polyline class="series" data-series="p99 \(ms\)"'),
        ("the p50 line", r'<polyline class="series" data-series="p50 \(ms\)"'),
        ("the capacity marker", r'<polyline class="series" data-series="capacity"'),
        ("the step table", r'<table id="steps"'),
        ("a step row", r'<tr class="step (passed|failed|warned)"'),
    ],
}

for page, checks in EXPECTED.items():
    dom = (work / f"{page}.dom").read_text(encoding="utf-8", errors="replace")
    for what, pattern in checks:
        if not re.search(pattern, dom):
            problems.append(f"{page}.html: no {what} in the rendered DOM (/{pattern}/)")
    image = Image.open(work / f"{page}.png").convert("RGB")
    width, height = image.size
    counted = image.getcolors(width * height)
    # Ink: anything visibly off white (text, lines, fills); a blank page has none.
    ink = sum(count for count, (r, g, b) in counted if r + g + b < 720)
    colours = len({(r // 32, g // 32, b // 32) for _, (r, g, b) in counted})
    share = ink / (width * height)
    print(f"{page}.png: {width}x{height}, {share:.1%} ink, {colours} colour buckets")
    if share < 0.02:
        problems.append(f"{page}.png looks blank: {share:.2%} of pixels carry ink")
    if colours < 6:
        problems.append(f"{page}.png has {colours} colour buckets: the styles or plots did not render")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("html: every report rendered in Chromium with its elements")
