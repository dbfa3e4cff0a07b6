#!/usr/bin/env python3
"""Checks the links of the repository's markdown: README.md, docs/*.md and every other tracked .md file.

A link passes when it is relative, names a file or folder inside the repository that exists, and, when it has a
#anchor into a markdown file, that file has a heading with that anchor (GitHub's rule: lower case, punctuation
dropped, spaces to hyphens, "-1", "-2" for repeats). A link with a scheme (http:, https:, mailto:, ...), an absolute
path, a path that leaves the repository, or any mention of the team's folder outside the repository
("shared/docs/", also in inline code) fails. Links in code blocks and inline code are not read: example hosts in
config snippets are not links.

Usage: check_links.py [--root DIR]   exit 0 when every link resolves, 1 (listing each bad link) otherwise.
       check_links.py --self-test    checks that broken links of each kind are caught (exit 0 when they are).
"""

import argparse
import os
import re
import sys
import tempfile

SKIP_DIRS = {".git", "node_modules", ".cache"}
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
OUTSIDE_TEXT = re.compile(r"shared/docs/")


def markdown_files(root):
    """Every .md file under root, build folders and hidden folders excepted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in SKIP_DIRS and not d.startswith(".") and not (rel == "." and d.startswith("build")))
        for name in sorted(filenames):
            if name.endswith(".md"):
                found.append(os.path.join(dirpath, name))
    return found


def prose_lines(text):
    """(line number, line, line with inline code removed) of the lines outside fenced code blocks."""
    in_fence = None
    for number, line in enumerate(text.split("\n"), 1):
        fence = FENCE.match(line)
        if fence:
            if in_fence is None:
                in_fence = fence.group(1)
            elif fence.group(1) == in_fence:
                in_fence = None
            continue
        if in_fence is None:
            yield number, line, INLINE_CODE.sub("", line)


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache):
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        seen = {}
        result = set()
        in_fence = None
        for line in text.split("\n"):
            fence = FENCE.match(line)
            if fence:
                in_fence = fence.group(1) if in_fence is None else (None if fence.group(1) == in_fence else in_fence)
                continue
            match = HEADING.match(line) if in_fence is None else None
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
        cache[path] = result
    return cache[path]


def check(root):
    """Returns the list of problems, one text per bad link."""
    root = os.path.realpath(root)
    problems = []
    cache = {}
    for path in markdown_files(root):
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for number, raw, line in prose_lines(text):
            where = f"{rel}:{number}"
            if OUTSIDE_TEXT.search(raw):
                problems.append(f"{where}: names a folder outside the repository (shared/docs/)")
            targets = INLINE_LINK.findall(line)
            definition = REFERENCE_DEF.match(line)
            if definition:
                targets.append(definition.group(1))
            for target in targets:
                problem = check_target(root, path, target, cache)
                if problem:
                    problems.append(f"{where}: ({target}) {problem}")
    return problems


def check_target(root, source, target, cache):
    if not target:
        return "empty link"
    if SCHEME.match(target) or target.startswith("//"):
        return "leaves the repository (links must be relative paths inside it)"
    if target.startswith("/"):
        return "absolute path (links must be relative)"
    file_part, _, anchor = target.partition("#")
    if file_part:
        resolved = os.path.realpath(os.path.join(os.path.dirname(source), file_part))
        if os.path.commonpath([root, resolved]) != root:
            return "points outside the repository"
        if not os.path.exists(resolved):
            return "no such file"
    else:
        resolved = source
    if anchor:
        if not resolved.endswith(".md") or os.path.isdir(resolved):
            return "an anchor into a file that is not markdown"
        if anchor not in anchors(resolved, cache):
            return f"no heading with anchor #{anchor} in {os.path.relpath(resolved, root)}"
    return None


def self_test():
    """Builds small trees, each with one kind of broken link, and checks that each is reported."""
    cases = {
        "missing file": "[x](docs/nowhere.md)",
        "missing anchor": "[x](docs/a.md#no-such-heading)",
        "missing local anchor": "[x](#nothing-here)",
        "http link": "[x](https://example.com/)",
        "outside the repository": "[x](../outside.md)",
        "absolute path": "[x](/etc/passwd)",
        "reference definition": "[x]: docs/gone.md",
        "shared folder named": "See ../shared/docs/PROTOCOL.md for it.",
        "shared folder in code": "The contract is `../shared/docs/PROTOCOL.md`.",
    }
    failures = []
    for name, line in cases.items():
        with tempfile.TemporaryDirectory() as parent:
            root = os.path.join(parent, "repo")
            os.makedirs(os.path.join(root, "docs"))
            with open(os.path.join(parent, "outside.md"), "w") as f:
                f.write("# Outside\n")
            with open(os.path.join(root, "docs", "a.md"), "w") as f:
                f.write("# A page\n\n## Limits: what one client may do\n")
            with open(os.path.join(root, "README.md"), "w") as f:
                f.write(f"# Front\n\n[ok](docs/a.md#limits-what-one-client-may-do) [ok](#front)\n\n{line}\n"
                        "\n```\n[not a link](https://example.com/) ../shared/docs/X\n```\n")
            problems = check(root)
            if len(problems) != 1:
                failures.append(f"{name}: expected 1 problem, got {problems}")
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        with open(os.path.join(root, "docs", "a.md"), "w") as f:
            f.write("# Twice\n\n## Twice\n\n## `code` and **bold**: §1-§5\n")
        with open(os.path.join(root, "README.md"), "w") as f:
            f.write("[a](docs/a.md#twice) [b](docs/a.md#twice-1) [c](docs/a.md#code-and-bold-1-5) `[d](nowhere)`\n")
        problems = check(root)
        if problems:
            failures.append(f"good links reported: {problems}")
    for failure in failures:
        print("self-test failed:", failure)
    if not failures:
        print(f"self-test: {len(cases)} kinds of broken link caught, good links pass")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    problems = check(args.root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} bad link(s)")
        return 1
    print("every link resolves inside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
