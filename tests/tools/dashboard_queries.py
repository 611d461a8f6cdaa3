#!/usr/bin/python3
"""dashboard_queries.py - the PromQL of every Grafana dashboard, checked.

    dashboard_queries.py [--dashboards DIR] [--datasources FILE]
                         [--promtool PATH] [--list]

Loads every grafana/dashboards/*.json and checks its structure:

  - the dashboard uid is "portcullis-" + the file's stem (slo.json ->
    portcullis-slo), a title, a schemaVersion;
  - panel ids are unique (panels inside collapsed rows included), panel
    titles too (a failure names the panel by its title);
  - every panel but a row has a datasource whose uid and type are those of
    a datasource in grafana/provisioning/datasources/datasources.yml, and
    so does every target and template variable that names one;
  - every target has a refId (unique in its panel) and a non-empty expr;
  - every $variable an expr uses is a variable of the dashboard or one of
    Grafana's built-ins listed in BUILTINS.

Then it substitutes the variables the way Grafana would ($route -> a regex
such as ".+", $__rate_interval -> 1m, $__range -> 1h, ...; see
substitute()), writes every expr as a recording rule into a temporary rules
file and runs `promtool check rules` on it: that proves each one parses.
Query variables (label_values(METRIC{...}, label)) contribute their series
selector. Exits 0 when all is well; 1 with one line per problem naming the
dashboard and panel otherwise; 2 when it cannot run at all.

--list prints "uid <TAB> panel <TAB> expr" for every query instead.

As a module: problems(), queries() and substitute() serve
tests/integration/test_dashboards.py, which also runs every query against a
live Prometheus. Standard library plus PyYAML (Debian's python3-yaml).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "grafana" / "dashboards"
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / \
    "datasources.yml"
UID_PREFIX = "portcullis-"

# What Grafana's own variables become here: a rate() range of four 15 s
# scrape intervals, a one-hour dashboard time range.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
# A dashboard variable with no value given stands for "All" (allValue).
DEFAULT_VALUE = ".+"

# $name, ${name}, ${name:format}, [[name]] (Grafana's variable syntaxes)
VAR_RE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$",
                             re.S)

# (dashboard uid, panel title, expr): panel is "variable $NAME" for the
# series selector of a query variable.
Query = collections.namedtuple("Query", "dashboard panel expr")
# Query plus what locates it: refId ("" for a variable), panel id.
Target = collections.namedtuple("Target", "dashboard panel ref_id panel_id "
                                          "expr")


def load(directory=DASHBOARDS):
    """[(path, parsed JSON)] of every *.json in directory, sorted."""
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        with open(path) as f:
            out.append((path, json.load(f)))
    return out


def provisioned(path=DATASOURCES):
    """{uid: type} of the datasources a provisioning file declares."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    return {d["uid"]: d["type"] for d in doc.get("datasources") or []
            if "uid" in d}


def panels(dash):
    """Every panel, those nested in (collapsed) rows included, in order."""
    for p in dash.get("panels") or []:
        yield p
        for q in p.get("panels") or []:
            yield q


def variables(dash):
    return (dash.get("templating") or {}).get("list") or []


def variable_query(var):
    """The query string of a query variable, whichever form it is in."""
    q = var.get("query")
    if isinstance(q, dict):
        q = q.get("query")
    return q or var.get("definition") or ""


def variable_selector(var):
    """The series selector of label_values(SELECTOR, label), else None."""
    if var.get("type") != "query":
        return None
    m = LABEL_VALUES_RE.match(variable_query(var))
    return m.group(1).strip() if m else None


def _check_ds(where, ds, uids, problems):
    if not isinstance(ds, dict) or "uid" not in ds:
        problems.append("%s: datasource %r is not {type, uid}" % (where, ds))
    elif ds["uid"] not in uids:
        problems.append("%s: datasource uid %r is not provisioned (%s)"
                        % (where, ds["uid"], ", ".join(sorted(uids))))
    elif ds.get("type") not in (None, uids[ds["uid"]]):
        problems.append("%s: datasource %r has type %r, provisioned as %r"
                        % (where, ds["uid"], ds.get("type"),
                           uids[ds["uid"]]))


def problems(path, dash, uids):
    """Every structural problem of one dashboard, as readable lines."""
    out = []
    uid = dash.get("uid")
    name = "%s (%s)" % (uid, Path(path).name)
    if uid != UID_PREFIX + Path(path).stem:
        out.append("%s: uid %r should be %r" % (Path(path).name, uid,
                                               UID_PREFIX + Path(path).stem))
    if not dash.get("title"):
        out.append("%s: no title" % name)
    if not isinstance(dash.get("schemaVersion"), int):
        out.append("%s: no schemaVersion" % name)
    names = set(BUILTINS)
    for var in variables(dash):
        vname = var.get("name")
        names.add(vname)
        if var.get("type") == "query":
            _check_ds("%s: variable $%s" % (name, vname),
                      var.get("datasource"), uids, out)
            if not variable_selector(var):
                out.append("%s: variable $%s: query %r is not "
                           "label_values(SELECTOR, label)"
                           % (name, vname, variable_query(var)))
    ids, titles = set(), set()
    for p in panels(dash):
        title = p.get("title") or ""
        where = "%s panel %r (id %s)" % (name, title, p.get("id"))
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            out.append("%s: id missing or not unique" % where)
        ids.add(p.get("id"))
        if not isinstance(p.get("gridPos"), dict):
            out.append("%s: no gridPos" % where)
        if p.get("type") != "row":  # a row may share a panel's title
            if not title or title in titles:
                out.append("%s: title missing or not unique" % where)
            titles.add(title)
        else:
            if p.get("targets"):
                out.append("%s: a row with targets" % where)
            continue
        _check_ds(where, p.get("datasource"), uids, out)
        targets = p.get("targets") or []
        if not targets:
            out.append("%s: no targets" % where)
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in refs:
                out.append("%s: target refId %r missing or not unique"
                           % (where, ref))
            refs.add(ref)
            if "datasource" in t:
                _check_ds("%s target %s" % (where, ref), t["datasource"],
                          uids, out)
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                out.append("%s target %s: no expr" % (where, ref))
                continue
            for m in VAR_RE.finditer(expr):
                v = next(g for g in m.groups() if g)
                if v not in names:
                    out.append("%s target %s: unknown variable $%s"
                               % (where, ref, v))
    return out


