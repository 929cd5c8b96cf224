import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { UsageError } from '../../core/errors.ts';
import { architectureOf, samePublicKey } from '../../tools/aws/ec2.ts';
import { readPublicKey, tildePath } from '../../tools/aws/public-key.ts';
import { checkNodeName } from '../../tools/aws/settings.ts';
import { renderUserData } from '../../tools/aws/user-data.ts';

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq3HzZ6+Jk1TGAaT2bNeYw5AqZ1Nw2gRk0oVdM8yV0b me@laptop';

function home(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kw-aws-home-'));
  mkdirSync(join(dir, '.ssh'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('create-node inputs', () => {
  it('reads ~/.ssh/id_ed25519.pub by default, then id_rsa.pub', async () => {
    const h = home({ '.ssh/id_ed25519.pub': `${ED25519}\n`, '.ssh/id_rsa.pub': 'ssh-rsa AAAAB3NzaC1yc2E= other' });
    const key = await readPublicKey(undefined, h);
    assert.equal(key.text, ED25519);
    assert.equal(key.privateKeyFile, join(h, '.ssh/id_ed25519'));
    const rsaOnly = home({ '.ssh/id_rsa.pub': 'ssh-rsa AAAAB3NzaC1yc2E= other' });
    assert.equal((await readPublicKey(undefined, rsaOnly)).text, 'ssh-rsa AAAAB3NzaC1yc2E= other');
  });

  it('expands ~ in --key and names the private key next to it', async () => {
    const h = home({ '.ssh/deploy.pub': ED25519 });
    const key = await readPublicKey('~/.ssh/deploy.pub', h);
    assert.equal(tildePath(key.privateKeyFile, h), '~/.ssh/deploy');
  });

  it('says what to do when there is no key, a private key, or a key type EC2 refuses', async () => {
    await assert.rejects(readPublicKey(undefined, home({})), (e: unknown) => e instanceof UsageError && /ssh-keygen -t ed25519/.test(e.hint!));
    const h = home({ '.ssh/id_ed25519': '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n', '.ssh/ecdsa.pub': 'ecdsa-sha2-nistp256 AAAAE2VjZHNh me' });
    await assert.rejects(readPublicKey('~/.ssh/id_ed25519', h), /is a private key/);
    await assert.rejects(readPublicKey('~/.ssh/ecdsa.pub', h), /EC2 cannot import ecdsa-sha2-nistp256 keys/);
    await assert.rejects(readPublicKey('~/.ssh/missing.pub', h), /cannot read public key .*missing.pub: ENOENT/);
  });

  it('node names must be host name labels', () => {
    for (const ok of ['web1', 'shop-production', 'A1']) checkNodeName(ok);
    for (const bad of ['web_1', '-web', 'web.example.com', 'x'.repeat(64), '', 'a b']) {
      assert.throws(() => checkNodeName(bad), UsageError, bad);
    }
  });

  it('Graviton sizes get arm64 images', () => {
    assert.equal(architectureOf('t3.micro'), 'x86_64');
    assert.equal(architectureOf('g5.xlarge'), 'x86_64');
    for (const arm of ['t4g.small', 'm7g.large', 'c6gn.medium', 'm6gd.large', 'a1.medium']) assert.equal(architectureOf(arm), 'arm64', arm);
  });

  it('compares keys by type and material, not comment', () => {
    assert.ok(samePublicKey(ED25519, ED25519.replace('me@laptop', 'other@ci')));
    assert.ok(!samePublicKey(ED25519, ED25519.replace('AAAAC3', 'BBBBC3')));
  });

  it('user data is cloud-config that sets the host name and authorizes the key', () => {
    const text = renderUserData({ hostname: 'web1', publicKey: `${ED25519}\n` });
    assert.ok(text.startsWith('#cloud-config\n'));
    assert.deepEqual(parse(text), { hostname: 'web1', preserve_hostname: false, ssh_authorized_keys: [ED25519] });
  });
});
