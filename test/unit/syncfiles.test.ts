import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { RemoteFile } from '../../core/remote/remote.ts';
import { buildSyncFilesCommand, parseSyncFilesOutput } from '../../core/remote/syncfiles.ts';

const root = mkdtempSync(join(tmpdir(), 'kw-syncfiles-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Runs the command the way the server would: `sh -c`, contents on stdin. */
function sync(files: RemoteFile[]): { changed: string[]; status: number | null; stderr: string } {
  const { command, stdin } = buildSyncFilesCommand(files);
  const result = spawnSync('sh', ['-c', command.text], { input: stdin, encoding: 'utf8' });
  return { changed: parseSyncFilesOutput(result.stdout), status: result.status, stderr: result.stderr };
}

const hostile = [
  `it's "quoted" $(touch ${root}/pwned) \`touch ${root}/pwned2\` $HOME \\ ; rm -rf /\n`,
  'line one\nline two\n\n',
  'no trailing newline',
  '',
  'binary-ish \u0000\u0001\u0002\u00ff\t\r\n\u001b[31m é ✓',
];

describe('buildSyncFilesCommand', () => {
  it('writes every file byte for byte, creating parent folders, and reports each one', () => {
    const files = hostile.map((content, i) => ({ path: `${root}/a/b c/file ${i}'$(x)`, content }));
    const first = sync(files);
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.changed, files.map((f) => f.path));
    for (const file of files) {
      assert.equal(readFileSync(file.path, 'utf8'), file.content);
      assert.equal(statSync(file.path).mode & 0o7777, 0o644);
    }
    assert.throws(() => statSync(`${root}/pwned`), /ENOENT/, 'content must never be run');
    assert.throws(() => statSync(`${root}/pwned2`), /ENOENT/);
  });

  it('changes nothing and reports nothing the second time', () => {
    const files = hostile.map((content, i) => ({ path: `${root}/same/${i}.conf`, content }));
    assert.equal(sync(files).changed.length, files.length);
    const inodes = files.map((f) => statSync(f.path).ino);
    const second = sync(files);
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(second.changed, []);
    assert.deepEqual(files.map((f) => statSync(f.path).ino), inodes);
  });

  it('replaces only the file whose content changed, by renaming a new file over it', () => {
    const files = [
      { path: `${root}/c/one`, content: 'one\n' },
      { path: `${root}/c/two`, content: 'two\n' },
    ];
    sync(files);
    const inode = statSync(`${root}/c/two`).ino;
    const result = sync([files[0]!, { path: `${root}/c/two`, content: 'TWO\n' }]);
    assert.deepEqual(result.changed, [`${root}/c/two`]);
    assert.equal(readFileSync(`${root}/c/two`, 'utf8'), 'TWO\n');
    assert.notEqual(statSync(`${root}/c/two`).ino, inode);
    assert.deepEqual(readdirSync(`${root}/c`).sort(), ['one', 'two'], 'no temporary file is left behind');
  });

  it('fixes mode, owner and group in place when only those differ', (t) => {
    if (process.getuid?.() !== 0) return t.skip('changing owners needs root');
    const path = `${root}/d/secret.env`;
    sync([{ path, content: 'A=1\n' }]);
    const inode = statSync(path).ino;
    const wanted = { path, content: 'A=1\n', mode: 0o640, owner: 'nobody', group: 'nogroup' };
    assert.deepEqual(sync([wanted]).changed, [path]);
    const stat = statSync(path);
    assert.equal(stat.mode & 0o7777, 0o640);
    assert.equal(stat.uid, Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout));
    assert.equal(stat.ino, inode, 'same content is not rewritten');
    assert.deepEqual(sync([wanted]).changed, []);
  });

  it('gives a new file its mode and owner before it appears under its name', (t) => {
    if (process.getuid?.() !== 0) return t.skip('changing owners needs root');
    const path = `${root}/e/new.conf`;
    assert.deepEqual(sync([{ path, content: 'x', mode: 0o600, owner: 'nobody' }]).changed, [path]);
    assert.equal(statSync(path).mode & 0o7777, 0o600);
    assert.notEqual(statSync(path).uid, 0);
  });

  it('fails when a folder stands where a file should be', () => {
    mkdirSync(`${root}/f/dir`, { recursive: true });
    const result = sync([{ path: `${root}/f/dir`, content: 'x' }]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /is a directory/);
  });

  it('fails when the owner does not exist, leaving the old file in place', () => {
    const path = `${root}/g/conf`;
    sync([{ path, content: 'old' }]);
    const result = sync([{ path, content: 'new', owner: 'no-such-user-kw' }]);
    assert.notEqual(result.status, 0);
    assert.equal(readFileSync(path, 'utf8'), 'old');
    assert.deepEqual(readdirSync(`${root}/g`), ['conf']);
  });

  it('removes files marked remove when they are there, and reports them as changed', () => {
    const keep = { path: `${root}/r/keep.conf`, content: 'keep\n' };
    const gone = `${root}/r/old job`;
    sync([keep, { path: gone, content: 'old\n' }]);
    const result = sync([keep, { path: gone, content: '', remove: true }, { path: `${root}/r/never`, content: '', remove: true }]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.changed, [gone]);
    assert.deepEqual(readdirSync(`${root}/r`), ['keep.conf']);
    assert.deepEqual(sync([{ path: gone, content: '', remove: true }]).changed, [], 'nothing to remove the second time');
    mkdirSync(`${root}/r/folder`);
    const folder = sync([{ path: `${root}/r/folder`, content: '', remove: true }]);
    assert.notEqual(folder.status, 0, 'a folder is never removed');
    assert.match(folder.stderr, /is a directory/);
  });

  it('tells unchanged from changed files among many, whatever their names (one checksum run for all)', () => {
    const names = ['plain', 'with space', 'back\\slash', "quote'", 'star*', '-dash'];
    const files = names.map((n, i) => ({ path: `${root}/m/${n}`, content: `content ${i}\n` }));
    assert.equal(sync(files).changed.length, names.length);
    const next = files.map((f, i) => (i % 2 ? { ...f, content: `new ${i}\n` } : f));
    const result = sync([...next, { ...next[0]!, mode: 0o600 }]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.changed, [0, 1, 3, 5].map((i) => next[i]!.path), 'the mode of the first, the content of every second');
    assert.equal(statSync(next[0]!.path).mode & 0o7777, 0o600, 'the last entry for a path wins');
    for (const f of next.slice(1)) assert.equal(readFileSync(f.path, 'utf8'), f.content);
  });

  it('refuses relative paths and paths with a newline', () => {
    assert.throws(() => buildSyncFilesCommand([{ path: 'etc/x', content: '' }]), /absolute/);
    assert.throws(() => buildSyncFilesCommand([{ path: '/etc/x\ny', content: '' }]), /newline/);
  });

  it('shows the paths, not the script, in messages', () => {
    const { command, stdin } = buildSyncFilesCommand([
      { path: '/etc/a b', content: 'secret' },
      { path: '/etc/c', content: 'x' },
    ]);
    assert.equal(command.display, `write files: '/etc/a b' /etc/c`);
    assert.ok(!command.text.includes('secret'), 'contents travel on stdin only');
    assert.equal(stdin.toString(), 'secretx');
  });
});
