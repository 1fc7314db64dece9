import test from 'ava';
import * as net from 'net';
import { dist } from '../../lib';
import { assertCode } from '../helpers';
import { linesWith, start, worker } from './helpers';

const TOKEN = 'a-test-secret';

function server(): dist.TCPStore {
  return new dist.TCPStore({ port: 0, isServer: true, token: TOKEN, timeoutMs: 5000 });
}

function client(port: number, token = TOKEN): dist.TCPStore {
  return new dist.TCPStore({ port, token, timeoutMs: 5000 });
}

// A raw frame of the store's wire format: u32 length, then the body.
function frame(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(body.length);
  return Buffer.concat([head, body]);
}
function str(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from(Uint32Array.of(b.length).buffer), b]);
}

async function rawClient(port: number, bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(bytes, () => {
        s.destroy();
        resolve();
      });
    });
    s.on('error', reject);
  });
}

test('set, get, add, check, wait and deleteKey', (t) => {
  const s = server();
  const c = client(s.port);
  s.set('text', 'hello');
  t.is(c.get('text').toString(), 'hello');
  const bytes = Uint8Array.of(0, 255, 0, 7);
  c.set('bytes', bytes);
  t.deepEqual([...s.get('bytes')], [...bytes]);
  t.is(c.add('n', 5), 5);
  t.is(s.add('n', -7), -2);
  t.is(c.get('n').toString(), '-2');
  t.true(c.check(['text', 'n']));
  t.false(c.check(['text', 'missing']));
  c.wait(['text', 'bytes']);
  t.true(c.deleteKey('text'));
  t.false(c.deleteKey('text'));
  t.false(s.check(['text']));
  c.close();
  s.close();
});

test('get and wait time out with ERR_TIMEOUT naming the missing keys', (t) => {
  const s = server();
  s.set('here', '1');
  const t0 = Date.now();
  assertCode(t, () => s.wait(['here', 'gone/1', 'gone/2'], { timeoutMs: 200 }), 'ERR_TIMEOUT', /gone\/1, gone\/2/);
  t.true(Date.now() - t0 >= 190);
  assertCode(t, () => s.get('nothing', { timeoutMs: 100 }), 'ERR_TIMEOUT', /key nothing/);
  s.close();
});

test('a wait returns when another process sets the key', async (t) => {
  const s = server();
  const other = start([worker('store'), 'set-later', String(s.port), TOKEN, 'late/key', '300']);
  const t0 = Date.now();
  s.wait(['late/key'], { timeoutMs: 10000 });
  t.true(Date.now() - t0 >= 250);
  t.is(s.get('late/key').toString(), 'late');
  t.is((await other.done).code, 0);
  s.close();
});

test('many clients at once: every add is counted', async (t) => {
  const s = server();
  const procs = Array.from({ length: 8 }, (_, i) => start([worker('store'), 'add', String(s.port), TOKEN, String(i), '50']));
  const results = await Promise.all(procs.map((p) => p.done));
  for (const r of results) t.is(r.code, 0, r.stderr);
  s.wait(Array.from({ length: 8 }, (_, i) => `done/${i}`), { timeoutMs: 1000 });
  t.is(s.get('counter').toString(), '400');
  s.close();
});

test('clients that die mid-message, send garbage or oversized frames do not harm the server', async (t) => {
  const s = server();
  const hello = frame(Buffer.concat([Buffer.of(0), str(TOKEN), str('')]));
  const partialSet = frame(Buffer.concat([Buffer.of(1), str('key'), str('value')])).subarray(0, 9);
  await rawClient(s.port, Buffer.concat([hello, partialSet])); // authenticated, dies mid-frame
  await rawClient(s.port, partialSet); // never authenticated, dies mid-frame
  await rawClient(s.port, Buffer.from('GET / HTTP/1.1\r\n\r\n')); // garbage
  await rawClient(s.port, Buffer.concat([hello, Buffer.from([0xff, 0xff, 0xff, 0x7f, 9])])); // 2 GB frame
  await rawClient(s.port, Buffer.concat([hello, frame(Buffer.of(99))])); // unknown op
  const c = client(s.port);
  c.set('still', 'works');
  t.is(s.get('still').toString(), 'works');
  t.false(s.check(['key']));
  c.close();
  s.close();
});

test('a client with a wrong token is refused (ERR_DIST), and the server logs it once', async (t) => {
  const served = start([worker('store'), 'serve', TOKEN]);
  while (!/port \d+/.test(served.stdout())) await new Promise((r) => setTimeout(r, 20));
  const port = Number(/port (\d+)/.exec(served.stdout())![1]);
  assertCode(t, () => client(port, 'not-the-token'), 'ERR_DIST', /refused this client: wrong token/);
  assertCode(t, () => client(port, ''), 'ERR_DIST', /wrong token/);
  const good = client(port);
  good.set('k', 'v');
  t.is(good.get('k').toString(), 'v');
  good.close();
  served.child.kill('SIGTERM');
  const r = await served.done;
  const refusals = linesWith(r.stderr, /refused a connection from 127\.0\.0\.1:\d+: wrong token/);
  t.is(refusals.length, 1, r.stderr); // the second one within the same second is counted, not printed
});

test('a lost server gives ERR_DIST; a missing one ERR_TIMEOUT after the timeout', (t) => {
  const s = server();
  const c = client(s.port);
  const port = s.port;
  s.close();
  assertCode(t, () => c.set('k', 'v'), 'ERR_DIST', /closed the connection|lost the connection|could not connect/);
  c.close();
  const t0 = Date.now();
  assertCode(t, () => new dist.TCPStore({ port, token: TOKEN, timeoutMs: 300 }), 'ERR_TIMEOUT', /could not connect/);
  t.true(Date.now() - t0 >= 290);
});

test('bad arguments are ERR_ARG', (t) => {
  const s = server();
  assertCode(t, () => new dist.TCPStore({ port: 70000 }), 'ERR_ARG', /port/);
  assertCode(t, () => new dist.TCPStore({ port: 0 }), 'ERR_ARG', /port/);
  assertCode(t, () => new dist.TCPStore({ port: s.port, timeoutMs: -1 }), 'ERR_ARG', /timeoutMs/);
  assertCode(t, () => s.set(3 as unknown as string, 'v'), 'ERR_ARG', /key/);
  assertCode(t, () => s.set('k', 3 as unknown as string), 'ERR_ARG', /value/);
  assertCode(t, () => s.add('k', 1.5), 'ERR_ARG', /delta/);
  assertCode(t, () => s.wait('k' as unknown as string[]), 'ERR_ARG', /keys/);
  assertCode(t, () => s.get('k', { timeoutMs: NaN }), 'ERR_ARG', /timeoutMs/);
  s.close();
  assertCode(t, () => s.get('k'), 'ERR_DIST', /closed/);
});
