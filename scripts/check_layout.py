#!/usr/bin/env python3
"""The house's layout rules, checked (issue 19; run by .ci/run):

1. no Rust file of src/ or cli/src/ is over 600 lines;
2. the library's top-level modules form no dependency circle, and
3. `error` (the bottom of the house) names no other module of the crate.

A module's dependencies are read from its code (comments skipped): `crate::x`, `crate::{x, ...}`,
`super::` chains that climb out of it, the crate root's re-exports (`crate::Error` is `error`)
and the `open_enum!` macro. Prints the graph; exits 1 on any breach, naming it.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MAX_LINES = 600


def rust_files(top):
    for d, _, fs in os.walk(top):
        for f in sorted(fs):
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def code_lines(path):
    for line in open(path, encoding="utf-8"):
        code = line.split("//")[0]
        if code.strip():
            yield code


def main():
    failures = []
    for top in ("src", "cli/src"):
        for f in rust_files(os.path.join(ROOT, top)):
            n = sum(1 for _ in open(f, encoding="utf-8"))
            if n > MAX_LINES:
                failures.append(f"{os.path.relpath(f, ROOT)} has {n} lines (at most {MAX_LINES}): split it along the data flow")

    src = os.path.join(ROOT, "src")
    lib = open(os.path.join(src, "lib.rs"), encoding="utf-8").read()
    mods = re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", lib, re.M)
    reexports = {}
    for m, names in re.findall(r"^pub use (\w+)::\{?([^;}]*)\}?;", lib, re.M):
        for name in re.findall(r"\w+", names):
            reexports[name] = m

    def files_of(m):
        if os.path.isfile(os.path.join(src, f"{m}.rs")):
            yield os.path.join(src, f"{m}.rs"), 0
        folder = os.path.join(src, m)
        if os.path.isdir(folder):
            for f in rust_files(folder):
                rel = os.path.relpath(f, folder)
                depth = rel.count(os.sep) + (0 if rel.endswith("mod.rs") else 1)
                yield f, depth

    edges = {m: set() for m in mods}
    for m in mods:
        for f, depth in files_of(m):
            for code in code_lines(f):
                named = re.findall(r"crate::(\w+)", code)
                for group in re.findall(r"crate::\{([^}]*)", code):
                    named += re.findall(r"\w+", group)
                for chain, name in re.findall(r"((?:super::)+)(\w+)", code):
                    if chain.count("super::") > depth:
                        named.append(name)
                if "open_enum!" in code or "open_enum::" in code:
                    named.append("open_enum")
                for x in named:
                    x = reexports.get(x, x)
                    if x in edges and x != m:
                        edges[m].add(x)

    for m in mods:
        print(f"{m:13} -> {', '.join(sorted(edges[m])) or '(none)'}")
    if edges.get("error"):
        failures.append(f"error names {', '.join(sorted(edges['error']))}: it must name no other module (move the type down into error.rs)")

    state = {m: 0 for m in mods}

    def visit(u, stack):
        state[u] = 1
        stack.append(u)
        for v in sorted(edges[u]):
            if state[v] == 1:
                failures.append("module circle: " + " -> ".join(stack[stack.index(v):] + [v]))
            elif state[v] == 0:
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for m in mods:
        if state[m] == 0:
            visit(m, [])

    if failures:
        for f in failures:
            print("layout: " + f, file=sys.stderr)
        return 1
    print(f"layout: no file over {MAX_LINES} lines, no module circle, error at the bottom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
