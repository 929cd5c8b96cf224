/**
 * `secrets:` (issue 17): values a command on the deploying machine prints, merged
 * into the site's environment like `environ:`, masked in every printed text.
 */
import { soloTopology } from '../../core/engine/topology.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/engine/hooks.ts';
import { computeSiteEnvironment, withCurrentSiteVariables } from '../../core/lifecycle/site-environment.ts';
import { resolveSecrets, runSecretCommand, SecretCommandError } from '../../core/lifecycle/site-secrets.ts';
import { parseDotenv, parseEnvFile, renderDotenv, renderEnvFile } from '../../core/shell/env-file.ts';
import { maskSecrets, Secret, secret, sh } from '../../core/shell/sh.ts';
import { releaseConfig } from '../../core/config/site.ts';
import { VerboseRemote } from '../../core/remote/verbose.ts';
import type { ExecResult, Remote, RemoteFile } from '../../core/remote/remote.ts';
import { formatEnv, formatPulled } from '../../core/cli/actions/env.ts';
import { testSite } from '../helpers/site.ts';

const cwd = tmpdir();
const run = (command: string, timeoutMs = 10_000) => runSecretCommand('STRIPE_KEY', command, { cwd, timeoutMs });

describe('a secrets: command', () => {
  it("gives its stdout without the trailing newline, as a Secret that prints as ***", async () => {
    const value = await run('echo s3cr3t-value');
    assert.ok(value instanceof Secret);
    assert.equal(value.value, 's3cr3t-value');
    assert.equal(String(value), '***');
    assert.equal((await run("printf 'line one\\nline two\\n'")).value, 'line one\nline two', 'only the last newline goes');
  });

  it('fails naming the variable, the exit code and stderr, never what it printed on stdout', async () => {
    await assert.rejects(run(`v=$(printf 's3cr3t-%s' partial); printf "$v"; echo "vault: permission denied ($v)" >&2; exit 3`), (err: Error) => {
      assert.ok(err instanceof SecretCommandError);
      assert.match(err.message, /^secrets\.STRIPE_KEY: the command `.*` failed \(exit 3\)/);
      assert.match(err.message, /vault: permission denied/);
      assert.doesNotMatch(err.message, /s3cr3t-partial/);
      return true;
    });
  });

  it('fails when it prints nothing: stdin is closed, so a command waiting for input ends at once', async () => {
    await assert.rejects(run('cat'), /secrets\.STRIPE_KEY: .* printed nothing: STRIPE_KEY would be empty/);
  });

  it('is stopped, with everything it started, when it passes the timeout', async () => {
    await assert.rejects(run('sleep 30 & sleep 30; printf late', 300), /secrets\.STRIPE_KEY: .* did not finish within 0 s and was stopped/);
  });

  it('runs once per invocation (per loaded site), whatever the number of nodes and calls', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-secrets-'));
    const counter = path.join(dir, 'runs');
    const site = testSite({ secrets: { A: `echo run >> ${counter}; printf a-value`, B: 'printf b-value' } }, 'shop', dir);
    const [first, second] = await Promise.all([resolveSecrets(site), resolveSecrets(site)]);
    assert.equal(first, second);
    assert.deepEqual(Object.fromEntries(Object.entries(first).map(([k, v]) => [k, v.value])), { A: 'a-value', B: 'b-value' });
    await resolveSecrets(site);
    assert.equal(readFileSync(counter, 'utf8'), 'run\n');
  });
});

