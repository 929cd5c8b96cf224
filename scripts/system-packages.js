#!/usr/bin/env node
// First step of `npm test`: the Debian packages in scripts/system-packages that are
// missing get installed (apt-get update first) when this runs as root on Debian,
// so `npm ci && npm test` is the whole set-up on a fresh machine, as `npm run demo`
// is. Elsewhere it prints one line saying what to run; the tests that need a missing
// package then skip with their reason. KRAFTWERK_TEST_NO_APT=1 turns the install off.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const listFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'system-packages');
const wanted = readFileSync(listFile, 'utf8')
  .split('\n')
  .map((line) => line.replace(/#.*/, '').trim())
  .filter(Boolean);

const isDebian = process.platform === 'linux' && spawnSync('sh', ['-c', 'command -v dpkg-query && command -v apt-get'], { stdio: 'ignore' }).status === 0;
if (!isDebian) {
  process.stdout.write(`test: not a Debian machine: install the equivalents of ${wanted.join(' ')} (tests that need them skip)\n`);
  process.exit(0);
}

// One dpkg-query for all of them; a package it does not know is simply not listed.
const status = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...wanted], { encoding: 'utf8' }).stdout ?? '';
const installed = new Set(status.split('\n').filter((l) => l.endsWith(' install ok installed')).map((l) => l.split(' ')[0]));
const missing = wanted.filter((pkg) => !installed.has(pkg));
if (!missing.length) process.exit(0);

const command = `apt-get update -q && apt-get install -y -q --no-install-recommends ${missing.join(' ')}`;
if (process.getuid?.() !== 0 || process.env.KRAFTWERK_TEST_NO_APT === '1') {
  process.stdout.write(`test: missing ${missing.join(' ')} (tests that need them skip); install them with: sudo sh -c '${command}'\n`);
  process.exit(0);
}
process.stdout.write(`test: installing ${missing.join(' ')}\n`);
execFileSync('sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
