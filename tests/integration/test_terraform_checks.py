"""tests/tools/check_terraform.py: the repository's Terraform passes, and
every check fails on a copy of the tree that breaks its rule, naming the
file and the problem.

Each case copies terraform/ and compose/docker-compose.yml into a temporary
directory, makes one edit, and runs the tool there as scripts/check-stack.sh
does: `/usr/bin/python3 tests/tools/check_terraform.py terraform`. The cases
run side by side, one per CPU, once per module (each run is mostly the
parser's WebAssembly start-up).
"""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tests" / "tools" / "check_terraform.py"
PARSER = REPO / "tools" / "node" / "node_modules" / "@cdktf" / "hcl2json"
SUMMARY = re.compile(r"^check_terraform: \d+ files(?: in \d+ directories, (\d+) problems"
                     r"|, not checked: the HCL parser did not run)$")


@pytest.fixture(scope="module", autouse=True)
def _parser_installed():
    if not PARSER.is_dir():
        pytest.fail("the HCL parser is not installed: npm ci --prefix tools/node "
                    "(make deps does it)")


def run(cwd, *args, env=None):
    out = subprocess.run([sys.executable, str(TOOL), "terraform", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=120, env=env)
    lines = out.stdout.strip().split("\n")
    assert SUMMARY.match(lines[-1]), out.stdout + out.stderr
    return out.returncode, lines


def make_tree(root):
    shutil.copytree(REPO / "terraform", root / "terraform",
                    ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl",
                                                  "terraform.tfvars"))
    (root / "compose").mkdir()
    shutil.copy(REPO / "compose" / "docker-compose.yml", root / "compose")
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path)


def edit(root, rel, old, new, count=1):
    p = root / rel
    text = p.read_text()
    assert old in text, "%s: %r not found" % (rel, old)
    p.write_text(text.replace(old, new, count))


def append(root, rel, text):
    p = root / rel
    p.write_text(p.read_text() + text)


def test_repository_terraform_passes():
    rc, lines = run(REPO)
    assert rc == 0, "\n".join(lines)
    assert lines == [lines[-1]]
    assert SUMMARY.match(lines[-1]).group(1) == "0"


def test_missing_parser_is_a_problem(tree):
    env = {"PATH": "/usr/bin:/bin", "PORTCULLIS_NODE_MODULES": str(tree / "nowhere")}
    rc, lines = run(tree, env=env)
    assert rc == 1
    assert lines[-1].endswith("not checked: the HCL parser did not run"), lines
    assert len(lines) == 2 and "[parse]" in lines[0] and \
        "npm ci --prefix tools/node" in lines[0], lines


EC2 = "terraform/modules/ec2/main.tf"
EC2_VARS = "terraform/modules/ec2/variables.tf"
SG = "terraform/modules/security-group/main.tf"
IAM = "terraform/modules/iam/main.tf"
SECRETS = "terraform/modules/secrets/main.tf"
BACKEND = "terraform/backend/main.tf"
DEV = "terraform/environments/dev/"
PROD = "terraform/environments/prod/"
USER_DATA = "terraform/modules/ec2/user-data.sh.tftpl"
COMPOSE = "compose/docker-compose.yml"

