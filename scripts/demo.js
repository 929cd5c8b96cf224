#!/usr/bin/env node
// `npm run demo`: the whole main job on a throwaway local server. Brings up a
// sandbox (a real Debian host in its own namespaces), runs setup-node on it,
// deploys examples/flask-hello, and prints the URL to open.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'bin', 'kraftwerk.js');
const name = process.env.KRAFTWERK_DEMO_SANDBOX || 'demo';
const example = path.join(root, 'examples', 'flask-hello');
const domain = 'flask-hello.test';

function fail(message) {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(2);
}

if (process.platform !== 'linux' || process.getuid?.() !== 0) {
  fail('sandbox servers need Linux and root (network namespaces, chroot). Run: sudo npm run demo');
}

// System tools the sandbox needs; installed from the Debian archive when missing.
const tools = { debootstrap: 'debootstrap', rsync: 'rsync', ssh: 'openssh-client', ip: 'iproute2', unshare: 'util-linux' };
const missing = Object.entries(tools)
  .filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0)
  .map(([, pkg]) => pkg);
if (missing.length) {
  process.stdout.write(`demo: installing ${missing.join(' ')}\n`);
  execFileSync('sh', ['-c', `apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${missing.join(' ')}`], {
    stdio: 'inherit',
  });
}
if (!existsSync(path.join(root, 'dist', 'core', 'cli', 'main.js'))) {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}

function kraftwerk(args, cwd = root) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, stdio: 'inherit' });
  if (r.status !== 0) fail(`kraftwerk ${args.join(' ')} failed (exit ${r.status})`);
}

kraftwerk(['sandbox', 'up', name]);
kraftwerk(['setup-node', name], example);
kraftwerk(['deploy', name], example);

// The site answers on its domain (nginx picks the site by Host header): make the
// names resolve to the sandbox on this machine until `sandbox down` removes them.
kraftwerk(['sandbox', 'hosts', name, domain, `www.${domain}`]);
process.stdout.write(`\nOpen http://${domain}/\n`);
process.stdout.write(`Then try: cd examples/flask-hello && npx kraftwerk deploy ${name}   (a second deploy, no change)\n`);
process.stdout.write(`Clean up: npx kraftwerk sandbox down ${name}\n`);
