/**
 * `--verbose` prints every remote command as it runs, secrets masked (issue 17),
 * through the connection the kit opens: checked against a real sshd.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreKit } from '../../core/cli/kit.ts';
import type { BuiltinPlugins } from '../../core/engine/registry.ts';
import type { Remote } from '../../core/remote/remote.ts';
import { secret, sh } from '../../core/shell/sh.ts';
import { sshdUnavailable, startSshd, type TestSshd } from '../helpers/sshd.ts';

const unavailable = sshdUnavailable();

describe('--verbose over SSH', { skip: unavailable }, () => {
  let sshd: TestSshd;
  let work: string;
  let remote: Remote;
  let kit: CoreKit;
  const printed: string[] = [];
  const write = process.stderr.write.bind(process.stderr);

  before(async () => {
    sshd = await startSshd();
    work = mkdtempSync(join(tmpdir(), 'kw-verbose-'));
    writeFileSync(join(work, 'known_hosts'), `${sshd.knownHostsLine}\n`);
    kit = new CoreKit(() => ({ dryRun: false, verbose: true, quiet: false, acceptNewHostKey: false }), {} as BuiltinPlugins, work);
    process.stderr.write = ((chunk: string | Uint8Array) => (printed.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      remote = await kit.connect(sshd.target({ knownHostsFiles: [join(work, 'known_hosts')] }));
    } finally {
      process.stderr.write = write;
    }
  });

  after(async () => {
    await kit?.close();
    await sshd?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('prints each command before it runs, with a secret as *** and its value masked anywhere in the line', async () => {
    process.stderr.write = ((chunk: string | Uint8Array) => (printed.push(String(chunk)), true)) as typeof process.stderr.write;
    let out: string;
    try {
      out = (await remote.exec(sh`printf %s ${secret('pw-over-ssh-1234')}`)).stdout;
      await remote.exec(sh`true ${'known pw-over-ssh-1234'}`);
      await remote.syncFiles([{ path: join(work, 'env'), content: 'KEY=pw-over-ssh-1234\n', mode: 0o600 }]);
    } finally {
      process.stderr.write = write;
    }
    assert.equal(out, 'pw-over-ssh-1234', 'the command ran with the value');
    const lines = printed.join('').split('\n').filter(Boolean);
    const name = sshd.target().name;
    assert.deepEqual(lines, [`[${name}] $ printf %s ***`, `[${name}] $ true 'known ***'`, `[${name}] $ write files: ${join(work, 'env')}`]);
  });
});
