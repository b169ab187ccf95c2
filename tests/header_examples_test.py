"""Every `// Example:` block in the project's headers compiles.

A header's example is the block that follows a line `// Example:` (or
`// Example (what it shows):`): the next lines that start with `//   `. Each
block becomes one translation unit:

    #include "<the header>"
    #include "absl/status/status.h"
    <the block's own #include lines, if it has any>
    using namespace rnn;            // each rnn namespace the header opens
    absl::Status HeaderExample() {
      <the block>
      return absl::OkStatus();
    }

so an example may `return x.status();` as most do. Class and struct
definitions at the start of a block go at namespace scope, before that
function (which is left out when nothing follows them).
Everything else an example uses it must declare itself: the example is read
as complete code. `#line` directives map every line back to the header, so
the compiler's messages name the header's comment line.

Each unit is compiled with `-std=c++17 -fsyntax-only -Wall -Wextra -Wpedantic
-Werror` (the project's language and warnings) plus the include directories
and definitions compile_commands.json gives the header's own .cc file (or
another source file of its folder, i.e. of its library), so generated proto
headers and library definitions are found as the library sees them.

Usage (ctest runs it after the build, which writes compile_commands.json
and generates the proto headers):
    /usr/bin/python3 tests/header_examples_test.py BUILD_DIR [--cxx=g++] [header ...]
"""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER_ROOTS = ("model", "server", "client")
WARNINGS = ["-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]

EXAMPLE_RE = re.compile(r"^(\s*)// Example(?: \([^)]*\))?:\s*$")
NAMESPACE_RE = re.compile(r"^namespace\s+(rnn(?:::\w+)*)\s*\{", re.M)
TYPE_RE = re.compile(r"^\s*(class|struct)\b")
INCLUDE_RE = re.compile(r"^\s*#\s*include\b")

# Must fail to compile: proves the flags reject C++20 designated
# initializers, the mistake this test was written to catch.
CANARY = "struct P { int a = 0; };\nP p{.a = 1};\n"


class Example:
    def __init__(self, header, line, title, lines):
        self.header = header  # Relative to SOURCE_DIR.
        self.line = line      # 1-based line of the block's first code line.
        self.title = title    # The "// Example...:" line, stripped.
        self.lines = lines    # (line number, code with the prefix blanked).

    def name(self):
        return f"{self.header}:{self.line - 1}"


def find_headers(only):
    if only:
        return sorted(os.path.relpath(os.path.abspath(h), SOURCE_DIR) for h in only)
    headers = []
    for root in HEADER_ROOTS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(SOURCE_DIR, root)):
            dirnames.sort()
            headers += [os.path.relpath(os.path.join(dirpath, f), SOURCE_DIR)
                        for f in filenames if f.endswith(".h")]
    return sorted(headers)


