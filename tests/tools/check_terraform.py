#!/usr/bin/python3
"""Offline checks of the Terraform tree: no terraform binary, no providers.

    /usr/bin/python3 tests/tools/check_terraform.py terraform

Every .tf and .tfvars(.example) file is parsed with HashiCorp's HCL parser
(@cdktf/hcl2json from tools/node, run by check_terraform.js beside this
file), then checked:

  parse         every file parses as HCL
  layout        backend/, modules/{ec2,iam,security-group,secrets}/ and
                environments/{dev,prod}/ with their usual files
  style         the part of `terraform fmt` that needs no terraform: no
                tabs, no trailing blanks, a final newline
  variables     every variable has a description and a type, and is used;
                every output has a description; no unused locals or data
  references    var.X, local.X, module.X.OUT, data.T.N and T.N resolve;
                nothing is declared twice
  module-args   local module sources exist; calls pass only declared
                variables and every required one; remote sources are pinned
  tfvars        *.tfvars(.example) set only declared variables; an example
                sets every required one
  versions      required_version (roots: >= 1.5), aws ~> 5.0 in roots, every
                provider used in the call tree declared in required_providers,
                default_tags on the roots' aws provider, no provider blocks
                in modules
  imdsv2        instances and launch templates require IMDSv2 tokens, with
                hop limit 2 (containers behind Docker's bridge need it)
  ebs           root/EBS volumes encrypted; the instance root volume is gp3
  ssh-open      no ingress to port 22 from 0.0.0.0/0 or ::/0, followed
                through variables, defaults, module calls and tfvars examples
  ingress       ingress only on the stack's ports (22 80 443 9090 9093),
                TCP, one literal port per rule
  iam           Allow statements: no wildcard actions, no NotAction/
                NotResource, resource "*" only for actions AWS offers no ARN
                for; policies written as aws_iam_policy_document; no admin
                managed policies
  secrets       every Secrets Manager secret has a KMS key
  kms           KMS keys rotate
  s3            buckets have a public access block (all four on),
                encryption, versioning and a TLS-only policy
  dynamodb      tables have encryption and point-in-time recovery
  secret-values random_password/random_string results go only into
                aws_secretsmanager_secret_version, never into outputs or
                user data
  user-data     file()/templatefile() targets exist; templates fit EC2's
                16 KB user-data limit
  compose       the security group opens the ports compose publishes; user
                data writes compose's required .env variables and secret
                files; environments are dev or prod

Prints one line per problem ("FILE: [check] message"), then a summary line;
exits 1 when there is any problem. What only `terraform validate`, tflint
and checkov can do is listed in terraform/README.md.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
JS = HERE / "check_terraform.js"

META_ARGS = {"source", "version", "providers", "count", "for_each", "depends_on"}
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}
STACK_PORTS = {22, 80, 443, 9090, 9093}
USER_DATA_LIMIT = 16384
ENVIRONMENTS = {"dev", "prod"}  # compose/.env.example: ENVIRONMENT=dev|prod
# Actions that AWS authorizes only on resource "*" (no resource-level
# permissions): the one place "*" is accepted in an Allow statement.
NO_RESOURCE_ARN_ACTIONS = {
    "ce:getcostandusage",
    "ce:getcostforecast",
    "ce:getdimensionvalues",
    "cloudwatch:putmetricdata",
    "ec2:describetags",
    "ec2:describeinstances",
    "ec2:describevolumes",
    "ssm:describeparameters",
}
ADMIN_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
LAYOUT = {
    ".": ["README.md"],
    "backend": ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"],
    "modules/ec2": ["main.tf", "variables.tf", "outputs.tf", "versions.tf"],
    "modules/iam": ["main.tf", "variables.tf", "outputs.tf", "versions.tf"],
    "modules/security-group": ["main.tf", "variables.tf", "outputs.tf", "versions.tf"],
    "modules/secrets": ["main.tf", "variables.tf", "outputs.tf", "versions.tf"],
    "environments/dev": ["main.tf", "variables.tf", "outputs.tf", "versions.tf",
                         "terraform.tfvars.example"],
    "environments/prod": ["main.tf", "variables.tf", "outputs.tf", "versions.tf",
                          "terraform.tfvars.example"],
}

problems = []


def problem(path, check, message):
    problems.append("%s: [%s] %s" % (path, check, message))


# --- the parsed tree ---------------------------------------------------------

class Dir:
    """One Terraform module directory (a root or a child module)."""

    def __init__(self, path):
        self.path = path
        self.files = []
        self.variables = {}
        self.outputs = {}
        self.locals = {}
        self.modules = {}
        self.resources = {}
        self.data = {}
        self.providers = []
        self.terraform = []
        self.tfvars = {}
        self.callers = []  # (Dir, module name, body)

    def add(self, path, body):
        self.files.append(path)

        def put(table, key, label, value):
            if key in table:
                problem(rel(path), "references", "%s is declared twice (also in %s)" %
                        (label, rel(table[key][0])))
            table[key] = (path, value)

        for kind, table in (("variable", self.variables), ("output", self.outputs),
                            ("module", self.modules)):
            for name, bodies in (body.get(kind) or {}).items():
                for b in bodies:
                    put(table, name, "%s %s" % (kind, name), b)
        for kind, table in (("resource", self.resources), ("data", self.data)):
            for rtype, named in (body.get(kind) or {}).items():
                for name, bodies in named.items():
                    for b in bodies:
                        label = ("data." if kind == "data" else "") + "%s.%s" % (rtype, name)
                        put(table, (rtype, name), label, b)
        for block in body.get("locals") or []:
            for name, value in block.items():
                put(self.locals, name, "local." + name, value)
        for name, bodies in (body.get("provider") or {}).items():
            for b in bodies:
                self.providers.append((path, name, b))
        for b in body.get("terraform") or []:
            self.terraform.append((path, b))

    def is_root(self):
        return not self.callers


def rel(path):
    """A path as given from the working directory, else absolute."""
    try:
        r = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(Path(path).resolve()) if r.startswith("..") else r


def parse_files(files, node):
    """{path: body}, parse errors as problems; None when the parser cannot run."""
    if not files:
        return {}
    try:
        out = subprocess.run([node, str(JS)] + [str(f) for f in files],
                             capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        problem(rel(JS), "parse", "cannot run the HCL parser with %s: %s" % (node, e))
        return None
    if out.returncode != 0:
        err = [l for l in out.stderr.splitlines() if "check_terraform.js" in l]
        problem(rel(JS), "parse", (err or out.stderr.strip().splitlines() or
                                   ["exit %d" % out.returncode])[-1])
        return None
    bodies = {}
    for line in out.stdout.splitlines():
        item = json.loads(line)
        path = Path(item["file"])
        if "error" in item:
            problem(rel(path), "parse", item["error"])
        else:
            bodies[path] = item["body"]
    return bodies


# --- expressions ---------------------------------------------------------------

def strings(value):
    """Every string in a parsed value (dict keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def expressions(value):
    """The text of every ${...} and %{...} in a parsed value."""
    for s in strings(value):
        i = 0
        while True:
            starts = [j for j in (s.find("${", i), s.find("%{", i)) if j >= 0]
            if not starts:
                break
            j = min(starts) + 2
            depth = 1
            k = j
            while k < len(s) and depth:
                depth += {"{": 1, "}": -1}.get(s[k], 0)
                k += 1
            yield s[j:k - 1] if depth == 0 else s[j:]
            i = j


def is_expr(value):
    return isinstance(value, str) and ("${" in value or "%{" in value)


# A reference starts after anything but a name character, a dot, a dash or a
# slash ("${path.module}/user-data.sh" holds no data source).
NB = r"(?<![\w./-])"
RE_VAR = re.compile(NB + r"var\.([A-Za-z_][\w-]*)")
RE_LOCAL = re.compile(NB + r"local\.([A-Za-z_][\w-]*)")
RE_MODULE = re.compile(NB + r"module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?")
RE_DATA = re.compile(NB + r"data\.([A-Za-z_]\w*)\.([A-Za-z_][\w-]*)")
RE_EACH = re.compile(NB + r"each\.(value|key)")


def refs(regex, value):
    found = []
    for e in expressions(value):
        found.extend(regex.findall(e))
    return found


def resource_refs(value, prefixes):
    regex = re.compile(NB + r"((?:%s)_\w+)\.([A-Za-z_][\w-]*)" %
                       "|".join(sorted(prefixes)))
    return refs(regex, value)


def blocks(body, name):
    """Nested blocks `name` of a body, the contents of `dynamic` ones too."""
    found = []
    got = body.get(name)
    if isinstance(got, list):
        found.extend(b for b in got if isinstance(b, dict))
    elif isinstance(got, dict):
        found.append(got)
    dyn = body.get("dynamic")
    for d in (dyn if isinstance(dyn, list) else [dyn] if dyn else []):
        for item in d.get(name) or []:
            for content in item.get("content") or []:
                found.append(content)
    return found


def literal_true(v):
    return v is True or v == "true"


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def port(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
        return int(v)
    return None


# --- tree ----------------------------------------------------------------------

def load(root, node):
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and ".terraform" not in p.parts and
                   (p.suffix in (".tf", ".tfvars") or p.name.endswith(".tfvars.example")))
    bodies = parse_files(files, node)
    if bodies is None:
        return files, None
    dirs = {}
    for f in files:
        d = dirs.setdefault(f.parent, Dir(f.parent))
        if f not in bodies:
            continue
        if f.suffix == ".tf":
            d.add(f, bodies[f])
        else:
            d.tfvars[f] = bodies[f]
    for d in dirs.values():
        for name, (path, body) in d.modules.items():
            src = body.get("source")
            if isinstance(src, str) and src.startswith((".", "/")):
                target = (d.path / src).resolve()
                for other in dirs.values():
                    if other.path.resolve() == target:
                        other.callers.append((d, name, body))
    return files, dirs


def module_target(d, body, dirs):
    src = body.get("source")
    if not (isinstance(src, str) and src.startswith((".", "/"))):
        return None
    target = (d.path / src).resolve()
    for other in dirs.values():
        if other.path.resolve() == target:
            return other
    return None


def call_tree(d, dirs, seen=None):
    seen = seen if seen is not None else set()
    if d.path in seen:
        return []
    seen.add(d.path)
    out = [d]
    for _, (_, body) in d.modules.items():
        t = module_target(d, body, dirs)
        if t is not None:
            out.extend(call_tree(t, dirs, seen))
    return out


# --- checks --------------------------------------------------------------------

def check_layout(root):
    for sub, names in LAYOUT.items():
        for name in names:
            p = root / sub / name
            if not p.is_file():
                problem(rel(p), "layout", "missing")


def check_style(files):
    for f in files:
        try:
            lines = f.read_text().split("\n")
        except (OSError, UnicodeDecodeError) as e:
            problem(rel(f), "style", "unreadable: %s" % e)
            continue
        if lines[-1] != "":
            problem(rel(f), "style", "no newline at the end of the file")
        for n, line in enumerate(lines, 1):
            if "\t" in line:
                problem(rel(f), "style", "line %d: tab (terraform fmt indents with 2 spaces)" % n)
            if line != line.rstrip():
                problem(rel(f), "style", "line %d: trailing whitespace" % n)


def check_variables(d):
    used = set()
    everything = []
    for table in (d.outputs, d.modules, d.resources, d.data, d.locals):
        everything.extend(v[1] for v in table.values())
    everything.extend(b for _, _, b in d.providers)
    everything.extend(b for _, b in d.terraform)
    for name, (path, body) in d.variables.items():
        for other, (_, b) in d.variables.items():
            if other != name:
                everything.append(b)
    for body in everything:
        used.update(refs(RE_VAR, body))
    for name, (path, body) in sorted(d.variables.items()):
        desc = body.get("description")
        if not (isinstance(desc, str) and desc.strip()):
            problem(rel(path), "variables", "variable %s has no description" % name)
        if "type" not in body:
            problem(rel(path), "variables", "variable %s has no type" % name)
        if name not in used:
            problem(rel(path), "variables", "variable %s is declared but never used" % name)
    for name, (path, body) in sorted(d.outputs.items()):
        desc = body.get("description")
        if not (isinstance(desc, str) and desc.strip()):
            problem(rel(path), "variables", "output %s has no description" % name)
    # Unused locals and data sources, as tflint's terraform_unused_declarations.
    tables = (d.variables, d.outputs, d.modules, d.resources, d.data, d.locals)
    for name, (path, _) in sorted(d.locals.items()):
        if not any(name in refs(RE_LOCAL, body) for table in tables
                   for key, (_, body) in table.items() if not (table is d.locals and key == name)):
            problem(rel(path), "variables", "local.%s is declared but never used" % name)
    prov = [b for _, _, b in d.providers]
    for key, (path, _) in sorted(d.data.items()):
        if not any(key in refs(RE_DATA, body) for table in tables
                   for k, (_, body) in table.items() if not (table is d.data and k == key)) and \
                not any(key in refs(RE_DATA, b) for b in prov):
            problem(rel(path), "variables", "data.%s.%s is declared but never used" % key)


def providers_of(d):
    return {t.split("_", 1)[0] for t, _ in list(d.resources) + list(d.data)}


def declared_providers(d):
    found = {}
    for _, b in d.terraform:
        for rp in b.get("required_providers") or []:
            for name, spec in rp.items():
                found[name] = spec if isinstance(spec, dict) else {"version": spec}
    return found


def check_references(d, dirs):
    prefixes = providers_of(d) | set(declared_providers(d)) | {"aws", "random"}
    bodies = []
    for table in (d.variables, d.outputs, d.modules, d.resources, d.data, d.locals):
        for key, (path, body) in table.items():
            bodies.append((path, key, body))
    for path, name, body in d.providers:
        bodies.append((path, "provider " + name, body))
    for path, key, body in bodies:
        for v in refs(RE_VAR, body):
            if v not in d.variables:
                problem(rel(path), "references", "var.%s is not declared" % v)
        for v in refs(RE_LOCAL, body):
            if v not in d.locals:
                problem(rel(path), "references", "local.%s is not declared" % v)
        for m, out in refs(RE_MODULE, body):
            if m not in d.modules:
                problem(rel(path), "references", "module.%s is not declared" % m)
                continue
            target = module_target(d, d.modules[m][1], dirs)
            if target is not None and out and out not in target.outputs:
                problem(rel(path), "references",
                        "module.%s.%s: %s has no output %s" % (m, out, rel(target.path), out))
        for t, n in refs(RE_DATA, body):
            if (t, n) not in d.data:
                problem(rel(path), "references", "data.%s.%s is not declared" % (t, n))
        for t, n in resource_refs(body, prefixes):
            if (t, n) not in d.resources:
                problem(rel(path), "references", "%s.%s is not declared" % (t, n))


def check_module_args(d, dirs):
    for name, (path, body) in sorted(d.modules.items()):
        src = body.get("source")
        if not isinstance(src, str):
            problem(rel(path), "module-args", "module %s has no literal source" % name)
            continue
        if src.startswith((".", "/")):
            target = module_target(d, body, dirs)
            if target is None:
                problem(rel(path), "module-args",
                        "module %s: source %s is not a directory with .tf files" % (name, src))
                continue
            for arg in sorted(set(body) - META_ARGS):
                if arg not in target.variables:
                    problem(rel(path), "module-args",
                            "module %s passes %s, which %s does not declare" %
                            (name, arg, rel(target.path)))
            for var, (_, vbody) in sorted(target.variables.items()):
                if "default" not in vbody and var not in body:
                    problem(rel(path), "module-args",
                            "module %s does not pass required variable %s" % (name, var))
        elif "version" not in body and "ref=" not in src:
            problem(rel(path), "module-args",
                    "module %s: remote source %s without a pinned version or ref" % (name, src))


def check_tfvars(d):
    for path, body in sorted(d.tfvars.items()):
        for key in sorted(body):
            if key not in d.variables:
                problem(rel(path), "tfvars", "%s is not a variable of %s" % (key, rel(d.path)))
        if path.name.endswith(".example"):
            for var, (_, vbody) in sorted(d.variables.items()):
                if "default" not in vbody and var not in body:
                    problem(rel(path), "tfvars", "required variable %s is not set" % var)


def check_versions(d, dirs):
    where = rel(d.path / "versions.tf")
    if not d.terraform:
        problem(where, "versions", "no terraform block")
        return
    rv = [b.get("required_version") for _, b in d.terraform if b.get("required_version")]
    if not rv:
        problem(where, "versions", "no required_version")
    declared = declared_providers(d)
    needed = set()
    tree = call_tree(d, dirs) if d.is_root() else [d]
    for sub in tree:
        needed |= providers_of(sub)
    for p in sorted(needed - set(declared)):
        problem(where, "versions", "provider %s is used but not in required_providers" % p)
    for p, spec in sorted(declared.items()):
        if not spec.get("source"):
            problem(where, "versions", "provider %s has no source" % p)
        if not spec.get("version"):
            problem(where, "versions", "provider %s has no version constraint" % p)
    if d.is_root():
        if rv and not any(re.search(r">=\s*1\.5(\.0)?(?![\d.])", v) for v in rv):
            problem(where, "versions", "required_version must be >= 1.5 (is %s)" % rv[0])
        aws = declared.get("aws", {}).get("version")
        if "aws" in needed and aws != "~> 5.0":
            problem(where, "versions", "aws provider version must be \"~> 5.0\" (is %s)" % aws)
        aws_providers = [(p, b) for p, n, b in d.providers if n == "aws"]
        if "aws" in needed and not aws_providers:
            problem(where, "versions", "no provider \"aws\" block (with default_tags)")
        for p, b in aws_providers:
            tags = [t.get("tags") for t in blocks(b, "default_tags")]
            if not any(tags):
                problem(rel(p), "versions", "provider aws has no default_tags { tags = ... }")
    else:
        for p, name, _ in d.providers:
            problem(rel(p), "versions",
                    "module has a provider \"%s\" block: configure providers in the roots" % name)


def check_imdsv2(d):
    for (t, n), (path, body) in sorted(d.resources.items()):
        if t not in ("aws_instance", "aws_launch_template"):
            continue
        mo = blocks(body, "metadata_options")
        if not mo:
            problem(rel(path), "imdsv2", "%s.%s has no metadata_options: IMDSv1 stays on" % (t, n))
            continue
        m = mo[0]
        if m.get("http_tokens") != "required":
            problem(rel(path), "imdsv2",
                    "%s.%s: metadata_options.http_tokens must be \"required\" (IMDSv2 only)" % (t, n))
        if m.get("http_endpoint") == "disabled":
            problem(rel(path), "imdsv2",
                    "%s.%s: IMDS disabled, but the stack takes its credentials from it" % (t, n))
        if port(m.get("http_put_response_hop_limit")) != 2:
            problem(rel(path), "imdsv2",
                    "%s.%s: http_put_response_hop_limit must be 2 (containers behind Docker's "
                    "bridge get no IMDSv2 token with 1)" % (t, n))


def check_ebs(d):
    for (t, n), (path, body) in sorted(d.resources.items()):
        where = rel(path)
        if t == "aws_instance":
            roots = blocks(body, "root_block_device")
            if not roots:
                problem(where, "ebs", "%s.%s has no root_block_device: the root volume "
                        "is not encrypted" % (t, n))
            for r in roots:
                if not literal_true(r.get("encrypted")):
                    problem(where, "ebs", "%s.%s: root_block_device.encrypted must be true" % (t, n))
                if r.get("volume_type") != "gp3":
                    problem(where, "ebs", "%s.%s: root_block_device.volume_type must be gp3" % (t, n))
            for b in blocks(body, "ebs_block_device"):
                if not literal_true(b.get("encrypted")):
                    problem(where, "ebs", "%s.%s: ebs_block_device.encrypted must be true" % (t, n))
        elif t == "aws_ebs_volume":
            if not literal_true(body.get("encrypted")):
                problem(where, "ebs", "%s.%s: encrypted must be true" % (t, n))
        elif t == "aws_launch_template":
            for bdm in blocks(body, "block_device_mappings"):
                for e in blocks(bdm, "ebs"):
                    if not literal_true(e.get("encrypted")):
                        problem(where, "ebs", "%s.%s: block_device_mappings.ebs.encrypted "
                                "must be true" % (t, n))


def ingress_rules(d):
    """(path, label, protocol, from, to, cidr attrs, resource body) of every ingress rule."""
    out = []
    for (t, n), (path, body) in sorted(d.resources.items()):
        label = "%s.%s" % (t, n)
        cidrs = {k: body.get(k) for k in ("cidr_ipv4", "cidr_ipv6", "cidr_blocks",
                                           "ipv6_cidr_blocks") if k in body}
        if t == "aws_vpc_security_group_ingress_rule":
            out.append((path, label, body.get("ip_protocol"), body.get("from_port"),
                        body.get("to_port"), cidrs, body))
        elif t == "aws_security_group_rule" and body.get("type") == "ingress":
            out.append((path, label, body.get("protocol"), body.get("from_port"),
                        body.get("to_port"), cidrs, body))
        elif t == "aws_security_group":
            for b in blocks(body, "ingress"):
                c = {k: b.get(k) for k in ("cidr_blocks", "ipv6_cidr_blocks") if k in b}
                out.append((path, label + " (inline ingress)", b.get("protocol"),
                            b.get("from_port"), b.get("to_port"), c, body))
    return out


def all_protocols(p):
    return p in ("-1", -1, "all")


def result_part(expr):
    """An expression without the condition of a top-level `c ? a : b`: the
    condition (a lookup such as local.is_ipv6[each.value]) is no value."""
    depth = 0
    quote = False
    for i, ch in enumerate(expr):
        if quote:
            quote = ch != '"' or expr[i - 1] == "\\"
        elif ch == '"':
            quote = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "?" and depth == 0:
            return expr[i + 1:]
    return expr


def value_sources(d, value, dirs, origin, seen=None):
    """(path, literal) for every value that can flow into an expression:
    literal values (from file origin), variable defaults, module arguments
    of callers, tfvars examples, locals."""
    seen = seen if seen is not None else set()
    if value is None:
        return []
    if not any(is_expr(s) for s in strings(value)):
        return [(origin, value)]
    out = []
    texts = [result_part(e) for e in expressions(value)]
    for e in texts:
        for c in re.findall(r'"([0-9a-fA-F.:]+/\d+)"', e):
            out.append((origin, c))
    for s in strings(value):
        if not is_expr(s):
            out.append((origin, s))
    for v in [v for e in texts for v in RE_VAR.findall(e)]:
        key = (d.path, "var", v)
        if key in seen:
            continue
        seen.add(key)
        if v in d.variables:
            path, body = d.variables[v]
            if "default" in body:
                out.extend(value_sources(d, body["default"], dirs, path, seen))
        for caller, name, mbody in d.callers:
            if v in mbody:
                out.extend(value_sources(caller, mbody[v], dirs, caller.modules[name][0], seen))
        for path, tv in d.tfvars.items():
            if v in tv:
                out.append((path, tv[v]))
    for v in [v for e in texts for v in RE_LOCAL.findall(e)]:
        key = (d.path, "local", v)
        if v in d.locals and key not in seen:
            seen.add(key)
            path, body = d.locals[v]
            out.extend(value_sources(d, body, dirs, path, seen))
    return out


def opens(value):
    return any(s in OPEN_CIDRS for s in strings(value))


def check_ssh_open(d, dirs):
    for path, label, proto, lo, hi, cidrs, body in ingress_rules(d):
        lo_p, hi_p = port(lo), port(hi)
        covers_22 = all_protocols(proto) or lo_p is None or hi_p is None or lo_p <= 22 <= hi_p
        if not covers_22:
            continue
        sources = []
        for value in cidrs.values():
            sources += value_sources(d, value, dirs, path)
            if RE_EACH.search(" ".join(result_part(e) for e in expressions(value))):
                sources += value_sources(d, body.get("for_each"), dirs, path)
        for spath, v in sources:
            if opens(v):
                problem(rel(spath), "ssh-open", "%s (port 22) is open to the internet: %s" %
                        (label, json.dumps(v)))


def check_ingress(d):
    for path, label, proto, lo, hi, cidrs, body in ingress_rules(d):
        where = rel(path)
        if all_protocols(proto):
            problem(where, "ingress", "%s allows every protocol and port" % label)
            continue
        if str(proto).lower() not in ("tcp", "6"):
            problem(where, "ingress", "%s: protocol %s (the stack serves TCP only)" % (label, proto))
        lo_p, hi_p = port(lo), port(hi)
        if lo_p is None or hi_p is None:
            problem(where, "ingress", "%s: ports must be literal numbers so they can be "
                    "checked (from_port = %s)" % (label, lo))
        elif lo_p != hi_p:
            problem(where, "ingress", "%s opens the range %d-%d" % (label, lo_p, hi_p))
        elif lo_p not in STACK_PORTS:
            problem(where, "ingress", "%s opens port %d, which the stack does not serve "
                    "(only %s)" % (label, lo_p, " ".join(map(str, sorted(STACK_PORTS)))))


def key_policy_docs(d):
    docs = set()
    for (t, n), (path, body) in d.resources.items():
        if t in ("aws_kms_key", "aws_kms_replica_key"):
            docs.update(name for dtype, name in refs(RE_DATA, body.get("policy", ""))
                        if dtype == "aws_iam_policy_document")
    return docs


def check_iam(d):
    key_docs = key_policy_docs(d)
    for (t, n), (path, body) in sorted(d.data.items()):
        if t != "aws_iam_policy_document" or n in key_docs:
            continue
        where = rel(path)
        for i, st in enumerate(blocks(body, "statement")):
            sid = st.get("sid") or "#%d" % (i + 1)
            label = "data.%s.%s statement %s" % (t, n, sid)
            if st.get("effect", "Allow") != "Allow":
                continue
            for k in ("not_actions", "not_resources"):
                if k in st:
                    problem(where, "iam", "%s: Allow with %s grants everything else" % (label, k))
            actions = [a for a in as_list(st.get("actions")) if isinstance(a, str)]
            for a in actions:
                if not is_expr(a) and "*" in a:
                    problem(where, "iam", "%s: wildcard action %s" % (label, a))
            resources = as_list(st.get("resources"))
            if "*" in resources:
                other = sorted(a for a in actions if a.lower() not in NO_RESOURCE_ARN_ACTIONS)
                if other or not actions:
                    problem(where, "iam", "%s: resource \"*\" for %s, which AWS lets you "
                            "scope to ARNs" % (label, ", ".join(other) or "its actions"))
    for (t, n), (path, body) in sorted(d.resources.items()):
        where = rel(path)
        attrs = {"aws_iam_policy": "policy", "aws_iam_role_policy": "policy",
                 "aws_iam_user_policy": "policy", "aws_iam_group_policy": "policy",
                 "aws_iam_role": "assume_role_policy"}
        if t in attrs:
            value = body.get(attrs[t])
            ok = isinstance(value, str) and re.fullmatch(
                r"\$\{data\.aws_iam_policy_document\.[\w-]+(\[[^\]]*\])?\.json\}", value)
            if not ok:
                problem(where, "iam", "%s.%s: %s is not a data.aws_iam_policy_document "
                        "(inline JSON cannot be checked)" % (t, n, attrs[t]))
        if t == "aws_iam_role" and "inline_policy" in body:
            problem(where, "iam", "%s.%s: inline_policy blocks; use aws_iam_role_policy" % (t, n))
        if t.startswith("aws_iam_") and t.endswith("attachment"):
            arn = body.get("policy_arn", "")
            for admin in ADMIN_POLICIES:
                if isinstance(arn, str) and arn.endswith(":policy/" + admin):
                    problem(where, "iam", "%s.%s attaches %s" % (t, n, admin))


def check_secrets(d):
    for (t, n), (path, body) in sorted(d.resources.items()):
        if t == "aws_secretsmanager_secret" and not body.get("kms_key_id"):
            problem(rel(path), "secrets", "%s.%s has no kms_key_id (a customer-managed KMS "
                    "key; aws/secretsmanager cannot be shared or audited per key)" % (t, n))
        if t == "aws_kms_key" and not literal_true(body.get("enable_key_rotation")):
            problem(rel(path), "kms", "%s.%s: enable_key_rotation must be true" % (t, n))


def targets(d, rtype, name):
    """Resources of type rtype whose `bucket`/`name` refer to resource name."""
    found = []
    for (t, n), (path, body) in d.resources.items():
        if t == rtype and any(r == name for r in resource_refs(body, {"aws"})):
            found.append(body)
    return found


def check_s3(d):
    for (t, n), (path, body) in sorted(d.resources.items()):
        if t != "aws_s3_bucket":
            continue
        where = rel(path)
        me = ("aws_s3_bucket", n)
        pab = targets(d, "aws_s3_bucket_public_access_block", me)
        if not pab:
            problem(where, "s3", "aws_s3_bucket.%s has no aws_s3_bucket_public_access_block" % n)
        for b in pab:
            for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                      "restrict_public_buckets"):
                if not literal_true(b.get(k)):
                    problem(where, "s3", "aws_s3_bucket.%s: public access block %s must be true"
                            % (n, k))
        if not targets(d, "aws_s3_bucket_server_side_encryption_configuration", me):
            problem(where, "s3", "aws_s3_bucket.%s has no server-side encryption configuration" % n)
        vers = targets(d, "aws_s3_bucket_versioning", me)
        if not any(v.get("status") == "Enabled" for b in vers
                   for v in blocks(b, "versioning_configuration")):
            problem(where, "s3", "aws_s3_bucket.%s has no versioning (status Enabled)" % n)
        tls = False
        for pol in targets(d, "aws_s3_bucket_policy", me):
            for _, doc in refs(RE_DATA, pol.get("policy", "")):
                _, dbody = d.data.get(("aws_iam_policy_document", doc), (None, {}))
                for st in blocks(dbody, "statement"):
                    if st.get("effect") == "Deny" and any(
                            c.get("variable") == "aws:SecureTransport" and
                            as_list(c.get("values")) in (["false"], [False])
                            for c in blocks(st, "condition")):
                        tls = True
        if not tls:
            problem(where, "s3", "aws_s3_bucket.%s has no bucket policy denying "
                    "aws:SecureTransport = false (TLS only)" % n)


