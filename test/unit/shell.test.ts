import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { asUser, chain, quote, raw, secret, sh } from '../../core/shell/sh.ts';

/** What a real POSIX shell makes of `printf %s <quoted>`: the argument it received. */
function roundTrip(value: string): string {
  return execFileSync('sh', ['-c', `printf %s ${quote(value)}`]).toString();
}

const hostile = [
  "it's",
  '"double"',
  '$(touch /tmp/kraftwerk-pwned)',
  '`id`',
  'a;b && c || d',
  'line one\nline two',
  'tab\there',
  '*',
  '~root',
  '$HOME',
  '\\',
  "'",
  "''",
  ' leading and trailing ',
  '-n',
  'ünïcödé',
  '!event',
  '>redirect',
];

describe('quote', () => {
  for (const value of hostile) {
    it(`passes ${JSON.stringify(value)} through a real shell unchanged`, () => {
      assert.equal(roundTrip(value), value);
    });
  }

  it('leaves safe words readable', () => {
    assert.equal(quote('/srv/site/releases/20261125T170102Z'), '/srv/site/releases/20261125T170102Z');
    assert.equal(quote('kw-site'), 'kw-site');
    assert.equal(quote(42), '42');
  });

  it('quotes the empty string', () => {
    assert.equal(quote(''), "''");
    assert.equal(roundTrip(''), '');
  });

  it('refuses NUL bytes, which no shell can carry', () => {
    assert.throws(() => quote('a\0b'), /NUL/);
  });
});

describe('sh', () => {
  it('quotes every interpolated value and keeps literal shell syntax', () => {
    const dir = "/tmp/x y/$(rm -rf /)";
    assert.equal(sh`mkdir -p ${dir} && cd ${dir}`.text, `mkdir -p '/tmp/x y/$(rm -rf /)' && cd '/tmp/x y/$(rm -rf /)'`);
  });

  it('expands arrays into separate quoted words', () => {
    assert.equal(sh`apt-get install ${['nginx', 'a b']}`.text, "apt-get install nginx 'a b'");
  });

  it('embeds commands unquoted and raw text as written', () => {
    const inner = sh`echo ${'hi there'}`;
    assert.equal(sh`(${inner}) | ${raw('wc -l')}`.text, "(echo 'hi there') | wc -l");
  });

  it('masks secrets in the display form only', () => {
    const cmd = sh`redis-cli ACL SETUSER site on ${secret('p@ss word')}`;
    assert.equal(cmd.text, "redis-cli ACL SETUSER site on 'p@ss word'");
    assert.equal(cmd.display, 'redis-cli ACL SETUSER site on ***');
    assert.ok(!chain(cmd, sh`true`).display.includes('p@ss'));
  });

  it('runs a command as another user with one more level of quoting', () => {
    const cmd = asUser('kw-site', sh`echo ${"it's"}`);
    assert.ok(cmd.text.startsWith('runuser -u kw-site -- sh -c '));
    // What matters: the inner shell sees the original command.
    const viaSh = execFileSync('sh', ['-c', cmd.text.replace(/^runuser -u kw-site -- /, '')]).toString();
    assert.equal(viaSh, "it's\n");
  });
});
