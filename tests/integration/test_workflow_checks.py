"""tests/tools/check_workflows.js (run by scripts/check-stack.sh) checks
every GitHub Actions workflow against SchemaStore's workflow schema and
the repository's rules. These tests show that the repository's workflows
pass it and that it fails each kind of broken workflow, naming the file,
the line and the problem: a small workflow broken one way per file, and
the real workflows broken the same ways."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "tools" / "check_workflows.js"
WORKFLOWS = ROOT / ".github" / "workflows"

SHA = "08c6903cd8c0fde910a37f88322edcfb5dd907a8"

GOOD = f"""\
name: minimal
on:
  push:
    branches: [main]
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - uses: actions/checkout@{SHA} # v5.0.0
      - uses: actions/setup-node@v4.4.0
      - uses: ./.github/actions/local
      - uses: docker://debian:12
      - run: make test
  reuse:
    uses: octo/shared/.github/workflows/build.yml@v1.2.3
"""


def sub(old, new, text=GOOD):
    assert old in text, old
    return text.replace(old, new, 1)


def drop(line, text=GOOD):
    return sub(line + "\n", "", text)


# name: (workflow text, line of the problem, what the line must say)
CASES = {
    "uses-branch": (sub("setup-node@v4.4.0", "setup-node@main"), 13,
                    r'uses "actions/setup-node@main": "main" can move'),
    "uses-major-tag": (sub("setup-node@v4.4.0", "setup-node@v4"), 13,
                       r'uses "actions/setup-node@v4": "v4" can move'),
    "uses-no-version": (sub("setup-node@v4.4.0", "setup-node"), 13,
                        r'uses "actions/setup-node": no version'),
    "uses-sha-without-release": (sub(f"{SHA} # v5.0.0", SHA), 12,
                                 r"a commit SHA needs its release as a comment"),
    "uses-docker-latest": (sub("docker://debian:12", "docker://debian:latest"), 15,
                           r'uses "docker://debian:latest": pin the image'),
    "reusable-workflow-branch": (sub("build.yml@v1.2.3", "build.yml@main"), 18,
                                 r'uses "octo/shared/.github/workflows/build.yml@main"'),
    "no-timeout": (drop("    timeout-minutes: 5"), 8,
                   r'job "build": no timeout-minutes'),
    "no-permissions": (drop("permissions:\n  contents: read"), 1,
                       r"no top-level permissions"),
    "write-all": (sub("permissions:\n  contents: read", "permissions: write-all"), 5,
                  r"top-level permissions: write-all"),
    "runner-latest": (sub("ubuntu-24.04", "ubuntu-latest"), 9,
                      r'job "build": runs-on ubuntu-latest moves'),
    "schema-unknown-job-key": (sub("    runs-on:", "    runs_on:"), 9,
                               r'schema: jobs\.build: unknown key "runs_on"'),
    "schema-unknown-event": (sub("  push:", "  pushh:"), 3,
                             r'schema: on: unknown key "pushh"'),
    "schema-bad-permission": (sub("contents: read", "contents: reed"), 6,
                              r'schema: permissions\.contents: must be one of "read", "write", "none"'),
    "schema-bad-timeout": (sub("timeout-minutes: 5", "timeout-minutes: five"), 10,
                           r"schema: jobs\.build\.timeout-minutes: must be an expression"),
    "yaml-duplicate-key": (sub("    timeout-minutes: 5\n",
                               "    timeout-minutes: 5\n    timeout-minutes: 6\n"), 11,
                           r"YAML: Map keys must be unique"),
    "yaml-syntax": (sub("      - run: make test", "      - run: make test\n      run: again"), 17,
                    r"YAML: "),
}


def node():
    path = shutil.which("node")
    assert path, "no node: make deps installs it"
    return path


def run_check(*args, cwd=ROOT):
    return subprocess.run([node(), str(CHECK), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def problems(stdout):
    """{file name: ["LINE: message", ...]} from the check's output."""
    out = {}
    for line in stdout.splitlines()[:-1]:
        m = re.match(r"^(.+?):(\d+): (.+)$", line)
        assert m, f"not a FILE:LINE: problem line: {line!r}"
        out.setdefault(Path(m.group(1)).name, []).append(f"{m.group(2)}: {m.group(3)}")
    return out


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """The check's run over the good workflow and one broken copy per case."""
    d = tmp_path_factory.mktemp("workflows")
    (d / "good.yml").write_text(GOOD)
    for name, (text, _, _) in CASES.items():
        (d / f"{name}.yml").write_text(text)
    p = run_check(d, cwd=d)
    return p, problems(p.stdout)


def test_repository_workflows_pass():
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert {"ci.yml", "docker-validate.yml", "security-scan.yml",
            "deploy-infrastructure.yml"} <= set(names), names
    p = run_check()
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1] == f"{len(names)} passed, 0 failed", p.stdout


def test_good_workflow_passes(broken):
    p, found = broken
    assert "good.yml" not in found, found.get("good.yml")


def test_summary_counts_files_and_exit_status(broken):
    p, found = broken
    assert p.returncode == 1
    assert p.stdout.splitlines()[-1] == f"1 passed, {len(CASES)} failed"
    assert set(found) == {f"{name}.yml" for name in CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_workflow_fails(broken, name):
    _, found = broken
    _, line, pattern = CASES[name]
    lines = found.get(f"{name}.yml", [])
    assert any(re.match(rf"{line}: .*{pattern}", entry) for entry in lines), \
        f"want line {line}: /{pattern}/, got {lines}"


# The real workflows, each broken once: the rules and the schema apply to
# them, not only to the small one above.
REAL_BREAKS = {
    "timeout": (r"\n    timeout-minutes: \d+\n", "\n", r'job "[\w-]+": no timeout-minutes'),
    "pin": (r"(uses: [\w./-]+)@[0-9a-f]{40} # v[\d.]+", r"\1@main", r'"main" can move'),
    "permissions": (r"\npermissions:\n  contents: read\n", "\n", r"no top-level permissions"),
    "schema": (r"\n  contents: read\n", "\n  contents: reed\n",
               r"schema: permissions\.contents: must be one of"),
}


REAL = ["ci.yml", "docker-validate.yml", "security-scan.yml", "deploy-infrastructure.yml"]


@pytest.fixture(scope="module")
def real_broken(tmp_path_factory):
    """One run of the check over every real workflow broken every way."""
    d = tmp_path_factory.mktemp("real")
    for workflow in REAL:
        text = (WORKFLOWS / workflow).read_text()
        for kind, (pattern, repl, _) in REAL_BREAKS.items():
            broken_text, n = re.subn(pattern, repl, text, count=1)
            assert n == 1, f"{workflow} has nothing to break for {kind}"
            (d / f"{kind}-{workflow}").write_text(broken_text)
    p = run_check(d, cwd=d)
    return p, problems(p.stdout)


@pytest.mark.parametrize("workflow", REAL)
@pytest.mark.parametrize("kind", sorted(REAL_BREAKS))
def test_real_workflow_broken_fails(real_broken, workflow, kind):
    p, found = real_broken
    want = REAL_BREAKS[kind][2]
    lines = found.get(f"{kind}-{workflow}", [])
    assert any(re.match(rf"\d+: .*{want}", entry) for entry in lines), \
        f"want /{want}/, got {lines}"
    assert p.returncode == 1
    assert p.stdout.splitlines()[-1] == f"0 passed, {len(REAL) * len(REAL_BREAKS)} failed"


def test_cannot_run_is_not_a_pass(tmp_path):
    p = run_check(tmp_path / "missing")
    assert p.returncode == 2
    assert "no such file" in p.stderr
    (tmp_path / "notes.txt").write_text("no workflow here\n")
    p = run_check(tmp_path)
    assert p.returncode == 2
    assert "no workflow" in p.stderr