def substitute(expr, values=None):
    """expr with Grafana's variables replaced: BUILTINS, then `values`
    ({name: text}), then DEFAULT_VALUE for any other name. Values go in
    verbatim: pass what Grafana would write, e.g. "(a|b)" for a
    multi-value selection or 127\\\\.0\\\\.0\\\\.1:9100 for an escaped one."""
    table = dict(BUILTINS)
    table.update(values or {})

    def repl(m):
        return table.get(next(g for g in m.groups() if g), DEFAULT_VALUE)
    return VAR_RE.sub(repl, expr)


def targets(directory=DASHBOARDS, values=None):
    """Every query of every dashboard as a Target, variables substituted
    (see substitute). Query variables come first as panel
    "variable $NAME", ref_id ""."""
    for _, dash in load(directory):
        uid = dash.get("uid")
        for var in variables(dash):
            sel = variable_selector(var)
            if sel:
                yield Target(uid, "variable $%s" % var["name"], "", None,
                             substitute(sel, values))
        for p in panels(dash):
            for t in p.get("targets") or []:
                if t.get("expr"):
                    yield Target(uid, p.get("title"), t.get("refId"),
                                 p.get("id"), substitute(t["expr"], values))


def queries(directory=DASHBOARDS, values=None):
    """(dashboard uid, panel title, expr) of every query; see targets."""
    for t in targets(directory, values):
        yield Query(t.dashboard, t.panel, t.expr)


def rule_name(t, i):
    """A valid, unique recording-rule name for target number i."""
    return "dashboard:%s:%s_%d" % (re.sub(r"\W", "_", t.dashboard),
                                   t.ref_id or "var", i)


def check_parse(directory=DASHBOARDS, promtool="promtool", values=None):
    """Writes every query as a recording rule and runs `promtool check
    rules`. Returns [] or one line per query that does not parse."""
    ts = list(targets(directory, values))
    by_name = {}
    groups = collections.OrderedDict()
    for i, t in enumerate(ts):
        name = rule_name(t, i)
        by_name[name] = t
        groups.setdefault(t.dashboard, []).append({"record": name,
                                                   "expr": t.expr})
    doc = {"groups": [{"name": g, "rules": r} for g, r in groups.items()]}
    with tempfile.TemporaryDirectory(prefix="dashboard-queries.") as d:
        path = os.path.join(d, "dashboard_queries.rules.yml")
        with open(path, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False, width=1000)
        try:
            r = subprocess.run([promtool, "check", "rules", path],
                               capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise SystemExit("dashboard_queries: %s not found" % promtool)
    if r.returncode == 0 and ("SUCCESS: %d rules found" % len(ts)) in \
            r.stdout:
        return []
    out = []
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r'"(dashboard:[^"]+)": (.*)', line)
        if m and m.group(1) in by_name:
            t = by_name[m.group(1)]
            out.append("%s panel %r target %s: %s\n    expr: %s"
                       % (t.dashboard, t.panel, t.ref_id or "-",
                          m.group(2), t.expr))
    if not out:  # promtool failed in a way that names no rule
        out.append("promtool check rules failed (exit %d):\n%s%s"
                   % (r.returncode, r.stdout, r.stderr))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Check the structure of the Grafana dashboards and "
                    "that every panel query parses (promtool check rules).")
    ap.add_argument("--dashboards", default=str(DASHBOARDS))
    ap.add_argument("--datasources", default=str(DATASOURCES))
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--list", action="store_true",
                    help="print every query (variables substituted)")
    args = ap.parse_args(argv)

    dashboards = load(args.dashboards)
    if not dashboards:
        print("dashboard_queries: no *.json in %s" % args.dashboards,
              file=sys.stderr)
        return 2
    if args.list:
        for q in queries(args.dashboards):
            print("%s\t%s\t%s" % q)
        return 0
    uids = provisioned(args.datasources)
    bad = []
    for path, dash in dashboards:
        bad += problems(path, dash, uids)
    bad += check_parse(args.dashboards, args.promtool)
    for line in bad:
        print("dashboard_queries: " + line, file=sys.stderr)
    n = sum(1 for _ in queries(args.dashboards))
    if bad:
        print("dashboard_queries: %d problem(s) in %d dashboards, %d queries"
              % (len(bad), len(dashboards), n), file=sys.stderr)
        return 1
    print("dashboard_queries: %d dashboards, %d queries: structure ok, "
          "every query parses" % (len(dashboards), n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
