// The deploy's orchestration, without a server (issue 14): the real `deployCommand` runs for a
// temp project with every connection replaced by a recording Remote that answers like a node
// would. The answers are chosen by what a script does (its behaviour markers: `---locked---`,
// `kraftwerk: switched`, the health check's curl, the undo's refusal line), not by which file
// builds it, so the test holds while the code moves between files.
//   (i)   a group deploy whose second node fails its health check rolls the first back too;
//   (ii)  a deploy that fails before the switch undoes its release (the folder goes) and never switches;
//   (iii) a single-node deploy releases its lock with its last command (no unlock round trip);
//   (iv)  --dry-run changes nothing (no connection, no rsync) and prints the commands;
//   (v)   the code goes to the node through the Remote too (one executor: rsync is a Remote operation).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deployCommand } from '../../core/cli/actions/deploy.ts';
import { CoreKit, type GlobalOptions } from '../../core/cli/kit.ts';
import type { ExecOptions, ExecResult, Remote, RemoteFile, SshTarget } from '../../core/remote/remote.ts';
import type { Script } from '../../core/shell/sh.ts';
import { stackPlugins } from '../../plugins/builtins.ts';
import { tempProject } from '../helpers/cli.ts';
import { builtinTable } from '../helpers/config.ts';

const SITE = 'orch';
const LIVE = '20200101T000000Z';
const LOCK_DIR = `/run/kraftwerk/locks/${SITE}`;

/** One thing the deploy did on a node. */
interface Effect {
  node: string;
  /** `exec`, `syncFiles`, or the name of any other Remote operation. */
  op: string;
  text: string;
}

/** A node as the deploy sees it: its live release, its lock, whether its site answers. */
class FakeNode {
  current: string | undefined = LIVE;
  lockToken: string | undefined;
  /** The new release does not answer its health check here (the live one does). */
  newReleaseBroken = false;
  /** A script containing this text fails (exit 1): a release command, say. */
  failOn?: string;
  removed: string[] = [];
  switches: string[] = [];

  constructor(readonly name: string) {}

  /** The node's answer to one script; the markers are those of core's lifecycle scripts. */
  answer(text: string): ExecResult {
    const out: string[] = [];
    let code = 0;
    if (this.failOn && text.includes(this.failOn)) return { code: 1, stdout: '', stderr: `${this.failOn}: failed` };
    // What the live release left: its record and its saved configuration (rollback reads them).
    const saved = new RegExp(`^cat /srv/${SITE}/\\.kraftwerk/releases/(\\d{8}T\\d{6}Z)(\\.files)?\\.json$`).exec(text);
    if (saved) {
      if (saved[1] !== LIVE) return { code: 1, stdout: '', stderr: 'No such file or directory' };
      return { code: 0, stdout: saved[2] ? '[]\n' : `${JSON.stringify({ id: LIVE, venv: `/srv/${SITE}/venvs/0123456789abcdef`, status: 'live' })}\n`, stderr: '' };
    }
    if (text.includes('echo ---locked---')) {
      const token = /"token":"([0-9a-f]+)"/.exec(text)?.[1];
      if (this.lockToken && this.lockToken !== token) return { code: 3, stdout: `held {"who":"someone","token":"${this.lockToken}"}\n`, stderr: '' };
      this.lockToken = token;
      return { code: 0, stdout: `acquired\n---locked---\nsetup=1\npython=3.11.2\ncurrent=${this.current ?? ''}\n---env---\n---envlocal---\n`, stderr: '' };
    }
    if (/grep -q [0-9a-f]+ \S+\/info 2>\/dev\/null && touch/.test(text)) {
      // The heartbeat.
      return { code: text.includes(this.lockToken ?? '-') ? 0 : 1, stdout: '', stderr: '' };
    }
    if (text.includes('nothing undone')) {
      // The undo of an unswitched release: only with our lock; the folder goes unless it is live.
      if (!this.lockToken || !text.includes(this.lockToken)) return { code: 1, stdout: '', stderr: 'kraftwerk: the deploy lock is not ours: nothing undone' };
      const rel = new RegExp(`rm -rf -- /srv/${SITE}/releases/(\\d{8}T\\d{6}Z)`).exec(text)?.[1];
      if (rel && rel !== this.current) {
        this.removed.push(rel);
        out.push('removed');
      }
    }
    if (text.includes('kraftwerk: switched')) {
      const to = /ln -sn releases\/(\S+) /.exec(text)?.[1];
      assert.ok(to, `a switch script without its target: ${text}`);
      this.current = to;
      this.switches.push(to);
      out.push('kraftwerk: switched');
    }
    if (text.includes("-w '%{http_code}'")) {
      const broken = this.newReleaseBroken && this.current !== LIVE;
      out.push(broken ? '500' : '200');
      if (broken) code = 1;
    }
    if (text.includes('sv once "$svc"')) out.push('kraftwerk: blue answers 200');
    // Releasing the lock, alone or appended to the release record's script.
    const unlock = new RegExp(`if grep -q ([0-9a-f]+) ${LOCK_DIR}/info 2>/dev/null; then rm -rf ${LOCK_DIR}; fi`).exec(text);
    if (unlock && unlock[1] === this.lockToken) this.lockToken = undefined;
    return { code, stdout: out.length ? `${out.join('\n')}\n` : '', stderr: code ? 'failed' : '' };
  }
}

