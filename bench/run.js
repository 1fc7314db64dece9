#!/usr/bin/env node
'use strict';
// Runs every benchmark script in bench/ (or those named on the command line) one after another.
// Each prints its table and writes bench/results/<name>.json.
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const helpers = new Set(['common.js', 'run.js', 'finetune-model.js']);
const all = fs
  .readdirSync(__dirname)
  .filter((f) => f.endsWith('.js') && !helpers.has(f))
  .map((f) => f.replace(/\.js$/, ''))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  const res = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`)], { stdio: 'inherit' });
  if (res.status !== 0) {
    console.error(`bench ${name} failed with exit code ${res.status}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
