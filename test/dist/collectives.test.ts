import test from 'ava';
import { launch, worker } from './helpers';

// Every collective, dtype and size (0, 1, a thousand elements, a few MB) on 1 to 4 ranks, each
// checked by the workers against what they compute from every rank's values (workers/collectives.ts).
for (const n of [1, 2, 3, 4]) {
  test.serial(`every collective on ${n} rank${n > 1 ? 's' : ''}`, async (t) => {
    const r = await launch(n, worker('collectives')).done;
    t.is(r.code, 0, r.stderr);
    const ok = r.stdout.split('\n').filter((l) => /^\[rank \d+\] ok \d+$/.test(l));
    t.is(ok.length, n, r.stdout);
    for (const line of ok) t.true(Number(line.split(' ').pop()) > 280, line);
  });
}
