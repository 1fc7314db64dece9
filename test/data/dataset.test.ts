/**
 * Datasets: JSONL and text files to records, records to examples (packing, prompt masking,
 * cutting), the seeded split and order, batches; malformed files give ERR_IO with line numbers.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IGNORE_INDEX, collate, readRecords, shuffled, splitExamples, tokenizeRecords } from '../../lib/data/dataset';
import { Tokenizer } from '../../lib/data/tokenizer';
import { assertCode } from '../helpers';

const tok = Tokenizer.byteLevel();

function withFile(name: string, content: string, fn: (file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-data-'));
  try {
    fs.writeFileSync(path.join(dir, name), content);
    fn(path.join(dir, name));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('JSONL records of both kinds and plain text are read', (t) => {
  withFile('a.jsonl', '{"text": "one"}\n{"text": "two"}\n', (f) => t.deepEqual(readRecords(f), [{ text: 'one' }, { text: 'two' }]));
  withFile('b.jsonl', '{"prompt": "Q: ", "completion": "A"}', (f) => t.deepEqual(readRecords(f), [{ prompt: 'Q: ', completion: 'A' }]));
  withFile('c.txt', 'plain\ntext\n', (f) => t.deepEqual(readRecords(f), [{ text: 'plain\ntext\n' }]));
});

test('malformed data files name the file and line', (t) => {
  const bad: [string, RegExp][] = [
    ['{"text": "a"}\n\n{"text": "b"}\n', /:2: empty line/],
    ['{"text": "a"}\n{"text": \n', /:2: not valid JSON/],
    ['{"text": 3}\n', /:1: "text" must be a string/],
    ['{"text": ""}\n', /:1: "text" is empty/],
    ['{"prompt": "a"}\n', /:1: expected \{"text"/],
    ['{"text": "a", "prompt": "b", "completion": "c"}\n', /:1: expected/],
    ['{"text": "a"}\n{"prompt": "b", "completion": "c"}\n', /:2: a \{"prompt"\} record in a dataset of \{"text"\}/],
    ['[1]\n', /:1: expected/],
    ['', /is empty/],
  ];
  for (const [content, message] of bad) withFile('d.jsonl', content, (f) => assertCode(t, () => readRecords(f), 'ERR_IO', message));
  withFile('e.txt', '  \n', (f) => assertCode(t, () => readRecords(f), 'ERR_IO', /is empty/));
  assertCode(t, () => readRecords('/nonexistent/data.jsonl'), 'ERR_IO', /no such file/);
});

test('text records are packed into full blocks with BOS and EOS between documents', (t) => {
  const records = [{ text: 'abcdef' }, { text: 'ghij' }];
  const examples = tokenizeRecords(records, tok, { seqLen: 4 });
  const stream = [256, ...Buffer.from('abcdef'), 257, 256, ...Buffer.from('ghij'), 257];
  t.is(examples.length, Math.floor(stream.length / 4));
  examples.forEach((e, b) => {
    t.deepEqual(e.inputIds, stream.slice(b * 4, b * 4 + 4));
    t.deepEqual(e.labels, e.inputIds);
  });
  // a stream shorter than one block is one short example
  t.deepEqual(tokenizeRecords([{ text: 'a' }], tok, { seqLen: 8 })[0].inputIds, [256, 97, 257]);
});

test('prompt tokens are masked out of the labels, and long examples are cut', (t) => {
  const [e] = tokenizeRecords([{ prompt: 'Q', completion: 'AB' }], tok, { seqLen: 16 });
  t.deepEqual(e.inputIds, [256, 81, 65, 66, 257]);
  t.deepEqual(e.labels, [IGNORE_INDEX, IGNORE_INDEX, 65, 66, 257]);
  const [cut] = tokenizeRecords([{ prompt: 'Q', completion: 'ABCDEFGH' }], tok, { seqLen: 4 });
  t.deepEqual(cut.inputIds, [256, 81, 65, 66]);
  assertCode(t, () => tokenizeRecords([{ prompt: 'QQQQ', completion: 'A' }], tok, { seqLen: 4 }), 'ERR_ARG', /record 1's prompt/);
  assertCode(t, () => tokenizeRecords([], tok, { seqLen: 1 }), 'ERR_ARG');
});

test('the split and the order are fixed by the seed and cover every example once', (t) => {
  const order = shuffled(50, 7);
  t.deepEqual(order, shuffled(50, 7));
  t.notDeepEqual(order, shuffled(50, 8));
  t.deepEqual(order.slice().sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  const examples = Array.from({ length: 20 }, (_, i) => ({ inputIds: [i], labels: [i] }));
  const { train, heldOut } = splitExamples(examples, 0.1, 1);
  t.is(heldOut.length, 2);
  t.is(train.length, 18);
  t.deepEqual([...train, ...heldOut].map((e) => e.inputIds[0]).sort((a, b) => a - b), examples.map((e) => e.inputIds[0]));
  t.is(splitExamples(examples.slice(0, 2), 0.01, 0).heldOut.length, 1);
  assertCode(t, () => splitExamples(examples, 1, 0), 'ERR_ARG');
});

test('collate pads on the right with ignored labels and counts the learned tokens', (t) => {
  const batch = collate([
    { inputIds: [1, 2, 3], labels: [IGNORE_INDEX, 2, 3] },
    { inputIds: [4], labels: [4] },
  ], 9);
  try {
    t.deepEqual(batch.inputIds.shape, [2, 3]);
    t.is(batch.inputIds.dtype, 'int64');
    t.deepEqual(batch.inputIds.toArray(), [[1, 2, 3], [4, 9, 9]]);
    t.deepEqual(batch.labels.toArray(), [[IGNORE_INDEX, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]);
    t.is(batch.tokens, 2);  // the first position is never a target after the shift
  } finally {
    batch.inputIds.dispose();
    batch.labels.dispose();
  }
  assertCode(t, () => collate([], 0), 'ERR_ARG');
  const fixed = collate([{ inputIds: [1, 2], labels: [1, 2] }], 9, { rows: 2, length: 4 });
  try {
    t.deepEqual(fixed.inputIds.toArray(), [[1, 2, 9, 9], [9, 9, 9, 9]], 'padded to the shape asked for');
    t.deepEqual(fixed.labels.toArray(), [[1, 2, IGNORE_INDEX, IGNORE_INDEX], Array(4).fill(IGNORE_INDEX)]);
    t.is(fixed.tokens, 1);
  } finally {
    fixed.inputIds.dispose();
    fixed.labels.dispose();
  }
  assertCode(t, () => collate([{ inputIds: [1, 2, 3], labels: [1, 2, 3] }], 0, { rows: 1, length: 2 }), 'ERR_ARG', /do not fit in 1 x 2/);
  assertCode(t, () => collate([{ inputIds: [1], labels: [1] }, { inputIds: [1], labels: [1] }], 0, { rows: 1, length: 2 }), 'ERR_ARG', /2 examples/);
});
