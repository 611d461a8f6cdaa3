"""scripts/prometheus-backup.sh against a real Prometheus (native mode):
a backup of persisted blocks (backfilled with promtool) and head data
(self-scrapes), the archive's manifest and checksums, a restore into a
fresh data directory that a new Prometheus serves with the same samples,
and the refusals: a damaged archive, a non-empty directory without
--force, a Prometheus still running, no admin API."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import REPO, start_prometheus

SCRIPT = REPO / "scripts" / "prometheus-backup.sh"
# Backfilled series: two of them, a sample a minute from 5 h to 3 h ago
# (persisted blocks once promtool has written them).
BACKFILL_START = 5 * 3600
BACKFILL_SPAN = 2 * 3600
QUERIES = ["backup_test_value[6h]", '{job="prometheus"}[1m]']


def run_script(*args, timeout=120, env=None):
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def api(svc, path, **params):
    url = "http://127.0.0.1:%d/prometheus%s" % (svc.port, path)
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        data = json.load(r)
    assert data["status"] == "success", data
    return data["data"]


def raw_samples(svc, query, at):
    """Every raw sample of a range-vector query at `at`, by series."""
    data = api(svc, "/api/v1/query", query=query, time="%.3f" % at)
    assert data["resultType"] == "matrix", data
    return sorted((sorted(s["metric"].items()), s["values"])
                  for s in data["result"])


def backfill(data_dir):
    """promtool writes blocks of backup_test_value into data_dir."""
    now = int(time.time())
    lines = []
    for i in range(0, BACKFILL_SPAN + 1, 60):
        t = now - BACKFILL_START + i
        lines.append('backup_test_value{kind="a"} %d.25 %d' % (i // 60, t))
        lines.append('backup_test_value{kind="b"} %d.5 %d' % (i // 30, t))
    om = data_dir.parent / "backfill.om"
    om.write_text("\n".join(lines) + "\n# EOF\n")
    data_dir.mkdir(parents=True)
    p = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                        str(om), str(data_dir)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    blocks = sorted(d.name for d in data_dir.iterdir() if (d / "meta.json").exists())
    assert blocks, "promtool wrote no block"
    return blocks


def members(archive):
    with tarfile.open(archive, "r:gz") as t:
        return {m.name: (t.extractfile(m).read() if m.isfile() else None)
                for m in t.getmembers()}


def tsdb_like(d, marker="keep-me"):
    """A stopped Prometheus's data directory with a marker file."""
    (d / "wal").mkdir(parents=True)
    (d / "wal" / "00000000").write_bytes(b"old wal")
    (d / marker).write_text("old data\n")
    return d


def listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


class Source:
    pass


@pytest.fixture(scope="module")
def source(tmp_path_factory, public_port):
    """A Prometheus with the admin API, backfilled blocks and a few seconds
    of self-scrapes, backed up once; .expected holds QUERIES' raw samples
    at .at (before the backup) as the original answers them."""
    s = Source()
    s.dir = tmp_path_factory.mktemp("backup-source")
    s.data = s.dir / "data"
    s.backfilled = backfill(s.data)
    s.svc = start_prometheus(s.dir, public_port, admin_api=True)
    try:
        def scraped():
            r = api(s.svc, "/api/v1/query",
                    query='count_over_time(up{job="prometheus"}[1m])')["result"]
            return r and int(r[0]["value"][1]) >= 3
        deadline = time.monotonic() + 30
        while not scraped():
            assert time.monotonic() < deadline, "no self-scrapes within 30s"
            time.sleep(0.5)
        s.at = round(time.time() - 1, 3)
        s.out = s.dir / "out"
        s.result = run_script("backup", "--url",
                              "http://127.0.0.1:%d/prometheus" % s.svc.port,
                              "--data-dir", s.data, "--out", s.out)
        assert s.result.returncode == 0, s.result.stdout + s.result.stderr
        s.archive = s.out / s.result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
        s.expected = {q: raw_samples(s.svc, q, s.at) for q in QUERIES}
        s.version = api(s.svc, "/api/v1/status/buildinfo")["version"]
        yield s
    finally:
        s.svc.proc.stop()


# ------------------------------------------------------------------ backup


