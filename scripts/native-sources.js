#!/usr/bin/env node
// The one list of native sources, read by both builds: binding.gyp (node-gyp) and
// CMakeLists.txt (cmake-js). `--cuda` lists the CUDA backend's sources instead (native/cuda:
// .cu files for nvcc, .cc files for the C++ compiler), which only the CMake build compiles.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const cpuFolders = ['native/core', 'native/cpu', 'native/dist', 'native/napi'];

function list(folders, exts) {
  const files = [];
  for (const folder of folders) {
    const dir = path.join(root, folder);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      if (exts.some((ext) => name.endsWith(ext))) files.push(`${folder}/${name}`);
    }
  }
  return files;
}

const cuda = process.argv.includes('--cuda');
const files = cuda ? list(['native/cuda'], ['.cu', '.cc']) : list(cpuFolders, ['.cc']);
// gyp splits on whitespace; CMake reads one path per line.
process.stdout.write(files.join(process.argv.includes('--lines') ? '\n' : ' ') + '\n');
