import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  checkHostKey,
  fingerprint,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  recordHostKey,
} from '../../core/remote/knownhosts.ts';
import { sshKeygen } from '../helpers/sshd.ts';

const dir = mkdtempSync(join(tmpdir(), 'kw-knownhosts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A real key made by ssh-keygen: its known_hosts text and its blob. */
function makeKey(name: string, type = 'ed25519') {
  const line = sshKeygen(join(dir, name), type);
  const [keyType, base64] = line.split(' ') as [string, string];
  return { text: `${keyType} ${base64}`, type: keyType, blob: Buffer.from(base64, 'base64'), pub: join(dir, `${name}.pub`) };
}

const server = makeKey('server');
const other = makeKey('other');
const rsa = makeKey('rsa', 'rsa');

function knownHosts(name: string, lines: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const check = (files: string[], host: string, key = server) => checkHostKey(files, [host], key.blob).status;

describe('checkHostKey', () => {
  it('accepts the recorded key, refuses a different key of the same type, and knows nothing of other hosts', () => {
    const file = knownHosts('plain', [`# comment`, `example.com ${server.text}`, `changed.example.com ${other.text}`]);
    assert.equal(check([file], 'example.com'), 'match');
    assert.deepEqual(checkHostKey([file], ['changed.example.com'], server.blob), {
      status: 'mismatch',
      fingerprint: fingerprint(server.blob),
      file,
      known: [{ type: 'ssh-ed25519', fingerprint: fingerprint(other.blob) }],
    });
    assert.equal(check([file], 'elsewhere.example.com'), 'unknown');
  });

  it('counts a key of another type for a known host as a changed key, with the known fingerprints', () => {
    const file = knownHosts('rsa-only', [`example.com ${rsa.text}`]);
    assert.deepEqual(checkHostKey([file], ['example.com'], server.blob), {
      status: 'mismatch',
      fingerprint: fingerprint(server.blob),
      file,
      known: [{ type: 'ssh-rsa', fingerprint: fingerprint(rsa.blob) }],
    });
    assert.deepEqual(knownKeyTypes([file], ['example.com']), ['ssh-rsa']);
  });

  it('a changed key type is found through hashed names and [host]:port too', () => {
    const file = knownHosts('rsa-hashed', [`[10.0.0.7]:2200 ${rsa.text}`]);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
    assert.equal(check([file], '[10.0.0.7]:2200'), 'mismatch');
    assert.equal(check([file], '[10.0.0.7]:2200', rsa), 'match');
    assert.equal(check([file], '10.0.0.7'), 'unknown');
  });

  it('accepts the key when any line has it, even if another line for the host differs', () => {
    const file = knownHosts('two-lines', [`example.com ${other.text}`, `example.com ${server.text}`]);
    assert.equal(check([file], 'example.com'), 'match');
  });

  it('reads [host]:port entries for servers on other ports', () => {
    const file = knownHosts('ports', [`[example.com]:2222 ${server.text}`]);
    assert.equal(check([file], knownHostsName('example.com', 2222)), 'match');
    assert.equal(check([file], knownHostsName('example.com', 22)), 'unknown');
  });

  it('reads entries hashed by ssh-keygen -H', () => {
    const file = knownHosts('hashed', [`example.com ${server.text}`, `[10.0.0.5]:2200 ${other.text}`]);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes('example.com') && text.startsWith('|1|'), 'the file is really hashed');
    assert.equal(check([file], 'example.com'), 'match');
    assert.equal(check([file], '[10.0.0.5]:2200', other), 'match');
    assert.equal(check([file], '[10.0.0.5]:2200'), 'mismatch');
    assert.equal(check([file], '10.0.0.5'), 'unknown');
  });

  it('honours comma lists, wildcards and negation', () => {
    const file = knownHosts('patterns', [`web1,*.example.com,!bad.example.com ${server.text}`]);
    assert.equal(check([file], 'web1'), 'match');
    assert.equal(check([file], 'app.example.com'), 'match');
    assert.equal(check([file], 'WEB1'), 'match');
    assert.equal(check([file], 'bad.example.com'), 'unknown');
    assert.equal(check([file], 'example.com'), 'unknown');
  });

  it('refuses a @revoked key, whatever host its line names', () => {
    const revoked = knownHosts('revoked', [`example.com ${server.text}`, `@revoked * ${server.text}`]);
    assert.deepEqual(checkHostKey([revoked], ['example.com'], server.blob).status, 'revoked');
    const elsewhere = knownHosts('revoked-other-host', [`example.com ${server.text}`, `@revoked old.example.net ${server.text}`]);
    assert.equal(check([elsewhere], 'example.com'), 'revoked');
    assert.equal(check([elsewhere], 'example.com', other), 'mismatch', 'only the revoked key itself is refused that way');
  });

  it('a host under a @cert-authority line is never new: its plain key must be listed', () => {
    const ca = makeKey('ca');
    const file = knownHosts('ca', [`@cert-authority *.example.com ${ca.text}`]);
    assert.deepEqual(checkHostKey([file], ['web.example.com'], server.blob), {
      status: 'cert-authority',
      fingerprint: fingerprint(server.blob),
      file,
      known: [{ type: 'ssh-ed25519', fingerprint: fingerprint(ca.blob) }],
    });
    assert.equal(check([file], 'web.example.org'), 'unknown', 'the CA covers only the hosts its line names');
    const withKey = knownHosts('ca-and-key', [`@cert-authority *.example.com ${ca.text}`, `web.example.com ${server.text}`]);
    assert.equal(check([withKey], 'web.example.com'), 'match');
    assert.deepEqual(knownKeyTypes([file], ['web.example.com']), [], 'a CA key is no host key type to ask for');
  });

  it('reads every file given and skips missing ones', () => {
    const second = knownHosts('second', [`example.com ${server.text}`]);
    assert.equal(check([join(dir, 'missing'), second], 'example.com'), 'match');
  });

  it('prints the fingerprint exactly as ssh-keygen -l does', () => {
    const printed = execFileSync('ssh-keygen', ['-l', '-f', server.pub], { encoding: 'utf8' }).split(' ')[1];
    assert.equal(fingerprint(server.blob), printed);
    assert.equal(keyTypeOf(rsa.blob), 'ssh-rsa');
  });
});

describe('knownHostsName', () => {
  it('uses the alias, the bare host on port 22, [host]:port otherwise', () => {
    assert.equal(knownHostsName('Example.COM', 22), 'example.com');
    assert.equal(knownHostsName('10.0.0.5', 2222), '[10.0.0.5]:2222');
    assert.equal(knownHostsName('10.0.0.5', 2222, 'prod'), 'prod');
  });
});

describe('recordHostKey', () => {
  it('creates ~/.ssh with mode 0700 and known_hosts with 0600, and ssh can find the entry', () => {
    const file = join(dir, 'home', '.ssh', 'known_hosts');
    recordHostKey(file, '[127.0.0.1]:2222', server.blob);
    assert.equal(statSync(join(dir, 'home', '.ssh')).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8'), `[127.0.0.1]:2222 ${server.text}\n`);
    assert.equal(spawnSync('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', file]).status, 0);
    assert.equal(check([file], '[127.0.0.1]:2222'), 'match');
  });

  it('writes hashed entries that ssh-keygen -F finds', () => {
    const file = join(dir, 'hashed-record');
    recordHostKey(file, 'example.com', server.blob, { hash: true });
    assert.match(readFileSync(file, 'utf8'), /^\|1\|[^ ]+ ssh-ed25519 /);
    assert.equal(spawnSync('ssh-keygen', ['-F', 'example.com', '-f', file]).status, 0);
    assert.equal(check([file], 'example.com'), 'match');
  });

  it('starts a new line when the file does not end with one', () => {
    const file = join(dir, 'no-newline');
    writeFileSync(file, `a.example.com ${other.text}`);
    recordHostKey(file, 'b.example.com', server.blob);
    assert.equal(readFileSync(file, 'utf8'), `a.example.com ${other.text}\nb.example.com ${server.text}\n`);
  });
});
