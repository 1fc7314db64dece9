#!/usr/bin/env node
// Builds data/devils-dictionary.jsonl, the fine-tuning demo's dataset, from Ambrose Bierce's
// "The Devil's Dictionary" (1911, public domain) as Debian's dict-devil package ships it
// (`apt-get install dict-devil`). One record per entry: the headword and part of speech as the
// prompt ("CYNIC, n."), the definition as the completion.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const DICT = '/usr/share/dictd/devil.dict.dz';
const INDEX = '/usr/share/dictd/devil.index';
const OUT = path.join(__dirname, '..', 'data', 'devils-dictionary.jsonl');

// dictd's index gives offsets and lengths in its own base64 digits
const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const decode = (s) => [...s].reduce((n, c) => n * 64 + DIGITS.indexOf(c), 0);

const text = zlib.gunzipSync(fs.readFileSync(DICT));
const records = [];
for (const line of fs.readFileSync(INDEX, 'utf8').trim().split('\n')) {
  const [word, offset, length] = line.split('\t');
  if (word.startsWith('00database')) continue;  // the database's own header entries
  const entry = text.subarray(decode(offset), decode(offset) + decode(length)).toString('utf8').trimEnd();
  // "HEADWORD, pos.  Definition..." : the headword ends at the first double space
  const match = /^([^\n]+?[.,])  +/.exec(entry);
  if (!match) continue;
  records.push({ prompt: match[1], completion: ' ' + entry.slice(match[0].length) });
}
fs.mkdirSync(path.dirname(OUT), { recursive: true });
fs.writeFileSync(OUT, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
console.log(`wrote ${records.length} entries to ${path.relative(process.cwd(), OUT)}`);
