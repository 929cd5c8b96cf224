/**
 * The config search refuses files that others control (OpenSSH's StrictModes,
 * git's safe.directory) and ends at the repository root, the home folder and
 * the first folder not owned by the user. Files of another owner are made with
 * chown to `nobody`, which needs root.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { findConfigFile, loadConfig } from '../../core/config/load.ts';
import { builtins } from '../helpers/config.ts';
import { searchFolders, userName } from '../../core/config/trust.ts';
import { ConfigError, KraftwerkError } from '../../core/errors.ts';

const knownServices = ['files', 'postgres', 'redis'];
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const rootOnly = isRoot ? false : 'needs root to make files owned by another user (chown)';

const scratch = mkdtempSync(path.join(tmpdir(), 'kw-trust-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function folder(...parts: string[]): string {
  const dir = path.join(mkdtempSync(path.join(scratch, 'p-')), ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A kraftwerk.config.ts that leaves a marker file when it is executed. */
function executingConfig(dir: string): { file: string; marker: string } {
  const marker = path.join(dir, 'EXECUTED');
  const file = path.join(dir, 'kraftwerk.config.ts');
  writeFileSync(file, `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default { domain: 'x.example.com', package: 'trusted' };\n`);
  return { file, marker };
}

async function refusal(load: Promise<unknown>): Promise<KraftwerkError> {
  try {
    await load;
  } catch (error) {
    assert.ok(error instanceof KraftwerkError, `expected a KraftwerkError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  return assert.fail('the config loaded, but it should have been refused');
}

describe('config files others control are refused before they run', { skip: rootOnly }, () => {
  test('a kraftwerk.config.ts owned by another user is not executed; the error names file, owner and fix', async () => {
    const dir = folder('proj');
    const { file, marker } = executingConfig(dir);
    chownSync(file, NOBODY, NOBODY);
    const error = await refusal(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.equal(existsSync(marker), false, 'the config module must not have run');
    assert.match(error.message, new RegExp(`refusing to use the config file ${file.replace(/[.]/g, '\\.')}: it is owned by ${userName(NOBODY)}, not by root`));
    assert.match(error.hint ?? '', /--config/);
    assert.match(error.hint ?? '', /chown root/);
  });

  test('a kraftwerk.yaml in a parent folder owned by another user is refused, not skipped', async () => {
    const top = folder('top');
    writeFileSync(path.join(top, 'kraftwerk.yaml'), 'domain: evil.example.com\n');
    chownSync(path.join(top, 'kraftwerk.yaml'), NOBODY, NOBODY);
    const cwd = path.join(top, 'sub');
    mkdirSync(cwd);
    const error = await refusal(loadConfig({ plugins: builtins, cwd, knownServices }));
    assert.match(error.message, /kraftwerk\.yaml: it is owned by/);
  });

  test('sudo: root in a folder of another user gets the hint to run without sudo', async (t) => {
    const dir = folder('users-project');
    writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: u.example.com\n');
    chownSync(path.join(dir, 'kraftwerk.yaml'), NOBODY, NOBODY);
    chownSync(dir, NOBODY, NOBODY);
    const before = process.env.SUDO_USER;
    process.env.SUDO_USER = 'alice';
    t.after(() => (before === undefined ? delete process.env.SUDO_USER : (process.env.SUDO_USER = before)));
    const error = await refusal(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.hint ?? '', /Run kraftwerk as alice without sudo/);
  });

  test('--config names a file of another owner explicitly: it is trusted', async () => {
    const dir = folder('explicit');
    const { file, marker } = executingConfig(dir);
    chownSync(file, NOBODY, NOBODY);
    const { siteName } = await loadConfig({ plugins: builtins, cwd: dir, configPath: 'kraftwerk.config.ts', knownServices });
    assert.equal(siteName, 'trusted');
    assert.ok(existsSync(marker));
  });

  test('a plugin file owned by another user is refused with the key that names it', async () => {
    const dir = folder('plugin');
    writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: p.example.com\nplugins: [./evil.ts]\n');
    writeFileSync(path.join(dir, 'evil.ts'), 'export default { name: "evil" };\n');
    chownSync(path.join(dir, 'evil.ts'), NOBODY, NOBODY);
    const error = await refusal(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /plugins\[0\]: refusing to execute plugin file .*evil\.ts: it is owned by/);
  });

  test('the search ends after the first folder not owned by the user', async () => {
    const top = folder('top');
    writeFileSync(path.join(top, 'kraftwerk.yaml'), 'domain: above.example.com\n');
    const foreign = path.join(top, 'foreign');
    const cwd = path.join(foreign, 'mine');
    mkdirSync(cwd, { recursive: true });
    chownSync(foreign, NOBODY, NOBODY);
    assert.deepEqual(searchFolders(cwd), [cwd, foreign]);
    assert.equal(await findConfigFile(cwd), undefined);
    await assert.rejects(loadConfig({ plugins: builtins, cwd, knownServices }), /no kraftwerk\.yaml/);
  });
});

describe('writable by others, and where the search ends', () => {
  test('a group- or world-writable config file is refused, also with --config', async () => {
    for (const mode of [0o664, 0o666]) {
      const dir = folder('writable');
      writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: w.example.com\n');
      chmodSync(path.join(dir, 'kraftwerk.yaml'), mode);
      const error = await refusal(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
      assert.match(error.message, /it is writable by (every user|the group)/);
      assert.match(error.hint ?? '', /chmod go-w/);
      await refusal(loadConfig({ plugins: builtins, cwd: dir, configPath: 'kraftwerk.yaml', knownServices }));
    }
  });

  test('a config in a folder others may write (no sticky bit) is refused; sticky is fine', async () => {
    const dir = folder('open');
    writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: o.example.com\npackage: open\n');
    chmodSync(dir, 0o777);
    const error = await refusal(loadConfig({ plugins: builtins, cwd: dir, knownServices }));
    assert.match(error.message, /its folder .* is writable by every user without the sticky bit/);
    chmodSync(dir, 0o1777);
    assert.equal((await loadConfig({ plugins: builtins, cwd: dir, knownServices })).siteName, 'open');
  });

  test('the search ends at the repository root (.git)', async () => {
    const top = folder('top');
    writeFileSync(path.join(top, 'kraftwerk.yaml'), 'domain: above.example.com\n');
    const repo = path.join(top, 'repo');
    mkdirSync(path.join(repo, '.git'), { recursive: true });
    const cwd = path.join(repo, 'src');
    mkdirSync(cwd);
    assert.deepEqual(searchFolders(cwd), [cwd, repo]);
    assert.equal(await findConfigFile(cwd), undefined);
    // A worktree's .git is a file: the same.
    rmSync(path.join(repo, '.git'), { recursive: true });
    writeFileSync(path.join(repo, '.git'), 'gitdir: /elsewhere\n');
    assert.equal(await findConfigFile(cwd), undefined);
  });

  test('the search ends at the home folder', { skip: process.getuid ? false : 'no uids here' }, async () => {
    const top = folder('top');
    writeFileSync(path.join(top, 'kraftwerk.yaml'), 'domain: above-home.example.com\n');
    const home = path.join(top, 'home');
    const cwd = path.join(home, 'project');
    mkdirSync(cwd, { recursive: true });
    const user = { uid: process.getuid!(), home };
    assert.deepEqual(searchFolders(cwd, user), [cwd, home]);
    // Without the home bound the walk would reach the config above.
    assert.ok(searchFolders(cwd, { uid: process.getuid!(), home: '/nonexistent' }).includes(top));
  });
});
