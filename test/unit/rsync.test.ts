import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SshTarget } from '../../core/remote/remote.ts';
import { buildRsyncArgs, findRsyncExcludeFile, parseRsyncStats, rsyncArgs, rsyncSshCommand } from '../../core/remote/rsync.ts';

const target: SshTarget = {
  name: 'production',
  host: '203.0.113.7',
  port: 2222,
  user: 'root',
  identityFiles: ['/home/me/.ssh/id_ed25519'],
  knownHostsFiles: ['/home/me/.ssh/known_hosts', '/etc/ssh/ssh_known_hosts'],
};

const EXCLUDES = ['--exclude=.git', '--exclude=__pycache__', '--exclude=*.pyc', '--exclude=node_modules', '--exclude=.venv', '--exclude=venv', '--exclude=.kraftwerk'];

describe('buildRsyncArgs', () => {
  it('copies the folder over OpenSSH with the resolved port, key and known_hosts, checking the host key strictly', () => {
    assert.deepEqual(
      buildRsyncArgs({
        target,
        source: '/home/me/site',
        dest: '/srv/site/releases/20261125T170102Z',
        linkDest: '/srv/site/releases/20261124T090000Z',
        excludes: ['media/', '*.sqlite3'],
        excludeFromFile: '/home/me/site/rsync_exclude.txt',
      }),
      [
        '--recursive', '--links', '--times', '--perms', '--chmod=u=rwX,go=rX', '--compress', '--delete', '--stats', '--info=progress2',
        '-e',
        "ssh -p 2222 -i /home/me/.ssh/id_ed25519 -o 'UserKnownHostsFile=/home/me/.ssh/known_hosts /etc/ssh/ssh_known_hosts' -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=20 -o ServerAliveInterval=10 -o ServerAliveCountMax=3",
        '--link-dest=/srv/site/releases/20261124T090000Z',
        ...EXCLUDES,
        '--exclude=media/',
        '--exclude=*.sqlite3',
        '--exclude-from=/home/me/site/rsync_exclude.txt',
        '/home/me/site/',
        'root@203.0.113.7:/srv/site/releases/20261125T170102Z',
      ],
    );
  });

  it("with the site's group: every file that group's, nothing for others (nginx passes through the release folder)", () => {
    const args = buildRsyncArgs({ target, source: '/p', dest: '/srv/site/releases/R', excludes: [], group: 'kw-site' });
    assert.ok(args.includes('--chmod=u=rwX,g=rX,o='), args.join(' '));
    assert.ok(args.includes('--chown=:kw-site'), args.join(' '));
    assert.ok(!args.includes('--chmod=u=rwX,go=rX'));
  });

  it('goes through sudo, the jump host and the host key alias of the node, and brackets IPv6 addresses', () => {
    const args = buildRsyncArgs({
      target: { ...target, host: '2001:db8::7', user: 'admin', sudo: true, proxyJump: 'me@bastion:2200', hostKeyAlias: 'prod' },
      source: '/p/',
      dest: '/srv/x',
      excludes: [],
      dryRun: true,
    });
    assert.ok(args.includes('--dry-run'));
    assert.ok(args.includes('--rsync-path=sudo -n rsync'));
    assert.match(args[args.indexOf('-e') + 1]!, / -o ProxyJump=me@bastion:2200 -o HostKeyAlias=prod$/);
    assert.deepEqual(args.slice(-2), ['/p/', 'admin@[2001:db8::7]:/srv/x']);
    assert.ok(!args.some((a) => a.includes('--link-dest')));
  });

  it('gives up on a dead connection within a minute (connect timeout, keepalives), as the deploy\'s own connection does', () => {
    const e = rsyncSshCommand(target);
    assert.match(e, / -o ConnectTimeout=20 -o ServerAliveInterval=10 -o ServerAliveCountMax=3\b/);
  });

  it('never turns host key checking off', () => {
    const e = rsyncSshCommand({ ...target, proxyJump: 'x' });
    assert.ok(!/StrictHostKeyChecking=(no|accept-new)/.test(e));
  });
});

describe('rsync -e quoting', () => {
  const dir = mkdtempSync(join(tmpdir(), "kw rsync 'e' "));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reaches ssh as exactly the intended words, whatever the paths contain', (t) => {
    if (spawnSync('rsync', ['--version']).error) return t.skip('rsync is not installed');
    // A stand-in for ssh, first on PATH, that records its arguments; rsync splits the -e string itself.
    const fakeSsh = join(dir, 'ssh');
    writeFileSync(fakeSsh, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > "$(dirname "$0")/argv"\nexit 1\n`);
    chmodSync(fakeSsh, 0o755);
    const key = join(dir, `it's a "key" $(x)`);
    const knownHosts = join(dir, 'known hosts');
    const args = buildRsyncArgs({
      target: { ...target, identityFiles: [key], knownHostsFiles: [knownHosts] },
      source: dir,
      dest: '/srv/x',
      excludes: [],
    });
    spawnSync('rsync', args, { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    const argv = readFileSync(join(dir, 'argv'), 'utf8').split('\n');
    assert.deepEqual(argv.slice(0, 10), [
      '-p', '2222',
      '-i', key,
      '-o', `UserKnownHostsFile="${knownHosts}"`,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
    ]);
  });
});

describe('findRsyncExcludeFile', () => {
  it('finds the original tool\'s rsync_exclude.txt only when it exists', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-exclude-'));
    try {
      assert.equal(findRsyncExcludeFile(dir), undefined);
      writeFileSync(join(dir, 'rsync_exclude.txt'), '*.log\n');
      assert.equal(findRsyncExcludeFile(dir), join(dir, 'rsync_exclude.txt'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseRsyncStats', () => {
  it('reads the totals of rsync --stats', () => {
    const output = `
Number of files: 1,204 (reg: 1,100, dir: 104)
Number of created files: 1,204 (reg: 1,100, dir: 104)
Number of regular files transferred: 1,100
Total file size: 12,345,678 bytes
Total transferred file size: 12,345,678 bytes
Total bytes sent: 3,456,789
Total bytes received: 21,012

sent 3,456,789 bytes  received 21,012 bytes  1,391,120.40 bytes/sec
`;
    assert.deepEqual(parseRsyncStats(output), { bytesSent: 3456789, bytesReceived: 21012, filesTransferred: 1100 });
  });
});

describe('rsyncArgs of dump folders', () => {
  it('copies a dump folder\'s contents either way, private on both sides, resumable', () => {
    const pull = rsyncArgs(target, { kind: 'pull', remoteDir: '/srv/site/backups/X', localDir: '/home/me/dumps/X' });
    const push = rsyncArgs({ ...target, sudo: true }, { kind: 'push', localDir: '/tmp/kw/', remoteDir: '/srv/site/backups/X/' });
    for (const args of [pull, push]) {
      assert.ok(args.includes('--chmod=D0700,F0600') && args.includes('--partial'), args.join(' '));
      assert.ok(!args.includes('--delete'), 'a dump copy removes nothing');
    }
    assert.deepEqual(pull.slice(-2), [`${target.user}@${target.host}:/srv/site/backups/X/`, '/home/me/dumps/X/']);
    assert.deepEqual(push.slice(-2), ['/tmp/kw/', `${target.user}@${target.host}:/srv/site/backups/X/`]);
    assert.ok(push.includes('--rsync-path=sudo -n rsync'));
  });
});