describe("the site's environment with secrets:", () => {
  it('puts them over the plugins\' variables, beside environ:, under env set, and says where each comes from', async () => {
    const hooks = createHooks();
    hooks.environment.tap('postgres', (_ctx, env) => void env.set('DATABASE_URL', 'postgres://generated', { secret: true }));
    const site = testSite({ environ: { DEBUG: 0 }, secrets: { STRIPE_KEY: 'unused', DATABASE_URL: 'unused', SENTRY_DSN: 'unused' } });
    const secrets = { STRIPE_KEY: secret('sk_from_op'), DATABASE_URL: secret('postgres://managed'), SENTRY_DSN: secret('dsn-from-pass') };
    const { vars, sources, envFile } = await computeSiteEnvironment(hooks, site, { node: 'web1', topology: soloTopology('web1') }, {}, { SENTRY_DSN: 'set-on-node' }, secrets);
    assert.deepEqual(vars, { DATABASE_URL: 'postgres://managed', DEBUG: '0', STRIPE_KEY: 'sk_from_op', SENTRY_DSN: 'set-on-node' });
    assert.deepEqual(sources.STRIPE_KEY, { kind: 'secret' });
    assert.deepEqual(sources.SENTRY_DSN, { kind: 'local' });
    assert.deepEqual(parseEnvFile(envFile), vars);
  });

  it('knows where a secrets: variable comes from without running its command (kraftwerk env)', async () => {
    const site = testSite({ secrets: { STRIPE_KEY: 'exit 1' } });
    const { vars, sources } = await computeSiteEnvironment(createHooks(), site, { node: 'web1', topology: soloTopology('web1') }, {}, {}, {});
    assert.equal(vars.STRIPE_KEY, undefined);
    assert.deepEqual(formatEnv({ STRIPE_KEY: 'sk_live_on_node' }, sources, false), ['STRIPE_KEY=***  # kraftwerk.yaml secrets (its command, at the last deploy)']);
  });

  it("a rollback runs the release with the secrets' values of now (a rotated key does not come back)", () => {
    const release = '/srv/shop/releases/20260101T000000';
    const own = releaseConfig(release);
    const file = (p: string, content: string): RemoteFile => ({ path: p, content, mode: 0o640, owner: 'root', group: 'kw-shop' });
    const saved = [file(own.env, renderEnvFile({ DEBUG: '0', STRIPE_KEY: 'sk_old' })), file(`${own.environ}/STRIPE_KEY`, 'sk_old')];
    const restored = withCurrentSiteVariables(saved, release, {}, { STRIPE_KEY: secret('sk_rotated') });
    const out = Object.fromEntries(restored.files.map((f) => [f.path, f.content]));
    assert.deepEqual(parseEnvFile(out[own.env]!), { DEBUG: '0', STRIPE_KEY: 'sk_rotated' });
    assert.equal(out[`${own.environ}/STRIPE_KEY`], 'sk_rotated');
  });
});

describe('masking', () => {
  it('replaces every secret value this process made in free text, longest first; very short values are left', () => {
    secret('mask-me-please');
    secret('mask-me-please-too');
    secret('42');
    assert.equal(maskSecrets('A=mask-me-please-too B=mask-me-please C=42'), 'A=*** B=*** C=42');
  });

  it('--verbose prints each remote command as shown to users, secrets masked, and files by path only', async () => {
    const lines: string[] = [];
    const calls: string[] = [];
    const inner: Remote = {
      target: { name: 'web1', host: 'web1', port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] },
      dryRun: false,
      commandCount: 0,
      exec: async (cmd): Promise<ExecResult> => (calls.push(cmd.text), { code: 0, stdout: '', stderr: '' }),
      syncFiles: async (files) => files.map((f) => f.path),
      rsync: async () => undefined,
      close: async () => {},
    };
    const remote = new VerboseRemote(inner, (l) => lines.push(l));
    const value = secret('pw-verbose-1234');
    await remote.exec(sh`psql -c ${value}`);
    await remote.exec(sh`echo ${'echoed pw-verbose-1234'}`);
    await remote.syncFiles([{ path: '/srv/shop/shared/env.local', content: 'KEY=pw-verbose-1234\n', mode: 0o640 }]);
    assert.deepEqual(lines, ["[web1] $ psql -c ***", "[web1] $ echo 'echoed ***'", '[web1] $ write files: /srv/shop/shared/env.local']);
    assert.equal(calls[0], 'psql -c pw-verbose-1234', 'what runs is the value itself');
  });
});

describe('env pull', () => {
  it('prints env.local as a dotenv file that env set --from-file reads back, masked unless --reveal', () => {
    const local = { A: 'plain', B: 'has space', C: 'quote " and $HOME `x` \\ back', D: 'two\nlines', E: '' };
    const revealed = formatPulled(local, true);
    assert.deepEqual(parseDotenv(revealed), { vars: local, problems: [] });
    assert.equal(revealed.split('\n').length, 6, 'one line per variable');
    assert.equal(formatPulled(local, false), 'A="***"\nB="***"\nC="***"\nD="***"\nE="***"\n');
    assert.equal(renderDotenv({}), '');
  });
});
