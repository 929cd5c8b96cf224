// Golden CLI output (issue 14: "`kraftwerk --help`, `plugins`, `deploy --dry-run` print what
// they printed before"). One list of cases and one normalise function, used both by
// scripts/capture-cli-output.ts (which writes test/fixtures/cli-output/) and by
// test/integration/cli-output.test.ts (which compares the checkout's output with them), so
// what is masked when capturing is exactly what is masked when comparing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';

export const fixturesDir = path.join('test', 'fixtures', 'cli-output');

/** One CLI invocation: its args and the folder it runs in (relative to the checkout, or none: an empty temp folder). */
export interface OutputCase {
  name: string;
  args: string[];
  cwd?: string;
}

export interface RunOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the built CLI of the checkout at `repo` as a user would, with a plain 80-column, colourless terminal. */
export function runCli(repo: string, args: string[], cwd?: string): RunOutput {
  const empty = cwd ? undefined : mkdtempSync(path.join(tmpdir(), 'kw-golden-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
    delete env.COLUMNS;
    const r = spawnSync(process.execPath, [path.join(repo, 'bin', 'kraftwerk.js'), ...args], {
      cwd: cwd ? path.join(repo, cwd) : empty,
      env,
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    if (empty) rmSync(empty, { recursive: true, force: true });
  }
}

/** The command names listed under `Commands:` in a help text (without `help`). */
export function subcommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1];
  if (!section) return [];
  const names: string[] = [];
  for (const line of section.split('\n')) {
    const m = /^ {2}([a-z][\w-]*)/.exec(line);
    if (m && m[1] !== 'help') names.push(m[1]);
  }
  return names;
}

/**
 * The cases: `--help`, `<cmd> --help` for every command and subcommand the checkout at `repo`
 * lists (found by walking the help texts), `plugins` and `deploy --dry-run` in both examples,
 * and `schema`. The comparing test takes its list from the fixture folder instead, so a
 * command that disappears fails there (its fixture has no output to match) as well as in the
 * top-level `--help`.
 */
export function outputCases(repo: string): OutputCase[] {
  const cases: OutputCase[] = [{ name: 'help', args: ['--help'] }];
  const walk = (prefix: string[]) => {
    const help = runCli(repo, [...prefix, '--help']).stdout;
    for (const cmd of subcommands(help)) {
      const args = [...prefix, cmd];
      cases.push({ name: `help-${args.join('-')}`, args: [...args, '--help'] });
      walk(args);
    }
  };
  walk([]);
  cases.push({ name: 'schema', args: ['schema'] });
  for (const example of ['flask-hello', 'django-site']) {
    const cwd = path.join('examples', example);
    cases.push({ name: `plugins-${example}`, args: ['plugins'], cwd });
    cases.push({ name: `deploy-dry-run-${example}`, args: ['deploy', '--dry-run', 'web1.example.invalid'], cwd });
  }
  return cases;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Masks what changes from run to run or machine to machine, and nothing else: the lock's pid,
 * times and token, the release id (the clock), the git revision of the checkout, who deploys
 * from which host, the checkout's own path, the home folder and temp paths.
 */
export function normalise(text: string, repo: string): string {
  let t = text;
  // The lock token also appears bare (the switch and the unlock grep for it).
  for (const token of new Set([...t.matchAll(/"token":"([0-9a-f]+)"/g)].map((m) => m[1]))) t = t.replaceAll(token, '<token>');
  t = t.replace(/"pid":\d+/g, '"pid":<pid>');
  t = t.replace(/"(since|time)":"[^"]*"/g, '"$1":"<time>"');
  t = t.replace(/"who":"[^"]*"/g, '"who":"<user>"');
  t = t.replace(/"host":"[^"]*"/g, '"host":"<host>"');
  t = t.replace(/"deployer":"[^"]*"/g, '"deployer":"<user>@<host>"');
  t = t.replace(/"revision":"[^"]*"/g, '"revision":"<revision>"');
  t = t.replace(/\b\d{8}T\d{6}Z\b/g, '<release>');
  // A release record (sizes follow the release id and revision) is not shown, only its size.
  t = t.replace(/\(\d+ bytes, not shown/g, '(<n> bytes, not shown');
  t = t.replaceAll(path.resolve(repo), '<repo>');
  t = t.replace(new RegExp(`${escapeRe(tmpdir())}/kw-[\\w.-]+`, 'g'), '<tmp>');
  const home = homedir();
  if (home.length > 1) t = t.replace(new RegExp(`${escapeRe(home)}(?=/|\\b)`, 'g'), '<home>');
  return t;
}

/** The text a fixture holds for one run: exit code, stdout and stderr, normalised. */
export function renderOutput(r: RunOutput, repo: string): string {
  return `exit: ${r.code}\n--- stdout\n${normalise(r.stdout, repo)}\n--- stderr\n${normalise(r.stderr, repo)}\n`;
}