# (id, edit, file named, check, words of the message)
CASES = [
    ("parse", lambda r: append(r, IAM, 'resource "aws_iam_role" "broken" {\n  name =\n}\n'),
     IAM, "parse", "Invalid expression"),
    ("parse-tfvars", lambda r: append(r, DEV + "terraform.tfvars.example", "oops = [\n"),
     DEV + "terraform.tfvars.example", "parse", "Missing expression"),
    ("layout", lambda r: (r / "terraform/backend/README.md").unlink(),
     "terraform/backend/README.md", "layout", "missing"),
    ("style-tab", lambda r: edit(r, "terraform/modules/ec2/outputs.tf",
                                 '  value       = aws_instance.this.id', '\tvalue = aws_instance.this.id'),
     "terraform/modules/ec2/outputs.tf", "style", "tab"),
    ("style-trailing", lambda r: edit(r, SG, "resource \"aws_security_group\" \"this\" {",
                                      "resource \"aws_security_group\" \"this\" {  "),
     SG, "style", "trailing whitespace"),
    ("variable-description", lambda r: edit(
        r, EC2_VARS, '  description = "EC2 instance type. t3.small', '  # description = "EC2 instance type. t3.small'),
     EC2_VARS, "variables", "variable instance_type has no description"),
    ("variable-type", lambda r: edit(r, DEV + "variables.tf",
                                     '  type        = string\n  default     = "us-east-1"',
                                     '  default     = "us-east-1"'),
     DEV + "variables.tf", "variables", "variable aws_region has no type"),
    ("variable-unused", lambda r: append(r, EC2_VARS, 'variable "spare" {\n  description = "x"\n  type        = string\n  default     = ""\n}\n'),
     EC2_VARS, "variables", "variable spare is declared but never used"),
    ("output-description", lambda r: edit(r, DEV + "outputs.tf",
                                          '  description = "ID of the EC2 instance."\n', ""),
     DEV + "outputs.tf", "variables", "output instance_id has no description"),
    ("unused-local", lambda r: edit(r, SG, "locals {\n", "locals {\n  spare = 1\n"),
     SG, "variables", "local.spare is declared but never used"),
    ("unused-data", lambda r: append(r, IAM, 'data "aws_availability_zones" "all" {}\n'),
     IAM, "variables", "data.aws_availability_zones.all is declared but never used"),
    ("duplicate", lambda r: append(r, "terraform/modules/iam/outputs.tf",
                                   'output "role_arn" {\n  description = "again"\n  value       = aws_iam_role.instance.arn\n}\n'),
     "terraform/modules/iam/outputs.tf", "references", "output role_arn is declared twice"),
    ("reference-var", lambda r: edit(r, EC2, "instance_type               = var.instance_type",
                                     "instance_type               = var.instance_size"),
     EC2, "references", "var.instance_size is not declared"),
    ("reference-module-output", lambda r: edit(r, DEV + "outputs.tf", "module.ec2.instance_id",
                                               "module.ec2.instance_ids"),
     DEV + "outputs.tf", "references", "module.ec2.instance_ids"),
    ("reference-resource", lambda r: edit(r, SG, "security_group_id = aws_security_group.this.id",
                                          "security_group_id = aws_security_group.that.id"),
     SG, "references", "aws_security_group.that is not declared"),
    ("module-undeclared-arg", lambda r: edit(r, DEV + "main.tf", "  create_eip           = var.create_eip\n",
                                             "  create_eip           = var.create_eip\n  elastic_ip           = true\n"),
     DEV + "main.tf", "module-args", "module ec2 passes elastic_ip, which"),
    ("module-missing-required", lambda r: edit(r, PROD + "main.tf",
                                               "  repository_ref       = var.repository_ref\n", ""),
     PROD + "main.tf", "module-args", "does not pass required variable repository_ref"),
    ("module-source", lambda r: edit(r, DEV + "main.tf", '"../../modules/iam"', '"../../modules/iam-role"'),
     DEV + "main.tf", "module-args", "is not a directory"),
    ("tfvars-unknown", lambda r: append(r, DEV + "terraform.tfvars.example", 'instance_size = "t3.nano"\n'),
     DEV + "terraform.tfvars.example", "tfvars", "instance_size is not a variable"),
    ("tfvars-required", lambda r: edit(r, PROD + "terraform.tfvars.example",
                                       'vpc_id     = "vpc-0123456789abcdef0"\n', ""),
     PROD + "terraform.tfvars.example", "tfvars", "required variable vpc_id is not set"),
    ("versions-random", lambda r: edit(r, DEV + "versions.tf",
                                       '    random = {\n      source  = "hashicorp/random"\n      version = "~> 3.5"\n    }\n', ""),
     DEV + "versions.tf", "versions", "provider random is used but not in required_providers"),
    ("versions-aws", lambda r: edit(r, PROD + "versions.tf", 'version = "~> 5.0"', 'version = ">= 4.0"'),
     PROD + "versions.tf", "versions", "aws provider version must be \"~> 5.0\""),
    ("versions-terraform", lambda r: edit(r, "terraform/backend/versions.tf",
                                          'required_version = ">= 1.5.0"', 'required_version = ">= 1.3.0"'),
     "terraform/backend/versions.tf", "versions", "required_version must be >= 1.5"),
    ("versions-default-tags", lambda r: edit(r, DEV + "main.tf", "  default_tags {", "  dflt_tags {"),
     DEV + "main.tf", "versions", "no default_tags"),
    ("versions-module-provider", lambda r: append(r, "terraform/modules/iam/versions.tf",
                                                  'provider "aws" {\n  region = "us-east-1"\n}\n'),
     "terraform/modules/iam/versions.tf", "versions", "module has a provider \"aws\" block"),
    ("imdsv2-tokens", lambda r: edit(r, EC2, 'http_tokens                 = "required"',
                                     'http_tokens                 = "optional"'),
     EC2, "imdsv2", "http_tokens must be \"required\""),
    ("imdsv2-hop-limit", lambda r: edit(r, EC2, "http_put_response_hop_limit = 2",
                                        "http_put_response_hop_limit = 1"),
     EC2, "imdsv2", "hop_limit must be 2"),
    ("imdsv2-missing", lambda r: edit(r, EC2, "  metadata_options {", "  metadata_opts {"),
     EC2, "imdsv2", "has no metadata_options"),
    ("ebs-encryption", lambda r: edit(r, EC2, "encrypted             = true",
                                      "encrypted             = false"),
     EC2, "ebs", "root_block_device.encrypted must be true"),
    ("ebs-gp3", lambda r: edit(r, EC2, 'volume_type           = "gp3"', 'volume_type           = "gp2"'),
     EC2, "ebs", "volume_type must be gp3"),
    ("ebs-volume", lambda r: append(r, EC2, 'resource "aws_ebs_volume" "data" {\n  availability_zone = "us-east-1a"\n  size              = 10\n}\n'),
     EC2, "ebs", "aws_ebs_volume.data: encrypted must be true"),
    ("ssh-open-default", lambda r: edit(r, DEV + "variables.tf",
                                        'description = "Who reaches SSH (22). Default: nobody. Never 0.0.0.0/0."\n  type        = list(string)\n  default     = []',
                                        'description = "Who reaches SSH (22)."\n  type        = list(string)\n  default     = ["0.0.0.0/0"]'),
     DEV + "variables.tf", "ssh-open", "aws_vpc_security_group_ingress_rule.ssh (port 22) is open"),
    ("ssh-open-tfvars", lambda r: edit(r, PROD + "terraform.tfvars.example",
                                       "ssh_cidr_blocks        = []", 'ssh_cidr_blocks        = ["::/0"]'),
     PROD + "terraform.tfvars.example", "ssh-open", "\"::/0\""),
    ("ssh-open-literal", lambda r: append(r, SG, 'resource "aws_security_group_rule" "admin" {\n  type              = "ingress"\n  security_group_id = aws_security_group.this.id\n  protocol          = "tcp"\n  from_port         = 22\n  to_port           = 22\n  cidr_blocks       = ["0.0.0.0/0"]\n}\n'),
     SG, "ssh-open", "aws_security_group_rule.admin (port 22)"),
    ("ingress-port", lambda r: edit(r, SG, "from_port         = 9090\n  to_port           = 9090",
                                    "from_port         = 9100\n  to_port           = 9100"),
     SG, "ingress", "opens port 9100, which the stack does not serve"),
    ("ingress-range", lambda r: edit(r, SG, "from_port         = 9093\n  to_port           = 9093",
                                     "from_port         = 9093\n  to_port           = 9100"),
     SG, "ingress", "opens the range 9093-9100"),
    ("ingress-all", lambda r: edit(r, SG, 'description       = "HTTP (308 to https, /healthz)"\n  ip_protocol       = "tcp"',
                                   'description       = "HTTP (308 to https, /healthz)"\n  ip_protocol       = "-1"'),
     SG, "ingress", "aws_vpc_security_group_ingress_rule.http allows every protocol"),
    ("iam-star-resource", lambda r: edit(r, IAM, "resources = var.secret_arns", 'resources = ["*"]'),
     IAM, "iam", "statement ReadTheStackSecrets: resource \"*\" for secretsmanager:GetSecretValue"),
    ("iam-wildcard-action", lambda r: edit(r, IAM, 'actions   = ["kms:Decrypt"]', 'actions   = ["kms:*"]'),
     IAM, "iam", "wildcard action kms:*"),
    ("iam-inline-json", lambda r: edit(r, IAM, "policy = data.aws_iam_policy_document.instance.json",
                                       'policy = jsonencode({ Version = "2012-10-17", Statement = [] })'),
     IAM, "iam", "aws_iam_role_policy.instance: policy is not a data.aws_iam_policy_document"),
    ("iam-admin", lambda r: edit(r, IAM, "iam::aws:policy/AmazonSSMManagedInstanceCore",
                                 "iam::aws:policy/AdministratorAccess"),
     IAM, "iam", "attaches AdministratorAccess"),
    ("secrets-kms", lambda r: edit(r, SECRETS, "  kms_key_id              = local.kms_key_arn\n", "", 2),
     SECRETS, "secrets", "aws_secretsmanager_secret.generated has no kms_key_id"),
    ("kms-rotation", lambda r: edit(r, SECRETS, "enable_key_rotation     = true",
                                    "enable_key_rotation     = false"),
     SECRETS, "kms", "enable_key_rotation must be true"),
    ("s3-public-access", lambda r: edit(r, BACKEND, "restrict_public_buckets = true",
                                        "restrict_public_buckets = false"),
     BACKEND, "s3", "public access block restrict_public_buckets must be true"),
    ("s3-versioning", lambda r: edit(r, BACKEND, 'status = "Enabled"\n  }\n}', 'status = "Suspended"\n  }\n}'),
     BACKEND, "s3", "has no versioning"),
    ("s3-tls", lambda r: edit(r, BACKEND, 'variable = "aws:SecureTransport"', 'variable = "aws:SourceIp"'),
     BACKEND, "s3", "TLS only"),
    ("s3-encryption", lambda r: edit(r, BACKEND, 'resource "aws_s3_bucket_server_side_encryption_configuration" "state" {\n  bucket = aws_s3_bucket.state.id',
                                     'resource "aws_s3_bucket_server_side_encryption_configuration" "state" {\n  bucket = "elsewhere"'),
     BACKEND, "s3", "no server-side encryption"),
    ("dynamodb-pitr", lambda r: edit(r, BACKEND, "point_in_time_recovery {\n    enabled = true",
                                     "point_in_time_recovery {\n    enabled = false"),
     BACKEND, "dynamodb", "point_in_time_recovery not enabled"),
    ("secret-values-output", lambda r: append(r, "terraform/modules/secrets/outputs.tf",
                                              'output "grafana_password" {\n  description = "x"\n  value       = random_password.this["grafana-admin"].result\n  sensitive   = true\n}\n'),
     "terraform/modules/secrets/outputs.tf", "secret-values", "output grafana_password uses random_password.this"),
    ("secret-values-user-data", lambda r: edit(r, EC2, "user_data                   = local.user_data",
                                               "user_data                   = data.aws_secretsmanager_secret_version.x.secret_string"),
     EC2, "secret-values", "aws_instance.this puts a secret value into user data"),
    ("user-data-missing", lambda r: (r / USER_DATA).rename(r / (USER_DATA + ".old")),
     EC2, "user-data", "templatefile() of a missing file"),
    ("user-data-size", lambda r: append(r, USER_DATA, "# padding\n" * 1600),
     USER_DATA, "user-data", "16384-byte user data limit"),
    ("compose-port", lambda r: edit(r, COMPOSE, '      - "${PORTCULLIS_BIND:-0.0.0.0}:${PORTCULLIS_ALERTMANAGER_PORT:-9093}:9093"\n',
                                    '      - "${PORTCULLIS_BIND:-0.0.0.0}:${PORTCULLIS_ALERTMANAGER_PORT:-9093}:9093"\n      - "8443:8443"\n'),
     SG, "compose", "compose publishes port 8443 but no ingress rule opens it"),
    ("compose-env", lambda r: edit(r, COMPOSE, "      GF_LOG_MODE: console\n",
                                   "      GF_LOG_MODE: console\n      GF_X: ${NEW_SETTING:?set it}\n"),
     USER_DATA, "compose", "does not write NEW_SETTING="),
    ("compose-secret-file", lambda r: append(r, COMPOSE, "  extra_token:\n    file: ./secrets/extra_token\n"),
     USER_DATA, "compose", "does not provide compose/secrets/extra_token"),
    ("compose-environment", lambda r: edit(r, DEV + "main.tf", 'environment = "dev"', 'environment = "development"'),
     DEV + "main.tf", "compose", "local.environment = \"development\" in environments/dev"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{case id: (rc, lines) or the exception of its edit or run}."""
    def one(case):
        try:
            root = make_tree(tmp_path_factory.mktemp(case[0]))
            case[1](root)
            return run(root)
        except Exception as e:  # reported by the case's own test
            return e

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip([c[0] for c in CASES], pool.map(one, CASES)))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_check_fails(results, case):
    name, mutate, path, check, words = case
    result = results[name]
    if isinstance(result, Exception):
        raise result
    rc, lines = result
    assert rc == 1, "\n".join(lines)
    wanted = "%s: [%s] " % (path, check)
    assert any(l.startswith(wanted) and words in l for l in lines), \
        "no %r line with %r in:\n%s" % (wanted, words, "\n".join(lines))
    assert int(SUMMARY.match(lines[-1]).group(1)) == len(lines) - 1