def test_backup_writes_archive_and_checksum(source):
    assert source.archive.name.startswith("prometheus-")
    assert source.archive.name.endswith(".tar.gz")
    assert sorted(p.name for p in source.out.iterdir()) == \
        [source.archive.name, source.archive.name + ".sha256"]
    digest = hashlib.sha256(source.archive.read_bytes()).hexdigest()
    assert (source.out / (source.archive.name + ".sha256")).read_text() == \
        "%s  %s\n" % (digest, source.archive.name)
    # the snapshot was taken out of the data directory again
    assert list((source.data / "snapshots").iterdir()) == []
    assert str(source.archive) in source.result.stdout


def test_manifest_and_checksums(source):
    files = members(source.archive)
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "portcullis-prometheus-backup/1"
    assert manifest["prometheus_version"] == source.version
    assert manifest["snapshot"] in source.archive.name
    assert manifest["source"].startswith("http://127.0.0.1:%d/prometheus"
                                         % source.svc.port)
    assert manifest["check_query"] == 'count({__name__=~".+"})'
    assert manifest["check_value"] > 0
    assert source.at < manifest["check_time"] < time.time()

    # the checksum list: every data file, nothing else, and pinned by the
    # manifest
    sums = files["SHA256SUMS"]
    assert manifest["sha256sums"] == hashlib.sha256(sums).hexdigest()
    listed = {}
    for line in sums.decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    data_files = {n: b for n, b in files.items() if n.startswith("data/") and b is not None}
    assert set(listed) == set(data_files)
    for name, body in data_files.items():
        assert hashlib.sha256(body).hexdigest() == listed[name], name
    for name, body in files.items():
        if body is None:  # directories: data/ and the blocks' own
            assert name == "data" or name.startswith("data/"), name
        else:
            assert name in data_files or name in ("manifest.json", "SHA256SUMS"), name

    # blocks: the backfilled ones and the head written out, each as its
    # meta.json says
    blocks = {b["ulid"]: b for b in manifest["blocks"]}
    assert set(source.backfilled) < set(blocks)
    assert {n.split("/")[1] for n in data_files} == set(blocks)
    for ulid, b in blocks.items():
        meta = json.loads(files["data/%s/meta.json" % ulid])
        assert (b["min_time"], b["max_time"]) == (meta["minTime"], meta["maxTime"])
        assert b["samples"] == meta["stats"]["numSamples"]
        assert b["series"] == meta["stats"]["numSeries"]
    assert any(b["min_time"] <= source.at * 1000 < b["max_time"]
               for u, b in blocks.items() if u not in source.backfilled), \
        "no block holds the head's samples"
    assert manifest["min_time"] == min(b["min_time"] for b in blocks.values())
    assert manifest["max_time"] == max(b["max_time"] for b in blocks.values())
    assert manifest["files"] == len(data_files)


def test_check_command_accepts_the_archive(source):
    p = run_script("check", source.archive)
    assert p.returncode == 0, p.stderr
    assert "checksums match" in p.stderr


def test_backup_needs_admin_api(prometheus, tmp_path):
    """The session's Prometheus runs without --web.enable-admin-api."""
    p = run_script("backup", "--url", "http://127.0.0.1:%d/prometheus" % prometheus.port,
                   "--data-dir", prometheus.proc.workdir / "data", "--out", tmp_path / "out")
    assert p.returncode == 1
    assert "--web.enable-admin-api" in p.stderr
    assert list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------- restore


def test_restore_round_trip(source, tmp_path, public_port):
    """A new Prometheus on the restored directory answers the old time
    range with exactly the original's samples."""
    target = tmp_path / "restored"
    p = run_script("restore", "--data-dir", target / "data", source.archive)
    assert p.returncode == 0, p.stderr
    assert "restored" in p.stderr and "verify" in p.stderr
    manifest = json.loads(members(source.archive)["manifest.json"])
    assert sorted(d.name for d in (target / "data").iterdir()) == \
        sorted(b["ulid"] for b in manifest["blocks"])

    svc = start_prometheus(target, public_port)
    try:
        for q in QUERIES:
            got = raw_samples(svc, q, source.at)
            assert got, "%s: nothing restored" % q
            assert got == source.expected[q], q
        # the backfilled range, hours before the snapshot, in full
        (a,) = [v for m, v in source.expected[QUERIES[0]] if ("kind", "a") in m]
        assert len(a) == BACKFILL_SPAN // 60 + 1
        p = run_script("verify", "--url", "http://127.0.0.1:%d/prometheus" % svc.port,
                       source.archive)
        assert p.returncode == 0, p.stderr
        assert "verified" in p.stderr
    finally:
        svc.proc.stop()


