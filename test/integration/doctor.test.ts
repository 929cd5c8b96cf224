/**
 * `kraftwerk doctor`'s node checks against a real OpenSSH sshd on 127.0.0.1 (this machine as
 * the "node", read-only): a host not in known_hosts is a ✖ and nothing is connected or
 * recorded, also with --accept-new-host-key; once its key is known, doctor logs in and
 * judges the node (here not set up for Kraftwerk, unless this machine is).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { doctorCommand } from '../../core/cli/actions/doctor.ts';
import { CoreKit, type GlobalOptions } from '../../core/cli/kit.ts';
import type { DoctorResult } from '../../core/engine/doctor.ts';
import { NODE_MARKER } from '../../core/lifecycle/probe.ts';
import type { SshTarget } from '../../core/remote/remote.ts';
import { stackPlugins } from '../../plugins/builtins.ts';
import { sshdUnavailable, startSshd, type TestSshd } from '../helpers/sshd.ts';

const unavailable = sshdUnavailable();

/** The kit of the CLI, with the test's sshd as the node `local`. */
class LocalKit extends CoreKit {
  constructor(
    private readonly node: SshTarget,
    cwd: string,
    acceptNewHostKey = false,
  ) {
    super(() => ({ dryRun: false, verbose: false, quiet: false, acceptNewHostKey }) satisfies GlobalOptions, { ...stackPlugins, commands: [] }, cwd);
  }
  override async resolveNode(): Promise<SshTarget> {
    return this.node;
  }
}

/** Run doctor --json and return what it printed and its exit code. */
async function doctor(kit: CoreKit): Promise<{ results: DoctorResult[]; code: number }> {
  const write = process.stdout.write;
  let out = '';
  // Only doctor's text: the test runner reports through the same stream, in binary.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    if (typeof chunk !== 'string') return write.call(process.stdout, chunk, ...rest);
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  const exitCode = process.exitCode;
  try {
    await doctorCommand(kit, 'local', { json: true });
    return { results: JSON.parse(out) as DoctorResult[], code: Number(process.exitCode) };
  } finally {
    process.stdout.write = write;
    process.exitCode = exitCode;
    await kit.close();
  }
}

describe('doctor against a real sshd', { skip: unavailable }, () => {
  let sshd: TestSshd;
  let work: string;
  before(async () => {
    sshd = await startSshd();
    work = mkdtempSync(join(tmpdir(), 'kw-doctor-'));
  });
  after(async () => {
    await sshd?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('a host not in known_hosts: ✖ with the hint, no login, nothing recorded (also with --accept-new-host-key)', async () => {
    const known = join(work, 'known_hosts_unknown');
    const { results, code } = await doctor(new LocalKit(sshd.target({ knownHostsFiles: [known] }), work, true));
    assert.equal(code, 1);
    const line = results.find((r) => r.check === 'known_hosts');
    assert.equal(line?.ok, false, JSON.stringify(results, null, 2));
    assert.match(line!.hint!, /--accept-new-host-key/);
    assert.ok(!results.some((r) => r.check === 'login'), 'no login to a host doctor does not know');
    assert.equal(existsSync(known) ? readFileSync(known, 'utf8') : '', '', 'no host key recorded');
  });

  it('a known host: logs in, and judges the node it finds', async () => {
    const known = join(work, 'known_hosts_known');
    writeFileSync(known, `${sshd.knownHostsLine}\n`);
    const { results, code } = await doctor(new LocalKit(sshd.target({ knownHostsFiles: [known] }), work));
    const by = (check: string) => results.filter((r) => r.check === check && r.node === 'local');
    assert.equal(by('known_hosts')[0]?.level, 'ok', JSON.stringify(results, null, 2));
    assert.equal(by('login')[0]?.level, 'ok', JSON.stringify(results, null, 2));
    assert.match(by('login')[0]!.detail, /^root@127\.0\.0\.1:\d+$/);
    assert.equal(by('clock')[0]?.level === 'error', false, 'the same clock on both ends');
    assert.ok(by('disk').length >= 1, 'the filesystem of /var at least');
    const setUp = by('setup-node')[0]!;
    if (!existsSync(NODE_MARKER)) {
      assert.equal(setUp.level, 'error');
      assert.equal(setUp.hint, 'Run: kraftwerk setup-node local');
      assert.equal(code, 1);
    }
    assert.equal(code, results.every((r) => r.ok) ? 0 : 1);
  });
});
