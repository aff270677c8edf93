"""SSE decoder micro-benchmark: `python bench/sse_decoder.py [--baseline REV] [--quick]`.

Times `proxy.sse.SSEDecoder` in the working tree against the one at a git revision (default
HEAD), in one process, on: one huge event with no blank line until its end, fed in 64 KiB reads
(the case that was quadratic; one long line, or many short ones), and a typical chat stream of
20 ~200-byte `data:` events fed one event per read, four per read and all in one read (the hot
path, which must not get slower). Figures are this process's CPU time (so other load on the
machine counts less), best of several runs, the two decoders taking turns; the baseline decoder
finds no events in a CR-only stream, so those rows have no "before".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from proxy import sse as current  # noqa: E402

READ = 64 * 1024


def load_baseline(rev: str) -> types.ModuleType:
    """proxy/sse.py as of `rev`, as a module of its own (nothing else is imported from there)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:proxy/sse.py"], cwd=REPO, check=True, capture_output=True
    ).stdout
    module = types.ModuleType("sse_baseline")
    sys.modules[module.__name__] = module  # dataclasses looks its module up there
    exec(compile(source, f"{rev}:proxy/sse.py", "exec"), module.__dict__)
    return module


def chat_stream(newline: bytes) -> list[bytes]:
    """20 chat.completion.chunk events of about 200 bytes, as an OpenAI-style upstream sends."""
    events = []
    for i in range(19):
        chunk = {
            "id": "chatcmpl-9xYzAbCdEfGh",
            "object": "chat.completion.chunk",
            "created": 1718000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}],
        }
        events.append(b"data: " + json.dumps(chunk).encode() + newline * 2)
    events.append(b"data: [DONE]" + newline * 2)
    return events


def in_reads(events: list[bytes], per_read: int) -> list[bytes]:
    return [b"".join(events[i : i + per_read]) for i in range(0, len(events), per_read)]


def huge_event(size: int, line: int = 0) -> list[bytes]:
    """One event of `size` bytes in 64 KiB reads: one line, or `data:` lines of `line` bytes."""
    if line:
        stream = (b"data: " + b"x" * (line - 7) + b"\n") * (size // line) + b"\n"
    else:
        stream = b"data: " + b"x" * size + b"\n\n"
    return [stream[i : i + READ] for i in range(0, len(stream), READ)]


def decode_all(module: types.ModuleType, reads: list[bytes]) -> int:
    decoder = module.SSEDecoder()
    return sum(len(decoder.decode(read)) for read in reads) + len(decoder.flush())


def best_times(mods: list, reads: list[bytes], repeat: int, number: int) -> list[float | None]:
    """Best seconds per decode of all `reads` (fresh decoder, flush included) for each module;
    the modules take turns in every round, so a busy machine skews them alike."""
    best: list[float | None] = [None if m is None else float("inf") for m in mods]
    for _ in range(repeat):
        for i, module in enumerate(mods):
            if module is None:
                continue
            started = time.process_time()
            for _ in range(number):
                decode_all(module, reads)
            best[i] = min(best[i], (time.process_time() - started) / number)
    return best


def print_row(name: str, unit: str, figures: list[float | None]) -> None:
    cells = ["-" if f is None else f"{f:.2f}" for f in figures]
    ratio = f"{figures[1] / figures[0]:.3f}" if None not in figures else "-"
    print(f"{name:<40} {cells[0]:>10} {cells[1]:>10}  {unit:<10} {ratio:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare against")
    parser.add_argument("--quick", action="store_true", help="no 50 MiB run for the baseline")
    parser.add_argument("--chat-only", action="store_true", help="only the typical streams")
    args = parser.parse_args()
    baseline = load_baseline(args.baseline)
    print(f"{'case':<40} {'before':>10} {'after':>10}  {'unit':<10} {'after/before':>8}")
    for megabytes in () if args.chat_only else (10, 50):
        mods = [None if args.quick and megabytes == 50 else baseline, current]
        reads = huge_event(megabytes * 1024 * 1024)
        figures = best_times(mods, reads, repeat=1 if megabytes == 50 else 3, number=1)
        print_row(f"one {megabytes} MiB event in 64 KiB reads", "s", figures)
    if not args.chat_only:
        reads = huge_event(10 * 1024 * 1024, line=100)
        figures = best_times([baseline, current], reads, repeat=3, number=1)
        print_row("one 10 MiB event of 100-byte lines", "s", figures)
    for label, newline in (("LF", b"\n"), ("CRLF", b"\r\n"), ("CR", b"\r")):
        events = chat_stream(newline)
        # the baseline finds no event in a CR-only stream: nothing to compare with
        mods = [None if newline == b"\r" else baseline, current]
        for per_read in (1, 4, 20):
            figures = best_times(mods, in_reads(events, per_read), repeat=9, number=1000)
            print_row(
                f"20-event chat, {label}, {per_read}/read",
                "us/stream",
                [None if f is None else f * 1e6 for f in figures],
            )


if __name__ == "__main__":
    main()
