/**
 * The run-time loader of cuBLAS, cuBLASLt and NCCL (native/cuda/loader.cc), in a build with the
 * CUDA backend: it needs no GPU. A folder named by IGNIS_CUDA_LIBS is looked in first; what is
 * not found is reported with every place looked.
 */
import test from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ig from '../../lib';

const built = ig.cuda.isBuilt();
if (!built) console.log('test/cuda/loader: skipped (this build has no CUDA backend)');
const cudaBuildTest = built ? test : test.skip;

// Set before the loader's first use, which is the first libraries() call in this process.
const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-libs-'));
for (const file of ['libcublasLt.so.13', 'libnccl.so.2']) fs.writeFileSync(path.join(folder, file), 'not a library');
process.env.IGNIS_CUDA_LIBS = `${folder}:/nonexistent/ignis`;
test.after.always(() => fs.rmSync(folder, { recursive: true, force: true }));

cudaBuildTest('every library is reported: loaded with its path and version, or why not with every place looked', (t) => {
  const libs = ig.cuda.libraries();
  t.deepEqual(libs.map((l) => l.name), ['cublasLt', 'cublas', 'nccl']);
  for (const lib of libs) {
    if (lib.loaded) {
      t.is(lib.error, '');
      t.false(lib.path.startsWith(folder), `${lib.name} did not come from the fake folder`);
      t.regex(lib.version, /^\d+\.\d+\.\d+$/);
      t.log(`${lib.name} ${lib.version} at ${lib.path}`);
      continue;
    }
    t.is(lib.path, '');
    t.regex(lib.error, /was not found\. Looked in IGNIS_CUDA_LIBS: /, lib.name);
    t.true(lib.error.includes(`IGNIS_CUDA_LIBS: ${folder}, /nonexistent/ignis`), `${lib.name}: the folders named, in order`);
    for (const place of ['Python wheels', 'CUDA toolkit: ', "the system's library path"]) t.true(lib.error.includes(place), `${lib.name}: ${place}`);
    t.regex(lib.error, /set IGNIS_CUDA_LIBS to the folder/);
  }
  const [cublasLt, cublas, nccl] = libs;
  t.regex(cublas.error + cublas.path, /libcublas\.so\.1[23]/);
  for (const lib of [cublasLt, nccl]) {
    if (!lib.loaded) t.regex(lib.error, new RegExp(`found ${folder}/lib\\w+\\.so\\.\\d+ but it did not load`), `${lib.name}: the broken file is named`);
  }
});
