// Parses HCL files with @cdktf/hcl2json (HashiCorp's HCL parser compiled to
// WebAssembly and shipped inside the npm package: no network, no terraform)
// for tests/tools/check_terraform.py. Usage: node check_terraform.js FILE...
// Prints one JSON object per file and line: {"file": F, "body": {...}} or
// {"file": F, "error": "..."}. Exit 0 when every file was read (parse errors
// included), 2 when the parser itself is not installed.
"use strict";
const fs = require("fs");
const path = require("path");

// The parser is one big WebAssembly module used for well under a second:
// V8's baseline compiler alone (no optimizing tier-up) cuts a run from
// ~0.9 s to ~0.3 s of CPU. Node versions without the flag ignore it.
require("v8").setFlagsFromString("--liftoff-only");

const modules = process.env.PORTCULLIS_NODE_MODULES ||
	path.join(__dirname, "..", "..", "tools", "node", "node_modules");
let hcl;
try {
	hcl = require(path.join(modules, "@cdktf", "hcl2json"));
} catch (e) {
	process.stderr.write(`check_terraform.js: @cdktf/hcl2json not found under ${modules} ` +
		"(install it: npm ci --prefix tools/node)\n");
	process.exit(2);
}

(async () => {
	for (const file of process.argv.slice(2)) {
		let line;
		try {
			const body = await hcl.parse(file, fs.readFileSync(file, "utf8"));
			line = { file, body };
		} catch (e) {
			line = { file, error: String(e && e.message ? e.message : e) };
		}
		process.stdout.write(JSON.stringify(line) + "\n");
	}
	// The Go runtime inside keeps the event loop alive: leave explicitly.
	process.exit(0);
})().catch((e) => {
	process.stderr.write(`check_terraform.js: ${e && e.stack ? e.stack : e}\n`);
	process.exit(2);
});
