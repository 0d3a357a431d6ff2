"""Shared by the bench scripts: each owns one section of docs/benchmarks.md."""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every figure here was measured on the project's build machine by the command shown
beside it (`make bench` reruns them all). Sections are rewritten in place by their
bench script; the machine line says where each ran.
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        cores = "?"
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str, after: str | None = None) -> None:
    """Replace the section delimited by markers for ``name``; a new one goes right after
    section ``after`` when that exists (a part of its topic), else at the end."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    anchor = f"<!-- /bench:{after} -->" if after else None
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif anchor and anchor in text:
        text = text.replace(anchor, anchor + "\n\n" + block, 1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    tmp = BENCHMARKS.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(BENCHMARKS)
