"""Replace one benchmark's section of docs/benchmarks.md with the Markdown read from stdin, and
print it. A section sits between <!-- NAME-bench:start --> and <!-- NAME-bench:end --> (appended
at the end of the file when missing); the rest of the file is left as it is, and bench/run.sh
keeps every such section when it rewrites the file. Standard library only.

  python3 bench/section.py NAME < section.md
"""
import re
import sys

name = sys.argv[1]
table = sys.stdin.read().strip()
print(table)
path = "docs/benchmarks.md"
start, end = f"<!-- {name}-bench:start -->", f"<!-- {name}-bench:end -->"
block = f"{start}\n{table}\n{end}"
doc = open(path).read()
if start in doc:
    doc = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: block, doc, flags=re.S)
else:
    doc = doc.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(doc)