def test_verify_fails_on_an_empty_prometheus(source, prometheus):
    """The session's Prometheus never had the backup's data."""
    p = run_script("verify", "--url", "http://127.0.0.1:%d/prometheus" % prometheus.port,
                   source.archive)
    assert p.returncode == 1
    assert "verification" in p.stderr and "failed" in p.stderr
    # the backfilled blocks, hours old, are not there
    for ulid in source.backfilled:
        assert "block %s" % ulid in p.stderr and "no data at its end" in p.stderr


def test_restore_refuses_non_empty_dir_without_force(source, tmp_path):
    target = tsdb_like(tmp_path / "data")
    before = listing(target)
    p = run_script("restore", "--data-dir", target, source.archive)
    assert p.returncode == 4
    assert "not empty" in p.stderr and "--force" in p.stderr
    assert listing(target) == before
    assert (target / "keep-me").read_text() == "old data\n"

    p = run_script("restore", "--force", "--data-dir", target, source.archive)
    assert p.returncode == 0, p.stderr
    manifest = json.loads(members(source.archive)["manifest.json"])
    assert sorted(d.name for d in target.iterdir()) == \
        sorted(b["ulid"] for b in manifest["blocks"])


def test_restore_leaves_a_foreign_directory_alone(source, tmp_path):
    target = tmp_path / "home"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    p = run_script("restore", "--force", "--data-dir", target, source.archive)
    assert p.returncode == 4
    assert "does not look like a Prometheus data directory" in p.stderr
    assert listing(target) == ["notes.txt"]


def test_restore_refuses_a_running_prometheus(source):
    before = listing(source.data)
    p = run_script("restore", "--force", "--url",
                   "http://127.0.0.1:%d/prometheus" % source.svc.port,
                   "--data-dir", source.data, source.archive)
    assert p.returncode == 4
    assert "stop it" in p.stderr
    assert listing(source.data) == before


def damaged_copy(source, tmp_path, name):
    a = tmp_path / name
    shutil.copyfile(source.archive, a)
    return a


