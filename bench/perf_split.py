"""Where a server's samples go, by layer: `perf script` output (recorded with call graphs) on
stdin, one line per layer with its share of the samples. Used for the profile figures in
docs/benchmarks.md:

    perf record -F 1999 --call-graph dwarf,16384 -p PID -o perf.data -- sleep 4   # under wrk
    perf script -i perf.data | python3 bench/perf_split.py

A sample whose innermost frame is in the kernel counts as `kernel`. Any other sample counts for
the innermost frame that names one of the layers below (in this order), so the C code of
SQLite counts for the store that called it; allocation and copying count for the layer that
called them too, shown as `malloc/free/memcpy <- layer`. `--symbol NAME` prints instead the
share of samples with a frame containing NAME anywhere in the stack (inclusive).
"""
import re
import signal
import sys
from collections import Counter

LAYERS = [
    "sqlx_postgres", "sqlx_core", "async_graphql", "serde_json", "hyper::", "hyper_util", "axum",
    "tokio::", "tracing", "arcbase::graphql::encode", "arcbase::graphql::exec",
    "arcbase::graphql::collect", "arcbase::graphql::decode", "arcbase::sql", "arcbase::plan",
    "arcbase::arcql", "arcbase::store", "arcbase::ops", "arcbase::server", "arcbase::",
]
HELPERS = ["malloc", "free", "memcpy", "memmove", "alloc::", "core::fmt", "hashbrown"]


def stacks(lines):
    """Each sample's frames, innermost first, as (symbol, binary)."""
    cur = []
    for line in lines:
        line = line.rstrip()
        if not line:
            if cur:
                yield cur
            cur = []
            continue
        if not line.startswith((" ", "\t")):
            cur = []
            continue
        s = line.strip()
        m = re.search(r"\(([^)]*)\)$", s)
        dso = m.group(1) if m else ""
        s = re.sub(r"^[0-9a-f]+ ", "", s)
        s = re.sub(r" \([^)]*\)$", "", s)
        s = re.sub(r"\+0x[0-9a-f]+( \(inlined\))?$", "", s)
        cur.append((s, dso))
    if cur:
        yield cur


def layer(frames):
    if "kernel" in frames[0][1]:
        return "kernel"
    for i, (f, _) in enumerate(frames):
        helper = next((h for h in HELPERS if h in f), None)
        if helper:
            caller = next((l for g, _ in frames[i + 1:] for l in LAYERS if l in g), "other")
            return f"{helper.rstrip(':')} <- {caller}"
        found = next((l for l in LAYERS if l in f), None)
        if found:
            return found
    return "other"


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    args = sys.argv[1:]
    samples = list(stacks(sys.stdin))
    if not samples:
        sys.exit("no samples on stdin (perf script output expected)")
    counts = Counter()
    if args[:1] == ["--symbol"] and len(args) == 2:
        counts[args[1]] = sum(1 for st in samples if any(args[1] in f for f, _ in st))
    else:
        counts.update(layer(st) for st in samples)
    for name, n in counts.most_common(30):
        print(f"{100 * n / len(samples):5.1f}%  {name}")
    print(f"({len(samples)} samples)")


if __name__ == "__main__":
    main()