def check_dynamodb(d):
    for (t, n), (path, body) in sorted(d.resources.items()):
        if t != "aws_dynamodb_table":
            continue
        if not any(literal_true(b.get("enabled")) for b in blocks(body, "server_side_encryption")):
            problem(rel(path), "dynamodb", "%s.%s: server_side_encryption not enabled" % (t, n))
        if not any(literal_true(b.get("enabled")) for b in blocks(body, "point_in_time_recovery")):
            problem(rel(path), "dynamodb", "%s.%s: point_in_time_recovery not enabled" % (t, n))


def check_secret_values(d):
    bodies = [(p, "%s.%s" % k, b) for k, (p, b) in d.resources.items()]
    bodies += [(p, "data.%s.%s" % k, b) for k, (p, b) in d.data.items()]
    bodies += [(p, "output " + k, b) for k, (p, b) in d.outputs.items()]
    bodies += [(p, "local." + k, b) for k, (p, b) in d.locals.items()]
    bodies += [(p, "module " + k, b) for k, (p, b) in d.modules.items()]
    for path, label, body in sorted(bodies, key=lambda x: (str(x[0]), x[1])):
        if label.startswith("aws_secretsmanager_secret_version."):
            continue
        for t, n in resource_refs(body, {"random"}):
            if t in ("random_password", "random_string"):
                problem(rel(path), "secret-values",
                        "%s uses %s.%s: generated secrets go only into "
                        "aws_secretsmanager_secret_version" % (label, t, n))
        if label.startswith("aws_instance.") or label.startswith("aws_launch_template."):
            ud = body.get("user_data") or body.get("user_data_base64") or ""
            for e in expressions(ud):
                if "aws_secretsmanager_secret_version" in e or "secret_string" in e:
                    problem(rel(path), "secret-values",
                            "%s puts a secret value into user data" % label)


