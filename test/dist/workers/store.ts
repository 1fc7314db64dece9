/**
 * Store helpers run as separate processes by test/dist/store.test.ts:
 * - `serve <token>`: serves a store on a free port, prints `port <n>`, runs until killed;
 * - `add <port> <token> <id> <times>`: adds 1 to `counter` that many times, then sets `done/<id>`;
 * - `set-later <port> <token> <key> <ms>`: sets `key` after `ms` milliseconds.
 */
import { dist } from '../../../lib';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'serve') {
  const store = new dist.TCPStore({ port: 0, isServer: true, token: args[0] });
  console.log(`port ${store.port}`);
  setInterval(() => store, 1000); // until killed; the closure keeps the store (and its server) from being collected
} else if (mode === 'add') {
  const [port, token, id, times] = args;
  const store = new dist.TCPStore({ port: Number(port), token, timeoutMs: 10000 });
  for (let i = 0; i < Number(times); i++) store.add('counter', 1);
  store.set(`done/${id}`, id);
  store.close();
} else if (mode === 'set-later') {
  const [port, token, key, ms] = args;
  const store = new dist.TCPStore({ port: Number(port), token, timeoutMs: 10000 });
  setTimeout(() => {
    store.set(key, 'late');
    store.close();
  }, Number(ms));
}