/**
 * A Remote that records every operation with its script text and lets a FakeNode answer.
 * Operations it does not know (one the Remote interface may gain) are recorded by name and
 * succeed with an empty result.
 */
function recordingRemote(target: SshTarget, node: FakeNode, effects: Effect[]): Remote {
  let count = 0;
  const known: Pick<Remote, 'target' | 'dryRun' | 'commandCount' | 'exec' | 'syncFiles' | 'rsync' | 'close'> = {
    target,
    dryRun: false,
    get commandCount() {
      return count;
    },
    async exec(cmd: Script, options: ExecOptions = {}): Promise<ExecResult> {
      count++;
      effects.push({ node: node.name, op: 'exec', text: cmd.text });
      const res = node.answer(cmd.text);
      if (res.code !== 0 && options.check !== false) throw Object.assign(new Error(`command failed on ${node.name} (exit ${res.code}): ${res.stderr}`), res);
      return res;
    },
    async syncFiles(files: RemoteFile[]): Promise<string[]> {
      count++;
      effects.push({ node: node.name, op: 'syncFiles', text: files.map((f) => `${f.remove ? 'remove' : 'write'} ${f.path}`).join('\n') });
      return files.map((f) => f.path);
    },
    async rsync(spec: unknown) {
      count++;
      effects.push({ node: node.name, op: 'rsync', text: JSON.stringify(spec) });
      return { bytesSent: 1, bytesReceived: 0, filesTransferred: 1 };
    },
    async close() {},
  };
  return new Proxy(known as Remote, {
    get(t, prop, receiver) {
      if (prop in t || typeof prop === 'symbol' || prop === 'then') return Reflect.get(t, prop, receiver);
      return async (...args: unknown[]) => {
        count++;
        effects.push({ node: node.name, op: String(prop), text: JSON.stringify(args) });
        return { code: 0, stdout: '', stderr: '', bytesSent: 0, bytesReceived: 0, filesTransferred: 0 };
      };
    },
  });
}

/** Core's kit with its connections replaced by recording ones (a dry run keeps core's own dry-run Remote). */
class RecordingKit extends CoreKit {
  readonly effects: Effect[] = [];
  connected: string[] = [];
  constructor(
    globals: GlobalOptions,
    cwd: string,
    readonly nodes: Map<string, FakeNode>,
  ) {
    // The stack's built-ins, as the CLI wiring hands them over (the tools' node names are not needed here).
    super(() => globals, { ...stackPlugins, commands: [] }, cwd);
  }
  override async connect(target: SshTarget): Promise<Remote> {
    if (this.options().dryRun) return super.connect(target);
    this.connected.push(target.name);
    const node = this.nodes.get(target.name);
    assert.ok(node, `the deploy connected to ${target.name}, which the test did not set up`);
    return recordingRemote(target, node, this.effects);
  }
}

