#!/usr/bin/python3
"""Checks what promtool does not: that the alerting rules are complete.

    check_rules.py [REPO_ROOT]

For every alert in prometheus/rules/*.yml:
  - labels.severity is one of critical, warning, info (none for Watchdog);
  - labels.category is one of slo, infrastructure, cost (Alertmanager
    routes Slack notifications by it), and slo for every alert of the SLO
    rule files (slo.yml, probe.yml) but probe.yml's certificate alerts
    (infrastructure: a certificate to renew, not an SLO);
  - annotations summary, description and runbook_url are set, and the
    runbook_url points at a heading of docs/RUNBOOKS.md (GitHub's anchor);
  - a promtool test in prometheus/tests/*_test.yml loads the alert's rule
    file and has, for that alert name, a case where it fires (non-empty
    exp_alerts) and a case where it stays silent (empty exp_alerts; not
    for Watchdog, which always fires).
Every recording rule is evaluated by some promql_expr_test.
Every section of docs/RUNBOOKS.md under "## Alerts" names an existing
alert, so the runbooks do not drift from the rules.

Prints one line per problem and exits 1 if there is any.
"""

import os
import re
import sys

import yaml

RUNBOOK_BASE = ("https://github.com/portcullis-gw/portcullis/blob/main/"
                "docs/RUNBOOKS.md#")
SEVERITIES = {"critical", "warning", "info"}
CATEGORIES = {"slo", "infrastructure", "cost"}
SLO_RULE_FILES = {"slo.yml", "probe.yml"}




def slo_category(fn, name):
    """The category an alert of an SLO rule file must carry."""
    if fn == "probe.yml" and "Certificate" in name:
        return "infrastructure"
    return "slo"

def github_anchor(heading):
    """The fragment GitHub gives a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def runbook_anchors(path):
    """Anchors of the level-3 headings, and the set of those that sit in
    the "## Alerts" part (which must each name an alert)."""
    anchors, in_alerts, alert_sections = set(), False, {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.startswith("## "):
                in_alerts = line[3:].strip().lower() == "alerts"
            elif line.startswith("### "):
                name = line[4:].strip()
                anchors.add(github_anchor(name))
                if in_alerts:
                    alert_sections[name] = n
    return anchors, alert_sections


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    rules_dir = os.path.join(root, "prometheus", "rules")
    tests_dir = os.path.join(root, "prometheus", "tests")
    problems = []

    alerts = {}  # name -> [(rule file, rule)]
    records = {}  # name -> rule file
    for fn in sorted(os.listdir(rules_dir)):
        if not fn.endswith((".yml", ".yaml")):
            continue
        path = os.path.join(rules_dir, fn)
        for group in load(path).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    alerts.setdefault(rule["alert"], []).append((fn, rule))
                elif "record" in rule:
                    records.setdefault(rule["record"], fn)

    anchors, sections = runbook_anchors(
        os.path.join(root, "docs", "RUNBOOKS.md"))

    for name, defs in sorted(alerts.items()):
        for fn, rule in defs:
            where = "%s: alert %s" % (fn, name)
            labels = rule.get("labels") or {}
            ann = rule.get("annotations") or {}
            sev = labels.get("severity")
            if name == "Watchdog":
                if sev != "none":
                    problems.append("%s: severity must be none" % where)
            elif sev not in SEVERITIES:
                problems.append("%s: severity %r is not one of %s" %
                                (where, sev, ", ".join(sorted(SEVERITIES))))
            cat = labels.get("category")
            if cat not in CATEGORIES:
                problems.append("%s: category %r is not one of %s" %
                                (where, cat, ", ".join(sorted(CATEGORIES))))
            elif fn in SLO_RULE_FILES and cat != slo_category(fn, name):
                problems.append("%s: category must be %s in %s" % (
                    where, slo_category(fn, name), fn))
            for key in ("summary", "description", "runbook_url"):
                if not str(ann.get(key, "")).strip():
                    problems.append("%s: no %s annotation" % (where, key))
            url = str(ann.get("runbook_url", ""))
            if url and not url.startswith(RUNBOOK_BASE):
                problems.append("%s: runbook_url %s is not under %s" %
                                (where, url, RUNBOOK_BASE))
            elif url and url[len(RUNBOOK_BASE):] not in anchors:
                problems.append("%s: runbook_url anchor #%s has no heading "
                                "in docs/RUNBOOKS.md" %
                                (where, url[len(RUNBOOK_BASE):]))

    for name, line in sorted(sections.items()):
        if name not in alerts:
            problems.append("docs/RUNBOOKS.md:%d: section %r names no alert "
                            "in prometheus/rules/" % (line, name))

    fires, silent, evaluated = {}, {}, set()
    for fn in sorted(os.listdir(tests_dir)):
        if not fn.endswith("_test.yml"):
            continue
        doc = load(os.path.join(tests_dir, fn))
        loaded = {os.path.basename(p) for p in doc.get("rule_files", [])}
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                name = case.get("alertname")
                bucket = fires if case.get("exp_alerts") else silent
                bucket.setdefault(name, set()).update(loaded)
            for case in test.get("promql_expr_test", []) or []:
                evaluated.update(
                    re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", case["expr"]))

    for name, defs in sorted(alerts.items()):
        files = {fn for fn, _ in defs}
        cases = (("fires", fires), ("stays silent", silent))
        if name == "Watchdog":  # always firing, by design: nothing silent
            cases = cases[:1]
        for what, seen in cases:
            if not files & seen.get(name, set()):
                problems.append("alert %s (%s): no promtool test case where "
                                "it %s" % (name, ", ".join(sorted(files)),
                                           what))
    for name, fn in sorted(records.items()):
        if name not in evaluated:
            problems.append("%s: recording rule %s: no promql_expr_test "
                            "evaluates it" % (fn, name))

    for p in problems:
        print(p)
    print("%d alerts, %d recording rules, %d problems" %
          (len(alerts), len(records), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