def extract_examples(header):
    with open(os.path.join(SOURCE_DIR, header), encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    examples = []
    i = 0
    while i < len(lines):
        m = EXAMPLE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        prefix = m.group(1) + "//   "
        title = lines[i].strip()
        block = []
        j = i + 1
        while j < len(lines) and lines[j].startswith(prefix):
            # Blank the prefix rather than strip it: columns stay the header's.
            block.append((j + 1, " " * len(prefix) + lines[j][len(prefix):]))
            j += 1
        examples.append(Example(header, i + 2, title, block))
        i = j
    return examples, NAMESPACE_RE.findall(text)


def using_directives(namespaces):
    names = []
    for ns in namespaces:
        parts = ns.split("::")
        for k in range(1, len(parts) + 1):
            name = "::".join(parts[:k])
            if name not in names:
                names.append(name)
    return "".join(f"using namespace {n};\n" for n in names)


def split_type_definitions(code):
    """The leading class/struct definitions (with the comments before them),
    which go at namespace scope, and the statements after them."""
    types = []
    i = 0
    while True:
        j = i
        while j < len(code) and (not code[j][1].strip() or code[j][1].strip().startswith("//")):
            j += 1
        if j == len(code) or not TYPE_RE.match(code[j][1]):
            return types, code[i:]
        depth, opened = 0, False
        while j < len(code):
            line = code[j][1]
            depth += line.count("{") - line.count("}")
            opened = opened or "{" in line
            j += 1
            if (opened and depth == 0) or (not opened and line.rstrip().endswith(";")):
                break
        types += code[i:j]
        i = j


def translation_unit(example, namespaces):
    includes = [(n, c) for n, c in example.lines if INCLUDE_RE.match(c)]
    code = [(n, c) for n, c in example.lines if not INCLUDE_RE.match(c)]
    types, statements = split_type_definitions(code)
    path = os.path.join(SOURCE_DIR, example.header)
    out = [f'#include "{example.header}"', '#include "absl/status/status.h"']
    for n, c in includes:
        out += [f'#line {n} "{path}"', c]
    out += ['#line 1 "<example wrapper>"', using_directives(namespaces)]
    for n, c in types:
        out += [f'#line {n} "{path}"', c]
    if statements:
        out += ['#line 1 "<example wrapper>"', "absl::Status HeaderExample() {"]
        for n, c in statements:
            out += [f'#line {n} "{path}"', c]
        out += ['#line 1 "<example wrapper>"', "  return absl::OkStatus();", "}"]
    return "\n".join(out) + "\n"


def load_compile_commands(build_dir):
    path = os.path.join(build_dir, "compile_commands.json")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    by_file = {}
    for e in entries:
        args = e.get("arguments") or shlex.split(e["command"])
        by_file[os.path.normpath(os.path.join(e["directory"], e["file"]))] = (args, e["directory"])
    return by_file


def library_flags(header, commands):
    """Include directories and definitions of a source file of `header`'s
    library: its own .cc, else another source of its folder (tests last),
    else of the nearest parent folder that has one."""
    stem = os.path.splitext(os.path.join(SOURCE_DIR, header))[0]
    folder = os.path.dirname(stem)
    candidates = [stem + ".cc"]
    while folder.startswith(SOURCE_DIR) and folder != SOURCE_DIR:
        in_folder = sorted(f for f in commands if os.path.dirname(f) == folder)
        candidates += sorted(in_folder, key=lambda f: f.endswith("_test.cc"))
        folder = os.path.dirname(folder)
    for source in candidates:
        if source in commands:
            args, directory = commands[source]
            return source, extract_flags(args, directory)
    return None, None


def extract_flags(args, directory):
    """Include paths (made absolute), -D/-U definitions, -pthread and
    -fopenmp (which define macros); not warnings or optimization."""
    flags = []
    i = 1  # args[0] is the compiler.
    while i < len(args):
        a = args[i]
        if a in ("-I", "-isystem", "-iquote", "-include") and i + 1 < len(args):
            flags += [a, os.path.join(directory, args[i + 1])]
            i += 1
        elif a.startswith("-I"):
            flags.append("-I" + os.path.join(directory, a[2:]))
        elif a.startswith(("-D", "-U")) or a in ("-pthread", "-fopenmp"):
            flags.append(a)
        i += 1
    return flags


def compile_unit(cxx, flags, source_text, workdir, name):
    path = os.path.join(workdir, name + ".cc")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source_text)
    cmd = [cxx, *WARNINGS, *flags, path]
    r = subprocess.run(cmd, cwd=SOURCE_DIR, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip(), cmd


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build_dir", help="a configured and built build tree")
    parser.add_argument("headers", nargs="*", help="only these headers")
    parser.add_argument("--cxx", default="g++")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep", help="write the translation units here")
    parser.add_argument("--verbose", action="store_true",
                        help="print each compile command")
    args = parser.parse_intermixed_args()
    start = time.monotonic()

    commands = load_compile_commands(os.path.abspath(args.build_dir))
    jobs = []  # (example, flags, source file the flags came from, text)
    problems = []
    for header in find_headers(args.headers):
        examples, namespaces = extract_examples(header)
        if not examples:
            continue
        source, flags = library_flags(header, commands)
        if flags is None:
            problems.append(f"FAIL {header}: no source file of its library in "
                            "compile_commands.json")
            continue
        for ex in examples:
            if not ex.lines:
                problems.append(f"FAIL {ex.name()}: '{ex.title}' is followed by "
                                "no `//   ` code lines")
                continue
            jobs.append((ex, flags, source, translation_unit(ex, namespaces)))

    workdir = args.keep or tempfile.mkdtemp(prefix="header_examples_")
    os.makedirs(workdir, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        canary = pool.submit(compile_unit, args.cxx, [], CANARY, workdir, "canary")
        futures = [
            pool.submit(compile_unit, args.cxx, flags, text, workdir,
                        f"example_{k:02d}_" + re.sub(r"\W", "_", ex.header))
            for k, (ex, flags, _, text) in enumerate(jobs)]
        results = [f.result() for f in futures]
        canary_rc, canary_out, _ = canary.result()

    examples_failed = len(problems)
    for (ex, _, source, _), (rc, output, cmd) in zip(jobs, results):
        via = os.path.relpath(source, SOURCE_DIR)
        if rc == 0:
            print(f"ok   {ex.name()}  ({ex.title}; flags of {via})")
        else:
            examples_failed += 1
            print(f"FAIL {ex.name()}  ({ex.title}; flags of {via})")
            print("     " + output.replace("\n", "\n     "))
        if args.verbose:
            print("     $ " + " ".join(shlex.quote(c) for c in cmd))
    for p in problems:
        print(p)
    failed = examples_failed
    if canary_rc == 0:
        failed += 1
        print("FAIL the canary (a C++20 designated initializer) compiled: "
              "the flags do not hold examples to C++17")
    if not jobs and not args.headers:
        failed += 1
        print("FAIL no `// Example:` blocks found under " + ", ".join(HEADER_ROOTS))

    if not args.keep:
        for f in os.listdir(workdir):
            os.remove(os.path.join(workdir, f))
        os.rmdir(workdir)
    total = len(jobs) + len(problems)
    print(f"{total - examples_failed} of {total} examples compile "
          f"({time.monotonic() - start:.1f} s, {args.cxx}, {args.jobs} jobs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
