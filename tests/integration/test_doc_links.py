"""Every relative link and every #anchor in the project's Markdown resolves.

For each tracked .md file (README.md, docs/, and the READMEs beside the
code), every inline link [text](target) that is not a URL with a scheme
must name a file or directory of the repository, relative to the linking
file; a #fragment must be a heading of the target Markdown file (as GitHub
makes its anchors: tests/tools/check_rules.py's github_anchor, with -1, -2
for repeated headings) or an explicit <a id>/<a name>. Code blocks and
inline code are not links."""

import re
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "tools"))
from check_rules import github_anchor  # noqa: E402

LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?"
                  r"(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def markdown_files():
    out = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.split()]


def prose_lines(path):
    """(line number, text) of the lines outside fenced code, with inline
    code removed."""
    fence = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            if fence is None:
                fence = m.group(1)[0] * len(m.group(1))
            elif m.group(1).startswith(fence):
                fence = None
            continue
        if fence is None:
            yield n, re.sub(r"`[^`]*`", "", line)


_anchor_cache = {}


def anchors(path):
    if path not in _anchor_cache:
        seen, out = {}, set()
        for _, line in prose_lines(path):
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                # a link in a heading counts by its text
                text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
                a = github_anchor(text)
                k = seen.get(a, 0)
                seen[a] = k + 1
                out.add(a if k == 0 else "%s-%d" % (a, k))
            out.update(HTML_ANCHOR.findall(line))
        # headings with inline code: their code counts too
        for line in path.read_text().splitlines():
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m and "`" in m.group(1):
                out.add(github_anchor(m.group(1)))
        _anchor_cache[path] = out
    return _anchor_cache[path]


def broken_links(path):
    bad = []
    for n, line in prose_lines(path):
        for target in LINK.findall(line):
            if SCHEME.match(target):
                continue
            where = "%s:%d: %s" % (path.relative_to(REPO), n, target)
            file_part, _, fragment = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part \
                else path
            try:
                dest.relative_to(REPO)
            except ValueError:
                bad.append(where + " (outside the repository)")
                continue
            if not dest.exists():
                bad.append(where + " (no such file)")
                continue
            if fragment and dest.suffix == ".md" and \
                    fragment not in anchors(dest):
                bad.append(where + " (no such heading)")
    return bad


def test_markdown_files_found():
    files = {p.relative_to(REPO).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/SLO.md", "docs/RUNBOOKS.md"} <= files


@pytest.mark.parametrize("path", markdown_files(),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve(path):
    bad = broken_links(path)
    assert not bad, "broken links:\n" + "\n".join(bad)


def test_checker_finds_what_is_broken(tmp_path, monkeypatch):
    """The checker itself: a missing file, a missing heading and a link
    that leaves the repository are reported; code is not a link."""
    doc = REPO / "docs" / ".link-check-probe.md"
    doc.write_text("# Top\n\n## Two words\n\n"
                   "[ok](#two-words) [ok](SLO.md#objective-and-budget) "
                   "[ok](../README.md) [ok](https://example.com/x#y)\n"
                   "[bad](nope.md) [bad](#three-words) "
                   "[bad](SLO.md#nothing-here) [bad](../../etc)\n"
                   "`[code](not-a-link.md)`\n\n```\n[fenced](x.md)\n```\n")
    try:
        bad = broken_links(doc)
    finally:
        doc.unlink()
    assert [b.split(": ", 1)[1] for b in bad] == [
        "nope.md (no such file)", "#three-words (no such heading)",
        "SLO.md#nothing-here (no such heading)",
        "../../etc (outside the repository)"], bad
