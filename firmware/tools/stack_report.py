#!/usr/bin/env python3
"""Worst-case stack use from gcc's -fcallgraph-info=su output (.ci files).

Each function's frame comes from gcc's own stack-usage figure; the worst case is the
deepest path through the static call graph from --entry, plus the deepest path from
each --interrupt handler (an interrupt can arrive at any depth) and the 104-byte
exception frame a Cortex-M4 pushes when the FPU context is live. Indirect calls are
charged the worst path of the --indirect functions (the only function pointers the
firmware calls are the board's tick hooks). Recursion or a 'dynamic' frame makes the
figure unbounded and is reported as such. Library functions have no .ci data and count
as 0 bytes: newlib-nano's memcpy and memset are small leaf functions, but libm's tanhf
(called by float32 policy headers) is not measured.
"""

from __future__ import annotations

import argparse
import re
import sys

NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
FRAME = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)")
EXCEPTION_FRAME_FP = 104  # 26 words: r0-r3, r12, lr, pc, xpsr, s0-s15, fpscr, pad


def parse(paths):
    frames, qualifiers, calls = {}, {}, {}
    for path in paths:
        with open(path) as f:
            text = f.read()
        for title, label in NODE.findall(text):
            m = FRAME.search(label)
            if m:
                frames[title] = int(m.group(1))
                qualifiers[title] = m.group(2)
        for src, dst in EDGE.findall(text):
            calls.setdefault(src, set()).add(dst)
    return frames, qualifiers, calls


def worst(fn, frames, calls, indirect, stack=()):
    """(bytes, path) of the deepest call chain starting at fn."""
    if fn in stack:
        raise RecursionError(" -> ".join((*stack, fn)))
    targets = set()
    for callee in calls.get(fn, ()):
        targets.update(indirect if callee == "__indirect_call" else [callee])
    best, best_path = 0, ()
    for callee in sorted(targets):
        size, path = worst(callee, frames, calls, indirect, (*stack, fn))
        if size > best:
            best, best_path = size, path
    return frames.get(fn, 0) + best, (fn, *best_path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ci", nargs="+", help=".ci files from -fcallgraph-info=su")
    ap.add_argument("--entry", default="main")
    ap.add_argument("--interrupt", action="append", default=[])
    ap.add_argument("--indirect", action="append", default=[])
    args = ap.parse_args()
    frames, qualifiers, calls = parse(args.ci)

    dynamic = sorted(f for f, q in qualifiers.items() if "dynamic" in q)
    largest = sorted(frames.items(), key=lambda kv: -kv[1])[:3]
    print(
        "stack frames (gcc -fstack-usage), largest: "
        + ", ".join(f"{fn} {size} B" for fn, size in largest)
    )
    try:
        total, path = worst(args.entry, frames, calls, args.indirect)
        irq = 0
        for handler in args.interrupt:
            size, _ = worst(handler, frames, calls, args.indirect)
            irq = max(irq, size + EXCEPTION_FRAME_FP)
    except RecursionError as e:
        print(f"stack worst case: unbounded (recursion: {e})")
        return 0
    if dynamic:
        print(f"stack worst case: unbounded (dynamic frames in {', '.join(dynamic)})")
        return 0
    print(
        f"stack worst case (call graph): {total + irq} bytes = {total} via "
        f"{' -> '.join(path)} + {irq} for an interrupt (handler + FP exception frame)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
