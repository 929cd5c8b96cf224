// The real `deployCommand` without a server: a project in a temp folder, and every connection
// replaced by a recording Remote that answers like a node would. The answers are chosen by what a
// script does (its behaviour markers: `---locked---`, `kraftwerk: switched`, the health check's
// curl, the undo's refusal line), not by which file builds it, so tests hold while the code moves
// between files. Used by test/unit/deploy-orchestration.test.ts and the tests of what a deploy
// tells the outside (test/integration/notify-webhook.test.ts).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreKit, type GlobalOptions } from '../../core/cli/kit.ts';
import type { ExecOptions, ExecResult, Remote, RemoteFile, SshTarget } from '../../core/remote/remote.ts';
import type { Script } from '../../core/shell/sh.ts';
import { stackPlugins } from '../../plugins/builtins.ts';
import { tempProject } from './cli.ts';

export const SITE = 'orch';
/** The release live on every fake node before the deploy. */
export const LIVE = '20200101T000000Z';
export const LOCK_DIR = `/run/kraftwerk/locks/${SITE}`;

/** One thing the deploy did on a node. */
export interface Effect {
  node: string;
  /** `exec`, `syncFiles`, or the name of any other Remote operation. */
  op: string;
  text: string;
  /** syncFiles: the files as given. */
  files?: readonly RemoteFile[];
}

/** A node as the deploy sees it: its live release, its lock, whether its site answers. */
export class FakeNode {
  current: string | undefined = LIVE;
  lockToken: string | undefined;
  /** The new release does not answer its health check here (the live one does). */
  newReleaseBroken = false;
  /** A script containing this text fails (exit 1): a release command, say. */
  failOn?: string;
  removed: string[] = [];
  switches: string[] = [];
  /** Releases on the node with a good record, besides the live one (what `rollback` chooses from). */
  goodReleases: string[] = [];
  /** Release records a deploy wrote (its finish script), by id: the probe sends the live one's. */
  records = new Map<string, string>();

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
    if (text.includes("printf 'release=%s '")) {
      // The release list: the live release and the good ones, each with its record.
      const ids = [...new Set([...(this.current ? [this.current] : []), ...this.goodReleases])];
      const lines = ids.map((id) => `release=${id} ${JSON.stringify({ id, status: 'good' })}`);
      return { code: 0, stdout: `current=${this.current ?? ''}\n${lines.join('\n')}\n`, stderr: '' };
    }
    if (text.includes('echo ---locked---')) {
      const token = /"token":"([0-9a-f]+)"/.exec(text)?.[1];
      if (this.lockToken && this.lockToken !== token) return { code: 3, stdout: `held {"who":"someone","token":"${this.lockToken}"}\n`, stderr: '' };
      this.lockToken = token;
      const record = this.current && this.records.get(this.current);
      const recordLine = record ? `record=${Buffer.from(record).toString('base64')}\n` : '';
      return { code: 0, stdout: `acquired\n---locked---\nsetup=1\npython=3.11.2\ncurrent=${this.current ?? ''}\n${recordLine}---env---\n---envlocal---\n`, stderr: '' };
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
    const written = /printf '%s(?:\\n|\n)' '(\{[^']*\})' > '?\S*?(\d{8}T\d{6}Z)\.json\.tmp/.exec(text);
    if (written) this.records.set(written[2]!, written[1]!);
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
export function recordingRemote(target: SshTarget, node: FakeNode, effects: Effect[]): Remote {
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
      effects.push({ node: node.name, op: 'syncFiles', text: files.map((f) => `${f.remove ? 'remove' : 'write'} ${f.path}`).join('\n'), files });
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

/** What the kit printed through its logger (`kit.log`), when the test asks for it. */
export interface LoggedLines {
  info: string[];
  warn: string[];
}

/**
 * Core's kit with its connections replaced by recording ones (a dry run keeps core's own dry-run Remote).
 * `logged` (when given) collects what the kit's logger says instead of printing it.
 */
export class RecordingKit extends CoreKit {
  readonly effects: Effect[] = [];
  connected: string[] = [];
  constructor(
    globals: GlobalOptions,
    cwd: string,
    readonly nodes: Map<string, FakeNode>,
    logged?: LoggedLines,
  ) {
    // The stack's built-ins, as the CLI wiring hands them over (the tools' node names are not needed here).
    super(() => globals, { ...stackPlugins, commands: [] }, cwd);
    if (logged) {
      const log = this.log as { info(m: string): void; warn(m: string): void };
      log.info = (m) => logged.info.push(m);
      log.warn = (m) => logged.warn.push(m);
    }
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

/** Global options of a test deploy: nothing printed, every question answered yes. */
export const quiet: GlobalOptions = { dryRun: false, verbose: false, quiet: true, acceptNewHostKey: false, yes: true };

/** A project of site `orch` with nodes web1, web2 and the group web; `extra` is appended to its kraftwerk.yaml. */
export function orchestrationProject(extra = ''): string {
  return tempProject({
    ...app,
    'kraftwerk.yaml': `domain: orch.example.com\npackage: ${SITE}\nwsgi: app\nnodes:\n  web1: web1.example.invalid\n  web2: web2.example.invalid\n  web: [web1, web2]\n${extra}`,
  });
}

export function fakeNodes(...names: string[]): Map<string, FakeNode> {
  return new Map(names.map((n) => [n, new FakeNode(n)]));
}

/**
 * A stand-in rsync first on PATH that records any rsync spawned beside the Remote (none should
 * be: rsync is a Remote operation), so no transfer is ever tried from a test. Call from `before`;
 * `restore` from `after`.
 */
export function installRsyncShim(): { log: string; restore(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'kw-orch-'));
  const log = path.join(dir, 'rsync.log');
  // The no-change check lists the project's files with the real rsync, on this machine only (no node): that one passes.
  const real = ['/usr/bin/rsync', '/bin/rsync', '/usr/local/bin/rsync'].find((f) => existsSync(f)) ?? 'false';
  writeFileSync(
    path.join(dir, 'rsync'),
    `#!/bin/sh\ncase " $* " in *" --list-only "*) exec ${real} "$@";; esac\nprintf '%s\\n' "$*" >> ${log}\necho 'Total bytes sent: 1'\n`,
  );
  chmodSync(path.join(dir, 'rsync'), 0o755);
  const savedPath = process.env.PATH;
  process.env.PATH = `${dir}${path.delimiter}${savedPath}`;
  return {
    log,
    restore() {
      process.env.PATH = savedPath;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