RE_FILEFN = re.compile(r'(templatefile|file)\(\s*"\$\{path\.module\}/([^"]+)"')


def templates(d):
    """[(path of the .tf, function, template path)] of file()/templatefile() calls."""
    out = []
    for table in (d.locals, d.resources, d.outputs, d.data, d.modules):
        for _, (path, body) in table.items():
            for s in strings(body):
                for fn, name in RE_FILEFN.findall(s):
                    out.append((path, fn, d.path / name))
    return out


def check_user_data(d):
    for path, fn, target in templates(d):
        if not target.is_file():
            problem(rel(path), "user-data", "%s() of a missing file %s" % (fn, rel(target)))
        elif fn == "templatefile" and target.stat().st_size > USER_DATA_LIMIT - 1024:
            problem(rel(target), "user-data", "%d bytes: too close to EC2's %d-byte user "
                    "data limit once rendered" % (target.stat().st_size, USER_DATA_LIMIT))


def compose_ports(text):
    ports = set()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() != "ports:":
            continue
        indent = len(line) - len(line.lstrip())
        for entry in lines[i + 1:]:
            if not entry.strip() or entry.strip().startswith("#"):
                continue
            if len(entry) - len(entry.lstrip()) <= indent or not entry.strip().startswith("-"):
                break
            spec = entry.strip()[1:].strip().strip("\"'")
            m = re.search(r"(?:\$\{\w+:-(\d+)\}|(\d+)):\d+(?:/tcp)?$", spec)
            if m:
                ports.add(int(m.group(1) or m.group(2)))
    return ports