def test_damaged_archive_refused(source, tmp_path):
    """A byte changed in transit: the .sha256 beside the archive catches it
    before anything is unpacked or replaced, --force or not."""
    a = damaged_copy(source, tmp_path, "damaged.tar.gz")
    shutil.copyfile(str(source.archive) + ".sha256", str(a) + ".sha256")
    raw = bytearray(a.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    a.write_bytes(bytes(raw))
    target = tsdb_like(tmp_path / "data")
    before = listing(target)
    p = run_script("restore", "--force", "--data-dir", target, a)
    assert p.returncode == 3
    assert "checksum mismatch" in p.stderr and "nothing was changed" in p.stderr
    assert listing(target) == before
    assert run_script("check", a).returncode == 3


def test_tampered_block_refused(source, tmp_path):
    """A data file changed inside a well-formed archive whose own checksum
    was made afresh: SHA256SUMS names the file, nothing is replaced."""
    files = members(source.archive)
    victim = sorted(n for n in files if n.endswith("/chunks/000001"))[0]
    body = bytearray(files[victim])
    body[len(body) // 2] ^= 0x01
    files[victim] = bytes(body)
    a = tmp_path / "tampered.tar.gz"
    with tarfile.open(a, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    (tmp_path / "tampered.tar.gz.sha256").write_text(
        "%s  tampered.tar.gz\n" % hashlib.sha256(a.read_bytes()).hexdigest())
    target = tsdb_like(tmp_path / "data")
    before = listing(target)
    p = run_script("restore", "--force", "--data-dir", target, a)
    assert p.returncode == 3, p.stderr
    assert "checksum mismatch" in p.stderr and victim + ": FAILED" in p.stderr
    assert listing(target) == before


def test_truncated_archive_without_checksum_refused(source, tmp_path):
    a = tmp_path / "short.tar.gz"
    a.write_bytes(source.archive.read_bytes()[:2000])
    target = tsdb_like(tmp_path / "data")
    before = listing(target)
    p = run_script("restore", "--force", "--data-dir", target, a)
    assert p.returncode == 3
    assert "not a readable .tar.gz" in p.stderr
    assert listing(target) == before


# ------------------------------------------------------------------- S3

FAKE_AWS = """#!/bin/sh
# aws s3 cp [--only-show-errors] SRC DST, with s3://BUCKET/KEY kept under
# $FAKE_S3/BUCKET/KEY; every call logged.
echo "$*" >>"$FAKE_S3/calls"
[ "$1 $2" = "s3 cp" ] || exit 2
shift 2
[ "$1" = --only-show-errors ] && shift
map() { case $1 in s3://*) echo "$FAKE_S3/${1#s3://}" ;; *) echo "$1" ;; esac; }
src=$(map "$1") dst=$(map "$2")
mkdir -p "$(dirname "$dst")" && cp "$src" "$dst"
"""


def path_with_fake_aws(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    s3 = tmp_path / "s3"
    s3.mkdir()
    env = dict(os.environ, PATH="%s:/usr/sbin:/usr/bin:/sbin:/bin" % bin_dir,
               FAKE_S3=str(s3))
    return env, s3


def test_s3_upload_keep_and_restore(source, tmp_path):
    """--s3 uploads the archive and its .sha256 with `aws s3 cp`; --keep
    prunes the local directory; restore fetches an s3:// archive."""
    env, s3 = path_with_fake_aws(tmp_path)
    out = tmp_path / "out"
    url = "http://127.0.0.1:%d/prometheus" % source.svc.port
    names = []
    for _ in range(2):
        p = run_script("backup", "--url", url, "--data-dir", source.data, "--out", out,
                       "--s3", "s3://backups-bucket/prometheus/", "--keep", "1", env=env)
        assert p.returncode == 0, p.stderr
        names.append(p.stdout.strip().rsplit("/", 1)[-1])
        time.sleep(1.1)  # snapshot names have a one-second resolution
    assert names[0] != names[1]
    # only the newest is kept here; both went to the bucket
    assert sorted(x.name for x in out.iterdir()) == [names[1], names[1] + ".sha256"]
    bucket = s3 / "backups-bucket" / "prometheus"
    assert sorted(x.name for x in bucket.iterdir()) == \
        sorted(n + ext for n in names for ext in ("", ".sha256"))
    assert (bucket / names[1]).read_bytes() == (out / names[1]).read_bytes()

    target = tmp_path / "restored"
    p = run_script("restore", "--data-dir", target,
                   "s3://backups-bucket/prometheus/" + names[0], env=env)
    assert p.returncode == 0, p.stderr
    calls = (s3 / "calls").read_text().splitlines()
    # two uploads per backup, then the archive and its .sha256 fetched
    assert len(calls) == 6
    assert [c.split()[:4] for c in calls[-2:]] == [
        ["s3", "cp", "--only-show-errors", "s3://backups-bucket/prometheus/" + n]
        for n in (names[0], names[0] + ".sha256")]
    manifest = json.loads(members(bucket / names[0])["manifest.json"])
    assert sorted(d.name for d in target.iterdir()) == \
        sorted(b["ulid"] for b in manifest["blocks"])


def test_s3_without_aws_cli_keeps_the_archive(source, tmp_path):
    env = dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    out = tmp_path / "out"
    p = run_script("backup", "--url", "http://127.0.0.1:%d/prometheus" % source.svc.port,
                   "--data-dir", source.data, "--out", out, "--s3", "s3://bucket/x", env=env)
    assert p.returncode == 5, p.stderr
    assert "aws CLI is not installed" in p.stderr and "not uploaded" in p.stderr
    assert len(list(out.glob("prometheus-*.tar.gz"))) == 1
    assert list((source.data / "snapshots").iterdir()) == []


# ------------------------------------------------------------------ usage


@pytest.mark.parametrize("args", [
    [], ["snapshot"], ["backup", "--url", "http://127.0.0.1:1"],
    ["restore", "--data-dir", "/nonexistent"], ["backup", "--keep", "0", "--url",
                                                "http://x", "--data-dir", "/x"],
    ["backup", "--s3", "bucket/prefix"]])
def test_usage_errors(args):
    p = run_script(*args)
    assert p.returncode == 2, (args, p.stderr)
    assert "prometheus-backup" in p.stderr


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("no shellcheck")
    p = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout
