"""`make run` installs only what running needs: scripts/deps.sh's group
`run` is enough for the whole path of `make run`, and holds none of the
test and bench tools.

Static, read from this machine's dpkg and apt (which `make test` filled
with the test group, a superset of run):
- the path of `make run`, followed from the Makefile's recipes of run,
  build and deps through every repository script they execute or source
  (scripts/deps.sh, scripts/run-local.sh, scripts/local/instance.sh): every
  external command it runs, found with `command -v` and its package with
  `dpkg -S`, is in the run group, its Depends/Pre-Depends closure (`apt-cache
  depends --recurse --important`) or Debian's required packages (what a
  minimal root has); a command reached through /etc/alternatives (cc, awk)
  passes when one of its alternatives does;
- the build `make build` configures: every file CMake found (compiler,
  make, pkg-config, binutils, each library pkg-config named) belongs to a
  package of that same closure, for run and for bench;
- every tool bench/run.sh's preflight requires comes from the bench
  group the same way;
- the run group, with its closure, holds none of podman, clang, clang-tidy,
  cppcheck, haproxy, varnish, nginx, wrk, nodejs, npm, gnuplot;
- test holds run, all holds every group.
Each check is shown to fail on a deliberately broken list. The real proof,
`make run` on a fresh Debian 12 root, is tests/containers/fresh_make_run.sh
(the container phase)."""

import functools
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

DEPS = REPO / "scripts" / "deps.sh"
# Never in run (nor pulled in by what run names): the test and bench tools.
FORBIDDEN = {"podman", "clang", "clang-14", "clang-tidy", "clang-format",
             "cppcheck", "haproxy", "varnish", "nginx", "nginx-light",
             "nginx-core", "nginx-common", "wrk", "nodejs", "npm",
             "gnuplot-nox", "gnuplot-data", "debootstrap"}

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg") is None or shutil.which("apt-cache") is None,
    reason="needs dpkg and apt (Debian)")


def group(name):
    out = subprocess.run([str(DEPS), "--list", name], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return out.split()


# ---------------------------------------------------------------- packages

@functools.lru_cache(maxsize=None)
def required_packages():
    """What every Debian root has: the installed packages of priority
    required or marked essential (debootstrap's minbase)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Priority} ${Essential}\n"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    return frozenset(f[0] for f in map(str.split, out.splitlines())
                     if len(f) == 3 and (f[1] == "required" or f[2] == "yes"))


@functools.lru_cache(maxsize=None)
def closure(pkgs):
    """pkgs and every package their Depends/Pre-Depends reach."""
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--important", *sorted(pkgs)],
        capture_output=True, text=True, check=True, timeout=120).stdout
    reached = {line.strip() for line in out.splitlines()
               if line and not line[0].isspace() and not line.startswith("<")}
    return frozenset(reached | set(pkgs))


def allowed(run_list):
    return closure(frozenset(run_list) | required_packages())


@functools.lru_cache(maxsize=None)
def dpkg_owner(path):
    """The packages that ship path (tried as given and across the /usr
    merge), or an empty set."""
    cands = [path]
    for a, b in (("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"),
                 ("/usr/lib/", "/lib/")):
        if path.startswith(a):
            cands.append(b + path[len(a):])
        elif path.startswith(b):
            cands.append(a + path[len(b):])
    for c in cands:
        p = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True,
                           timeout=30)
        owners = set()
        for line in p.stdout.splitlines():
            if line.startswith("diversion by") or ": " not in line:
                continue
            names, _, shipped = line.partition(": ")
            if shipped.strip() == c:
                owners |= {n.strip().split(":")[0] for n in names.split(",")}
        if owners:
            return frozenset(owners)
    return frozenset()


def owners(path):
    """The packages that ship path itself; for a link no package ships
    (/usr/bin/cc, /usr/bin/awk), those of what it points to, and through
    /etc/alternatives/NAME those of every alternative of NAME (any one
    will do)."""
    found = dpkg_owner(path)
    if found or not os.path.islink(path):
        return found
    hop = os.path.join(os.path.dirname(path), os.readlink(path))
    if hop.startswith("/etc/alternatives/"):
        alts = subprocess.run(
            ["update-alternatives", "--list", os.path.basename(hop)],
            capture_output=True, text=True, timeout=30).stdout.split()
        return frozenset().union(*(owners(a) for a in alts))
    return owners(hop)


# ------------------------------------------------------- commands of a script

BASH_WORDS = set(subprocess.run(
    ["bash", "-c", "compgen -b; compgen -k"], capture_output=True,
    text=True, check=True).stdout.split())


def _drop_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;&|("):
            return line[:i]
    return line


def _plain_text(text):
    """The script without comments and here-document bodies, with its
    continuation lines joined."""
    out, end = [], None
    for line in text.splitlines():
        if end is not None:
            if line.strip() == end:
                end = None
            out.append("")
            continue
        line = _drop_comment(line)
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            end = m.group(1)
        out.append(line)
    return re.sub(r"\\\n", " ", "\n".join(out))


def _substitutions(text):
    """(text with every $(...), <(...), >(...) as SUBST and $((...)) as 0,
    [the inner texts of the command substitutions])."""
    out, inner, i, quote = [], [], 0, None
    while i < len(text):
        ch = text[i]
        if quote == "'":
            quote = None if ch == "'" else quote
            out.append(ch)
            i += 1
            continue
        if ch == "'" and quote is None:
            quote = "'"
        elif ch == '"':
            quote = None if quote == '"' else '"'
        if text.startswith("$((", i):
            j = text.index("))", i)
            out.append("0")
            i = j + 2
            continue
        if text[i:i + 2] in ("$(", "<(", ">("):
            depth, j, q = 1, i + 2, None
            while depth:
                c = text[j]
                if q:
                    q = None if c == q else q
                elif c in "'\"":
                    q = c
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                j += 1
            inner.append(text[i + 2:j - 1])
            out.append(" SUBST ")
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out), inner


BASH_KEYWORDS = set(subprocess.run(
    ["bash", "-c", "compgen -k"], capture_output=True, text=True,
    check=True).stdout.split())


def shell_commands(text):
    """{first word of every simple command: its line}, the words of every
    nested command substitution included. Quoted words and expansions come
    out as Q and V and are passed over at the start of a command ($sudo
    cmd), as are keywords, assignments and `!`; tests ([ ], [[ ]]), array
    literals and case labels are not commands."""
    found = {}
    work = [_plain_text(text)]
    while work:
        body, inner = _substitutions(work.pop())
        work += inner
        body = re.sub(r"'[^']*'", " Q ", body)
        body = re.sub(r'"(?:\\.|[^"\\])*"', " Q ", body)
        body = re.sub(r"\$\{[^}]*\}|\$\w+|\$[@#?$!*-]", "V", body)
        body = re.sub(r"\b\w+\+?=\([^()]*\)", "V", body)
        body = re.sub(r"(?m)^\s*[\w*|.-]+\)", " ", body)
        # redirections and their targets: 2>&1, >&2, 9>>file, <file, <<EOF
        body = re.sub(r"\d*[<>]&\d*-?", " ", body)
        body = re.sub(r"\d*(?:&>>?|>>?|<<<|<<-?|<)\s*[^\s;&|()]+", " ", body)
        for line in body.split("\n"):
            for seg in re.split(r"&&|\|\||;;|[;&|(){}]", line):
                words = seg.split()
                while words and (
                        words[0] in BASH_KEYWORDS | {"exec", "V", "Q",
                                                     "SUBST"}
                        and words[0] not in {"for", "case", "select",
                                             "function", "[["}
                        or re.match(r"^\w+\+?=", words[0])):
                    words.pop(0)
                if not words or words[0] in {"for", "case", "select",
                                             "function", "[[", "["}:
                    continue
                found.setdefault(words[0], _line_of(text, words[0]))
                if words[0] in {".", "source"} and len(words) > 1:
                    found.setdefault(". " + words[1],
                                     _line_of(text, words[1]))
    return found


def _line_of(text, word):
    """The first line of text that has word as a word (0: none)."""
    pat = re.compile(r"(^|[\s(;|&\"$])" + re.escape(word) + r"($|[\s;|&)\"])")
    for n, line in enumerate(text.splitlines(), 1):
        if pat.search(_drop_comment(line)):
            return n
    return 0


def _makefile_recipes(targets):
    """The recipe lines of targets, with $(MAKE) as make and the
    Makefile's variables as plain words, and the commands of $(shell)."""
    text = (REPO / "Makefile").read_text()
    lines, current = [], None
    for line in text.splitlines():
        m = re.match(r"^([\w.-]+):", line)
        if m:
            current = m.group(1)
            continue
        if line.startswith("\t") and current in targets:
            lines.append(line.strip().lstrip("@-"))
        elif not line.startswith("\t"):
            current = None
    lines += re.findall(r"\$\(shell\s+([^)]*)\)", text)
    joined = "\n".join(lines).replace("$(MAKE)", "make")
    return re.sub(r"\$\((\w+)\)", r"\1", joined)


def run_path_commands():
    """{command: where it is called} for the whole path of `make run`:
    the Makefile's run/build/deps recipes, and every repository script
    they run or source, followed."""
    found = {"make": "the user (make run)"}
    todo = [("Makefile", _makefile_recipes({"run", "build", "deps"}))]
    scanned = set()
    while todo:
        where, text = todo.pop()
        scanned.add(where)
        funcs = set(re.findall(r"^\s*(?:function\s+)?([\w-]+)\s*\(\)", text,
                               re.M))
        for word, line in shell_commands(text).items():
            sourced = word.startswith(". ")
            word = word[2:] if sourced else word
            if word in BASH_WORDS or word in funcs:
                continue
            if "/" in word and not word.startswith("/"):
                if (REPO / word).is_file() and word not in scanned and (
                        sourced or not word.startswith("build/")):
                    todo.append((word, (REPO / word).read_text()))
                continue
            if not re.match(r"^[\w./+-]+$", word) or word.isdigit():
                continue
            found.setdefault(word, where if where == "Makefile"
                             else f"{where}:{line}")
    funcs_everywhere = set()
    for rel in scanned - {"Makefile"}:
        funcs_everywhere |= set(re.findall(
            r"^\s*(?:function\s+)?([\w-]+)\s*\(\)",
            (REPO / rel).read_text(), re.M))
    return {c: w for c, w in found.items() if c not in funcs_everywhere}, \
        scanned


# On the path's scripts but not run by `make run`: deps.sh runs npm for
# the groups test and all only, and sudo only when not root (the README
# asks for root or sudo).
NOT_RUN_BY_MAKE_RUN = {"npm", "sudo"}


def command_problems(commands, run_list):
    ok = allowed(tuple(run_list))
    bad = []
    for cmd, where in sorted(commands.items()):
        if cmd in NOT_RUN_BY_MAKE_RUN:
            continue
        path = shutil.which(cmd)
        if path is None:
            bad.append(f"{cmd} ({where}): not installed here")
            continue
        pk = owners(path)
        if not pk & ok:
            bad.append(f"{cmd} ({where}) -> {path} in "
                       f"{sorted(pk) or 'no package'}: not in the run group "
                       f"nor its dependencies")
    return bad


# -------------------------------------------------------------- the build

@pytest.fixture(scope="module")
def cmake_files(tmp_path_factory):
    """{cache entry: file} of every file a fresh configure of `make build`
    found: the tools CMake runs and the libraries pkg-config named."""
    build = tmp_path_factory.mktemp("deps-cmake")
    p = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build),
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    files = {}
    for line in (build / "CMakeCache.txt").read_text().splitlines():
        m = re.match(r"^([\w.-]+):FILEPATH=(/.+)$", line)
        if m and os.path.exists(m.group(2)):
            files[m.group(1)] = m.group(2)
    return files


def file_problems(files, run_list):
    ok = allowed(tuple(run_list))
    bad = []
    for name, path in sorted(files.items()):
        pk = owners(path)
        if not pk & ok:
            bad.append(f"{name}={path} in {sorted(pk) or 'no package'}")
    return bad


# ------------------------------------------------------------------ tests

def test_groups_nest():
    run, test, bench, everything = (group(g) for g in
                                    ("run", "test", "bench", "all"))
    assert run and len(run) == len(set(run)), run
    assert set(run) <= set(test), set(run) - set(test)
    assert set(run) | set(test) | set(bench) == set(everything)
    assert "libsystemd-dev" in run
    assert {"nodejs", "npm"} <= set(test)
    p = subprocess.run([str(DEPS), "--list", "nothing"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "usage" in p.stderr


def forbidden_in(run_list):
    ok = closure(frozenset(run_list))
    return sorted(FORBIDDEN & ok)


def test_run_group_has_no_test_or_bench_tools():
    assert forbidden_in(group("run")) == []


def test_forbidden_check_catches_a_broken_list():
    assert forbidden_in(group("run") + ["haproxy"]) == ["haproxy"]
    # pulled in by a dependency, not named
    assert "nodejs" in forbidden_in(group("run") + ["npm"])


def test_extractor_sees_every_kind_of_command():
    script = ("#!/bin/bash\n"
              "set -eu  # done\n"
              "x=1 alpha --flag | beta && gamma || true\n"
              "v=$(delta -n \"$(epsilon 1)\" | zeta '$(not-this)')\n"
              "while read -r a; do eta \"$a\" 2>&1; done < <(theta)\n"
              "$sudo iota >\"$f\" # kappa\n"
              "echo $((SECONDS - 1)) \\\n  lambda\n"
              "cat <<EOF\nmu\nEOF\n"
              "if ! nu; then xi; fi\n")
    assert set(shell_commands(script)) == {
        "set", "alpha", "beta", "gamma", "true", "delta", "epsilon", "zeta",
        "read", "eta", "theta", "iota", "echo", "cat", "nu", "xi"}


def test_run_path_is_followed():
    commands, scanned = run_path_commands()
    assert {"Makefile", "scripts/deps.sh", "scripts/run-local.sh",
            "scripts/local/instance.sh"} <= scanned, scanned
    # the services, readiness, port owner, lock, the build
    assert {"prometheus", "prometheus-alertmanager",
            "prometheus-node-exporter", "prometheus-blackbox-exporter",
            "curl", "ss", "flock", "cmake", "make", "nproc", "dpkg-query",
            "apt-get", "base64", "awk"} <= set(commands), sorted(commands)
    assert not {"instance_claim", "wait_ready", "cleanup",
                "npm_tools"} & set(commands)


def test_every_run_path_command_is_in_the_run_group():
    commands, _ = run_path_commands()
    assert command_problems(commands, group("run")) == []


def test_command_check_catches_a_broken_list():
    commands, _ = run_path_commands()
    run = group("run")
    without = [p for p in run if p not in ("iproute2", "curl")]
    bad = command_problems(commands, without)
    assert any(b.startswith("ss ") for b in bad), bad
    assert any(b.startswith("curl ") for b in bad), bad
    without = [p for p in run if p not in ("prometheus-blackbox-exporter",
                                           "cmake")]
    assert [b.split()[0] for b in command_problems(commands, without)] == [
        "cmake", "prometheus-blackbox-exporter"]


def test_build_needs_only_the_run_group(cmake_files):
    names = set(cmake_files)
    assert {"CMAKE_C_COMPILER", "CMAKE_MAKE_PROGRAM",
            "PKG_CONFIG_EXECUTABLE"} <= names, sorted(names)
    assert any(n.startswith("pkgcfg_lib_CJSON") for n in names), names
    assert file_problems(cmake_files, group("run")) == []
    assert file_problems(cmake_files, group("bench")) == []


def test_build_check_catches_a_broken_list(cmake_files):
    run = group("run")
    bad = file_problems(cmake_files,
                        [p for p in run if p != "libcjson-dev"])
    assert bad and all("pkgcfg_lib_CJSON" in b for b in bad), bad
    # libssl3 stays (curl needs it); the headers and libssl.so do not
    bad = file_problems(cmake_files, [p for p in run if p != "libssl-dev"])
    assert bad and all("pkgcfg_lib_OPENSSL" in b for b in bad), bad


def bench_tools():
    """{tool: where} of what bench/run.sh's preflight requires (its `for
    tool in ...` lists and `command -v` checks), its NAME=/path
    variables resolved."""
    text = (REPO / "bench" / "run.sh").read_text()
    paths = dict(re.findall(r"(?m)^([A-Z]+)=(/\S+)$", text))
    tools = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = []
        m = re.search(r"for tool in ([^;]+); do", line)
        if m:
            words = m.group(1).split()
        words += re.findall(r"command -v (\w[\w.-]*)", line)
        for w in words:
            w = w.strip('"')
            w = paths.get(w[1:], w) if w.startswith("$") else w
            tools.setdefault(w, f"bench/run.sh:{n}")
    return tools


def test_bench_group_has_what_bench_runs():
    tools = bench_tools()
    assert {"/usr/sbin/nginx", "/usr/sbin/haproxy", "/usr/bin/wrk",
            "/usr/bin/gnuplot", "/usr/bin/python3", "taskset", "pgrep",
            "openssl", "gcc", "htpasswd", "base64"} <= set(tools), tools
    assert command_problems(tools, group("bench")) == []
    broken = [p for p in group("bench") if p != "haproxy"]
    assert [b.split()[0] for b in command_problems(tools, broken)] == [
        "/usr/sbin/haproxy"]