def check_compose(root, dirs, compose):
    try:
        text = compose.read_text()
    except OSError as e:
        problem(rel(compose), "compose", "cannot read the compose file: %s" % e)
        return
    published = compose_ports(text)
    if not published:
        problem(rel(compose), "compose", "no published ports found")
    opened = set()
    sg_files = set()
    for d in dirs.values():
        for path, label, proto, lo, hi, cidrs, body in ingress_rules(d):
            if port(lo) is not None and port(lo) == port(hi) and port(lo) != 22:
                opened.add(port(lo))
                sg_files.add(path)
    where = rel(sorted(sg_files)[0]) if sg_files else rel(root)
    for p in sorted(published - opened):
        problem(where, "compose", "compose publishes port %d but no ingress rule opens it" % p)
    for p in sorted(opened - published):
        problem(where, "compose", "ingress rule opens port %d, which compose does not publish" % p)

    required_env = sorted(set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text)))
    secret_files = sorted(set(re.findall(r"file:\s*\./secrets/([\w.-]+)", text)))
    found_user_data = False
    for d in dirs.values():
        if not any(t == "aws_instance" for t, _ in d.resources):
            continue
        tpls = [t for _, fn, t in templates(d) if fn == "templatefile" and t.is_file()]
        if not tpls:
            problem(rel(d.path), "compose", "aws_instance without a templatefile() user data")
            continue
        found_user_data = True
        body = "\n".join(t.read_text() for t in tpls)
        where = rel(tpls[0])
        for name in required_env:
            if not re.search(r"(?m)^%s=" % re.escape(name), body):
                problem(where, "compose", "user data does not write %s= (compose requires it "
                        "in compose/.env)" % name)
        for name in secret_files:
            if not re.search(r"(?<![\w.-])%s(?![\w.-])" % re.escape(name), body):
                problem(where, "compose", "user data does not provide compose/secrets/%s "
                        "(compose will not start without it)" % name)
    if not found_user_data:
        problem(rel(root), "compose", "no aws_instance with user data found")
    envroot = root / "environments"
    for d in dirs.values():
        if d.path.parent.resolve() != envroot.resolve() or not d.is_root():
            continue
        if d.path.name not in ENVIRONMENTS:
            problem(rel(d.path), "compose", "environment %s is not one of compose's %s" %
                    (d.path.name, "/".join(sorted(ENVIRONMENTS))))
        env = d.locals.get("environment")
        if env is not None and env[1] != d.path.name:
            problem(rel(env[0]), "compose", "local.environment = %s in environments/%s" %
                    (json.dumps(env[1]), d.path.name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="the terraform/ directory")
    ap.add_argument("--compose", type=Path,
                    help="compose file to cross-check (default ROOT/../compose/docker-compose.yml)")
    ap.add_argument("--node", default=os.environ.get("NODE", "node"), help="node binary")
    args = ap.parse_args()
    root = args.root
    if not root.is_dir():
        print("%s: not a directory" % root, file=sys.stderr)
        return 2
    compose = args.compose or (root / ".." / "compose" / "docker-compose.yml")

    files, dirs = load(root, args.node)
    if dirs is None:  # no parser: nothing else can be checked
        for line in problems:
            print(line)
        print("check_terraform: %d files, not checked: the HCL parser did not run" % len(files))
        return 1
    check_layout(root)
    check_style([f for f in files if f.suffix == ".tf" or ".tfvars" in f.name])
    for d in sorted(dirs.values(), key=lambda x: str(x.path)):
        check_variables(d)
        check_references(d, dirs)
        check_module_args(d, dirs)
        check_tfvars(d)
        if d.files:
            check_versions(d, dirs)
        check_imdsv2(d)
        check_ebs(d)
        check_ssh_open(d, dirs)
        check_ingress(d)
        check_iam(d)
        check_secrets(d)
        check_s3(d)
        check_dynamodb(d)
        check_secret_values(d)
        check_user_data(d)
    check_compose(root, dirs, compose)

    seen = set()
    for line in problems:
        if line not in seen:
            seen.add(line)
            print(line)
    print("check_terraform: %d files in %d directories, %d problems" %
          (len(files), len(dirs), len(seen)))
    return 1 if seen else 0


if __name__ == "__main__":
    sys.exit(main())
