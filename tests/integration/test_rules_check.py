"""tests/tools/check_rules.py fails the build when an alert has no test,
no runbook or a missing annotation; these tests make sure it can fail, on
a small tree of its own, and that the repository's rules pass it."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tests", "tools", "check_rules.py")
BASE = ("https://github.com/portcullis-gw/portcullis/blob/main/"
        "docs/RUNBOOKS.md#")

RULES = """\
groups:
  - name: demo
    rules:
      - record: job:demo:rate5m
        expr: rate(demo_total[5m])
      - alert: DemoHigh
        expr: job:demo:rate5m > 1
        for: 5m
        labels: {severity: warning, category: infrastructure}
        annotations:
          summary: demo high
          description: the demo rate is high
          runbook_url: %sdemohigh
""" % BASE

TESTS = """\
rule_files: [../rules/demo.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: demo_total
        values: 0+600x20
    promql_expr_test:
      - expr: job:demo:rate5m
        eval_time: 10m
        exp_samples: [{labels: "job:demo:rate5m", value: 10}]
    alert_rule_test:
      - alertname: DemoHigh
        eval_time: 2m
        exp_alerts: []
      - alertname: DemoHigh
        eval_time: 15m
        exp_alerts:
          - exp_labels: {severity: warning}
"""

RUNBOOKS = """\
# Runbooks

## Alerts

### DemoHigh

What to do.
"""


def tree(tmp_path, rules=RULES, tests=TESTS, runbooks=RUNBOOKS):
    for d in ("prometheus/rules", "prometheus/tests", "docs"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "prometheus/rules/demo.yml").write_text(rules)
    (tmp_path / "prometheus/tests/demo_test.yml").write_text(tests)
    (tmp_path / "docs/RUNBOOKS.md").write_text(runbooks)
    return tmp_path


def check(root):
    p = subprocess.run([sys.executable, TOOL, str(root)],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout


def test_complete_tree_passes(tmp_path):
    rc, out = check(tree(tmp_path))
    assert rc == 0, out
    assert out.strip().endswith("1 alerts, 1 recording rules, 0 problems")


def test_alert_without_firing_case_fails(tmp_path):
    tests = TESTS.split("      - alertname: DemoHigh\n        eval_time: 15m")[0]
    rc, out = check(tree(tmp_path, tests=tests))
    assert rc == 1
    assert "alert DemoHigh (demo.yml): no promtool test case where it fires" \
        in out


def test_alert_without_silent_case_fails(tmp_path):
    tests = TESTS.replace(
        "      - alertname: DemoHigh\n        eval_time: 2m\n"
        "        exp_alerts: []\n", "")
    rc, out = check(tree(tmp_path, tests=tests))
    assert rc == 1
    assert "where it stays silent" in out


def test_test_of_another_rule_file_does_not_count(tmp_path):
    rc, out = check(tree(tmp_path, tests=TESTS.replace(
        "../rules/demo.yml", "../rules/other.yml")))
    assert rc == 1
    assert "no promtool test case where it fires" in out


@pytest.mark.parametrize("key", ["summary", "description", "runbook_url"])
def test_missing_annotation_fails(tmp_path, key):
    rules = "\n".join(line for line in RULES.splitlines()
                      if not line.strip().startswith(key + ":")) + "\n"
    rc, out = check(tree(tmp_path, rules=rules))
    assert rc == 1
    assert "demo.yml: alert DemoHigh: no %s annotation" % key in out


def test_unknown_severity_fails(tmp_path):
    rc, out = check(tree(tmp_path, rules=RULES.replace("warning", "page")))
    assert rc == 1
    assert "severity 'page' is not one of critical, info, warning" in out


def test_missing_or_unknown_category_fails(tmp_path):
    rc, out = check(tree(tmp_path, rules=RULES.replace(
        ", category: infrastructure", "")))
    assert rc == 1
    assert "category None is not one of cost, infrastructure, slo" in out
    rc, out = check(tree(tmp_path / "b", rules=RULES.replace(
        "category: infrastructure", "category: team")))
    assert rc == 1
    assert "category 'team' is not one of" in out


def test_slo_rule_file_alert_must_be_category_slo(tmp_path):
    root = tree(tmp_path)
    (root / "prometheus/rules/demo.yml").rename(
        root / "prometheus/rules/slo.yml")
    (root / "prometheus/tests/demo_test.yml").write_text(
        TESTS.replace("../rules/demo.yml", "../rules/slo.yml"))
    rc, out = check(root)
    assert rc == 1
    assert "slo.yml: alert DemoHigh: category must be slo in slo.yml" in out


def test_runbook_anchor_must_exist(tmp_path):
    rc, out = check(tree(tmp_path, runbooks=RUNBOOKS.replace(
        "### DemoHigh", "### DemoLow")))
    assert rc == 1
    assert "runbook_url anchor #demohigh has no heading" in out
    assert "section 'DemoLow' names no alert" in out


def test_untested_recording_rule_fails(tmp_path):
    rc, out = check(tree(tmp_path, tests=TESTS.replace(
        "expr: job:demo:rate5m\n", "expr: rate(demo_total[5m])\n")))
    assert rc == 1
    assert "recording rule job:demo:rate5m: no promql_expr_test" in out


def test_repository_rules_are_complete():
    rc, out = check(ROOT)
    assert rc == 0, out