const app = { 'app.py': 'def application(environ, start_response):\n    start_response("200 OK", [])\n    return [b"hi"]\n', 'requirements.txt': '' };
const quiet: GlobalOptions = { dryRun: false, verbose: false, quiet: true, acceptNewHostKey: false, yes: true };

function project(extra = ''): string {
  return tempProject({
    ...app,
    'kraftwerk.yaml': `domain: orch.example.com\npackage: ${SITE}\nwsgi: app\nnodes:\n  web1: web1.example.invalid\n  web2: web2.example.invalid\n  web: [web1, web2]\n${extra}`,
  });
}

function nodes(...names: string[]): Map<string, FakeNode> {
  return new Map(names.map((n) => [n, new FakeNode(n)]));
}

const execs = (kit: RecordingKit, node?: string) => kit.effects.filter((e) => e.op === 'exec' && (!node || e.node === node) && !/&& touch \S+\/info$/.test(e.text));
const isUnlock = (text: string) => text.includes(`then rm -rf ${LOCK_DIR}; fi`);

// rsync is a Remote operation; a stand-in rsync on PATH records any rsync spawned beside the
// Remote (none should be), so no transfer is ever tried from a test.
let shimDir: string;
let rsyncLog: string;
const savedPath = process.env.PATH;
before(() => {
  shimDir = mkdtempSync(path.join(tmpdir(), 'kw-orch-'));
  rsyncLog = path.join(shimDir, 'rsync.log');
  writeFileSync(path.join(shimDir, 'rsync'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${rsyncLog}\necho 'Total bytes sent: 1'\n`);
  chmodSync(path.join(shimDir, 'rsync'), 0o755);
  process.env.PATH = `${shimDir}${path.delimiter}${savedPath}`;
});
after(() => {
  process.env.PATH = savedPath;
  rmSync(shimDir, { recursive: true, force: true });
});

describe('deploy orchestration through a recording Remote', () => {
  it('(i) a group deploy whose second node fails its health check rolls back the first node too', async () => {
    const fake = nodes('web1', 'web2');
    fake.get('web2')!.newReleaseBroken = true;
    const kit = new RecordingKit(quiet, project(), fake);
    await assert.rejects(deployCommand(kit, 'web', {}), (err: Error & { hint?: string }) => {
      assert.match(err.message, /failed on web2\b/);
      assert.match(err.message, /health check failed/);
      assert.match(err.hint ?? '', /Rolled back: .*web1 → 20200101T000000Z/);
      return true;
    });
    const web1 = fake.get('web1')!;
    const web2 = fake.get('web2')!;
    // web1 went live with the new release (its own health check passed), then back.
    assert.equal(web1.switches.length, 2, `web1 switches: ${web1.switches.join(', ')}`);
    assert.notEqual(web1.switches[0], LIVE);
    assert.equal(web1.switches[1], LIVE);
    assert.equal(web1.current, LIVE, 'web1 serves the previous release again');
    assert.equal(web2.current, LIVE, 'web2 serves the previous release again');
    // The failed release is no good one on either node: its record goes, so rollback never picks it.
    const failed = web1.switches[0]!;
    for (const n of ['web1', 'web2']) {
      assert.ok(execs(kit, n).some((e) => e.text.includes(`rm -f /srv/${SITE}/.kraftwerk/releases/${failed}.json`)), `${n}: the failed release's record is removed`);
      assert.equal(fake.get(n)!.lockToken, undefined, `${n}: the lock is released`);
    }
  });

  it('(ii) a deploy that fails before the switch undoes its release (the folder goes) and never switches', async () => {
    const fake = nodes('web1');
    const node = fake.get('web1')!;
    node.failOn = './migrate --check';
    const kit = new RecordingKit(quiet, project('release:\n  - ./migrate --check\n'), fake);
    await assert.rejects(deployCommand(kit, 'web1', {}), /migrate --check/);
    assert.deepEqual(node.switches, [], 'nothing was switched');
    assert.equal(node.current, LIVE);
    assert.ok(!execs(kit).some((e) => e.text.includes('kraftwerk: switched')), 'no switch script ran');
    const undo = execs(kit).filter((e) => e.text.includes('nothing undone'));
    assert.equal(undo.length, 1, 'the undo ran once');
    assert.equal(node.removed.length, 1, 'the undo removed the new release folder');
    assert.notEqual(node.removed[0], LIVE);
    assert.equal(node.lockToken, undefined, 'the lock is released');
  });

  it('(iii) a single-node deploy releases its lock with its last command, the release record (no unlock round trip)', async () => {
    const fake = nodes('web1');
    const kit = new RecordingKit(quiet, project(), fake);
    await deployCommand(kit, 'web1', {});
    const node = fake.get('web1')!;
    assert.equal(node.switches.length, 1);
    assert.equal(node.lockToken, undefined, 'the lock is released');
    const all = execs(kit);
    const unlocks = all.filter((e) => isUnlock(e.text));
    assert.equal(unlocks.length, 1, 'one command releases the lock');
    assert.equal(unlocks[0], all.at(-1), 'it is the last command of the deploy');
    assert.match(unlocks[0]!.text, /could not write the release record/, 'it is the release record, with the unlock appended');
  });

  it('(v) the project reaches the node through the Remote (rsync is a Remote operation, none is spawned beside it)', async () => {
    const fake = nodes('web1');
    const kit = new RecordingKit(quiet, project(), fake);
    if (existsSync(rsyncLog)) rmSync(rsyncLog);
    await deployCommand(kit, 'web1', {});
    const rsyncs = kit.effects.filter((e) => e.op === 'rsync');
    assert.ok(!existsSync(rsyncLog), `an rsync was spawned beside the Remote: ${existsSync(rsyncLog) ? readFileSync(rsyncLog, 'utf8') : ''}`);
    assert.equal(rsyncs.length, 1, 'one rsync, through the Remote');
    assert.match(rsyncs[0]!.text, new RegExp(`/srv/${SITE}/releases/${fake.get('web1')!.switches[0]}`), 'into the new release folder');
  });

  it('(iv) --dry-run connects nowhere, runs no rsync, and prints every command it would run', async () => {
    const fake = nodes('web1');
    const kit = new RecordingKit({ ...quiet, dryRun: true, quiet: false }, project(), fake);
    if (existsSync(rsyncLog)) rmSync(rsyncLog);
    let printed = '';
    const write = process.stdout.write.bind(process.stdout);
    // The CLI writes strings; the test runner's own messages (binary) pass through.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      if (typeof chunk !== 'string') return write(chunk, ...rest);
      printed += chunk;
      return true;
    }) as typeof process.stdout.write;
    try {
      await deployCommand(kit, 'web1', {});
    } finally {
      process.stdout.write = write;
    }
    assert.deepEqual(kit.connected, [], 'no connection was made');
    assert.deepEqual(kit.effects, [], 'no remote effect');
    assert.ok(!existsSync(rsyncLog), `rsync ran: ${existsSync(rsyncLog) ? readFileSync(rsyncLog, 'utf8') : ''}`);
    assert.equal(fake.get('web1')!.current, LIVE);
    // The commands a deploy runs, in order: lock and probe, rsync, switch, health check, record (with the unlock).
    const markers = ['echo ---locked---', `rsync `, `/srv/${SITE}/releases/`, "echo 'kraftwerk: switched'", "-w '%{http_code}'", 'could not write the release record', 'Dry run: nothing was changed on web1.'];
    let at = 0;
    for (const m of markers) {
      const i = printed.indexOf(m, at);
      assert.ok(i >= 0, `the dry run prints ${JSON.stringify(m)} (after the ones before it)`);
      at = i;
    }
    assert.match(printed, /^\[web1\] \$ /m, 'commands are shown as [node] $ …');
  });
});
