import test from 'ava';
import { LAUNCHER, launch, linesWith, start, worker } from './helpers';

const ENV = worker('env');

test('workers get the torchrun environment and a token; every output line carries its rank', async (t) => {
  const r = await launch(2, ENV, ['--flag', 'x']).done;
  t.is(r.code, 0, r.stderr);
  const port = /MASTER_PORT=(\d+)/.exec(r.stdout)![1];
  t.not(port, '0');
  for (const rank of [0, 1]) {
    t.true(r.stdout.includes(`[rank ${rank}] RANK=${rank} WORLD_SIZE=2 LOCAL_RANK=${rank} LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=${port} IGNIS_STORE_HOSTED=1\n`), r.stdout);
    t.true(r.stdout.includes(`[rank ${rank}] token 64 args --flag,x\n`), r.stdout); // script args pass through
    t.true(r.stdout.includes(`[rank ${rank}] no newline\n`));
    t.true(r.stderr.includes(`[rank ${rank}] to stderr\n`));
  }
  t.is(linesWith(r.stdout, /^\[rank \d\] /).length, linesWith(r.stdout, /./).length);
});

test('a node of a multi-node job: global ranks, the given store address, the shared token', async (t) => {
  const r = await start([LAUNCHER, '--nproc-per-node=2', '--nnodes', '2', '--node-rank', '1', '--master-addr', 'localhost', '--master-port', '29999', ENV], {
    IGNIS_STORE_TOKEN: 'shared-secret',
  }).done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /\[rank 2\] RANK=2 WORLD_SIZE=4 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 MASTER_ADDR=localhost MASTER_PORT=29999/);
  t.regex(r.stdout, /\[rank 3\] RANK=3 WORLD_SIZE=4 LOCAL_RANK=1/);
  t.regex(r.stdout, /\[rank 3\] token 13 /);
});

test('bad command lines exit with 2 and the usage', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--nproc-per-node', '0', ENV], /--nproc-per-node must be an integer in \[1, 4096\], got '0'/],
    [['--nproc-per-node', '2'], /missing the script/],
    [['--bogus', ENV], /Unknown option '--bogus'/],
    [['--nnodes', '2', '--node-rank', '2', ENV], /--node-rank must be an integer in \[0, 1\]/],
    [['--nnodes', '2', '--master-port', '0', ENV], /free port\) works on one node only/],
  ];
  for (const [args, message] of cases) {
    const r = await start([LAUNCHER, ...args], { IGNIS_STORE_TOKEN: 's' }).done;
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, message);
    t.regex(r.stderr, /usage: launch/);
  }
  const noToken = await start([LAUNCHER, '--nnodes', '2', ENV], { IGNIS_STORE_TOKEN: '' }).done;
  t.is(noToken.code, 2);
  t.regex(noToken.stderr, /set IGNIS_STORE_TOKEN/);
  const help = await start([LAUNCHER, '--help']).done;
  t.is(help.code, 0);
  t.regex(help.stdout, /--nproc-per-node N/);
});
