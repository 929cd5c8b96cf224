import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { expandSshPath, parseSshG, resolveSshTarget } from '../../core/remote/sshconfig.ts';

// Abridged `ssh -G` output of OpenSSH 9.2 for a Host block with ProxyJump and HostKeyAlias.
const SSH_G = `host prod
user deploy
hostname 203.0.113.7
port 2222
addressfamily any
batchmode no
hashknownhosts yes
hostkeyalias prod-web
identityfile ~/.ssh/id_ed25519
identityfile %d/.ssh/prod_%r
proxyjump bastion@jump.example.com:2200
globalknownhostsfile /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2
userknownhostsfile /home/me/.ssh/known_hosts /home/me/.ssh/known_hosts2
`;

describe('parseSshG', () => {
  it('reads the settings Kraftwerk uses', () => {
    assert.deepEqual(parseSshG(SSH_G), {
      hostname: '203.0.113.7',
      user: 'deploy',
      port: 2222,
      identityFiles: ['~/.ssh/id_ed25519', '%d/.ssh/prod_%r'],
      proxyJump: 'bastion@jump.example.com:2200',
      proxyCommand: undefined,
      userKnownHostsFiles: ['/home/me/.ssh/known_hosts', '/home/me/.ssh/known_hosts2'],
      globalKnownHostsFiles: ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
      hostKeyAlias: 'prod-web',
      hashKnownHosts: true,
    });
  });

  it('treats "none" as not set', () => {
    const config = parseSshG('hostname a\nuser root\nport 22\nproxyjump none\nhashknownhosts no\n');
    assert.equal(config.proxyJump, undefined);
    assert.equal(config.hashKnownHosts, false);
    assert.deepEqual(config.identityFiles, []);
  });
});

describe('expandSshPath', () => {
  const tokens = { home: '/home/me', localUser: 'me', host: 'h.example.com', user: 'deploy', port: 22, alias: 'prod' };
  it('expands ~ and the % tokens ssh expands', () => {
    assert.equal(expandSshPath('~/.ssh/id_rsa', tokens), '/home/me/.ssh/id_rsa');
    assert.equal(expandSshPath('%d/.ssh/%n_%r@%h:%p_100%%', tokens), '/home/me/.ssh/prod_deploy@h.example.com:22_100%');
    assert.equal(expandSshPath('/abs/~/x', tokens), '/abs/~/x');
  });
});

describe('resolveSshTarget', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-sshconfig-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('applies the node settings through ssh -G and keeps only key files that exist', async () => {
    const key = join(dir, 'deploy_key');
    writeFileSync(key, '');
    const target = await resolveSshTarget('production', {
      host: 'Server.Example.COM',
      port: 2222,
      user: 'root',
      identityFiles: [key, join(dir, 'missing_key')],
    });
    assert.equal(target.name, 'production');
    assert.equal(target.host, 'server.example.com');
    assert.equal(target.port, 2222);
    assert.equal(target.user, 'root');
    assert.equal(target.identityFiles[0], key);
    assert.ok(!target.identityFiles.includes(join(dir, 'missing_key')));
    assert.match(target.knownHostsFiles[0]!, /^\/.*\/\.ssh\/known_hosts$/);
    assert.equal(target.sudo, false);
  });

  it('logs in as another user through sudo', async () => {
    const target = await resolveSshTarget('web', { host: 'web.example.com', user: 'admin' });
    assert.equal(target.user, 'admin');
    assert.equal(target.sudo, true);
  });
});
