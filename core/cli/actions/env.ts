/**
 * `kraftwerk env [node]`, `env set K=V …`, `env unset K …`: the site's
 * environment as it is on the server. Values set here live in shared/env.local
 * (never in kraftwerk.yaml), override plugins and `environ:`, and survive
 * deploys. A change rewrites the live release's environment and reloads the site gracefully through
 * the `reload` hook. Values are masked everywhere unless --show.
 */
import type { ReloadContext } from '../../engine/context.ts';
import { RemoteFileSet } from '../../engine/context.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDotenv, renderDotenv, renderEnvFile } from '../../shell/env-file.ts';
import { UsageError } from '../../errors.ts';
import { collectTasks } from '../../engine/hooks.ts';
import type { CoreKit } from '../kit.ts';
import type { DeployLock } from '../../lifecycle/lock.ts';
import type { Project } from '../../engine/plugin.ts';
import { prepareSiteCommand } from '../../lifecycle/site-folders.ts';
import type { RunnableTask } from '../../engine/runner.ts';
import { quote, sh } from '../../shell/sh.ts';
import { computeSiteEnvironment, type EnvSource, readSiteEnvScript, splitSiteEnvOutput } from '../../lifecycle/site-environment.ts';
import { resolveSecrets } from '../../lifecycle/site-secrets.ts';
import type { Site } from '../../config/site.ts';
import { Stage } from '../../engine/tasks.ts';
import type { RemoteFile } from '../../remote/remote.ts';
import { syncAndRecord } from '../../remote/syncfiles.ts';
import { applyPlugins } from './deploy.ts';
import { commandTopology, connect, connectTask, nodeContext, nodesOf, takeSiteLock } from './ops.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MASK = '***';

export interface ServerEnv {
  /** current/.kraftwerk/env: what the site runs with. */
  env: Record<string, string>;
  /** shared/env.local: what `env set` stored. */
  local: Record<string, string>;
  /** The site has a live release. */
  deployed: boolean;
  /** /srv/<site>/shared exists. */
  prepared: boolean;
}

export function readEnvCommand(site: Site) {
  return sh`test -d ${`${site.paths.current}/`} && echo deployed=1
test -d ${site.paths.shared} && echo prepared=1
${readSiteEnvScript(site)}`;
}

export function parseEnvOutput(output: string): ServerEnv {
  const { head, env, local } = splitSiteEnvOutput(output);
  return { deployed: /^deployed=1$/m.test(head), prepared: /^prepared=1$/m.test(head), env, local };
}

/** `K=V` words from the command line; a value may contain `=` and be empty. */
export function parseAssignments(words: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    const name = eq < 0 ? word : word.slice(0, eq);
    if (eq < 0 || !ENV_NAME.test(name)) {
      throw new UsageError(`${JSON.stringify(word)} is not NAME=value`, {
        hint: 'Names are letters, digits and _ (not starting with a digit): kraftwerk env set SECRET_KEY (the value is read from stdin)',
      });
    }
    const value = word.slice(eq + 1);
    if (value.includes('\0')) throw new UsageError(`the value of ${name} contains a NUL byte`);
    out[name] = value;
  }
  return out;
}

/** What `env set` was asked to set, and where each value comes from. */
export interface SetRequest {
  /** NAME=value words (the values were visible in argv). */
  assignments: Record<string, string>;
  /** A NAME without `=`: its value is read from stdin. */
  fromStdin?: string;
}

/** The words after the node: NAME=value …, or one NAME alone (value from stdin). */
export function parseSetWords(words: readonly string[], options: { fromFile?: boolean } = {}): SetRequest {
  const bare = words.filter((w) => !w.includes('='));
  if (bare.length === 1 && words.length === 1 && !options.fromFile) {
    if (!ENV_NAME.test(bare[0]!)) throw new UsageError(`${JSON.stringify(bare[0])} is not a variable name`);
    return { assignments: {}, fromStdin: bare[0] };
  }
  if (bare.length) {
    throw new UsageError(`${JSON.stringify(bare[0])} has no =value`, {
      hint: 'Give one NAME alone to read its value from stdin (kraftwerk env set [node] NAME), or NAME=value words, or --from-file .env',
    });
  }
  const assignments = parseAssignments(words);
  if (!Object.keys(assignments).length && !options.fromFile) {
    throw new UsageError('nothing to set', { hint: 'kraftwerk env set [node] NAME (value from stdin), or --from-file .env' });
  }
  return { assignments };
}

/** The warning for values given on the command line. */
export function argvWarning(names: readonly string[]): string {
  return (
    `the value of ${names.join(', ')} was given on the command line, where other local users can read it (ps, /proc) ` +
    'and your shell history keeps it; next time: kraftwerk env set NAME (reads the value from stdin) or --from-file .env'
  );
}

/** A dotenv file (syntax: parseDotenv), every problem reported with file and line. */
export function readDotenvFile(cwd: string, file: string): Record<string, string> {
  const full = path.resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  const { vars, problems } = parseDotenv(text);
  if (problems.length) {
    throw new UsageError(problems.map((p) => `${file}:${p.line}: ${p.problem}`).join('\n'), {
      hint: 'One NAME=value per line; values may be quoted with \' or "; # starts a comment (see kraftwerk env set --help).',
    });
  }
  if (!Object.keys(vars).length) throw new UsageError(`${file} sets no variables`);
  return vars;
}

/**
 * The value of `name` from stdin: typed at a terminal without echo, or piped
 * (`pass show x | kraftwerk env set NAME`; one trailing newline is dropped).
 */
export async function readValueFromStdin(name: string, stdin: NodeJS.ReadStream = process.stdin, prompt: NodeJS.WriteStream = process.stderr): Promise<string> {
  const value = stdin.isTTY ? await readHidden(`Value for ${name} (not shown): `, stdin, prompt) : (await readAll(stdin)).replace(/\r?\n$/, '');
  if (value === '') {
    throw new UsageError(`no value for ${name} on stdin`, { hint: `Pipe it in (… | kraftwerk env set ${name}), or set an empty value with ${name}=` });
  }
  if (value.includes('\0')) throw new UsageError(`the value of ${name} contains a NUL byte`);
  return value;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString('utf8');
}

/** One line typed at the terminal, echoed as nothing (raw mode: no echo, we see each key). */
function readHidden(question: string, stdin: NodeJS.ReadStream, out: NodeJS.WriteStream): Promise<string> {
  return new Promise((resolve, reject) => {
    out.write(question);
    let value = '';
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      out.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new UsageError('cancelled', { hint: 'Nothing was changed.' }));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

export function checkNames(names: readonly string[]): string[] {
  if (!names.length) throw new UsageError('nothing to unset', { hint: 'kraftwerk env unset NAME … [--node NODE]' });
  for (const n of names) if (!ENV_NAME.test(n)) throw new UsageError(`${JSON.stringify(n)} is not a variable name`);
  return [...names];
}

/**
 * A leading word names the node. For set: a word without `=` followed by more
 * words (a NAME read from stdin must be alone), or the only word with
 * --from-file. For unset: a node from kraftwerk.yaml, or a word that cannot be
 * a variable name (a sandbox `my-stage`), followed by more words (`FOO` could
 * be either; config wins). --node names it otherwise.
 */
export function splitNodeArg(
  project: Project,
  words: readonly string[],
  kind: 'set' | 'unset',
  nodeOption?: string,
  options: { fromFile?: boolean } = {},
): { node?: string; rest: string[] } {
  if (nodeOption) return { node: nodeOption, rest: [...words] };
  const [first, ...rest] = words;
  if (first === undefined) return { rest: [] };
  const isNode =
    kind === 'set'
      ? !first.includes('=') && (rest.length > 0 || options.fromFile === true)
      : (first in project.site.config.nodes || !ENV_NAME.test(first)) && rest.length > 0;
  return isNode ? { node: first, rest } : { rest: [...words] };
}

function describeSource(source: EnvSource | undefined): string {
  if (!source) return 'set at the last deploy';
  if (source.kind === 'local') return 'kraftwerk env set';
  if (source.kind === 'environ') return 'kraftwerk.yaml environ';
  if (source.kind === 'secret') return 'kraftwerk.yaml secrets (its command, at the last deploy)';
  return `plugin ${source.plugin}`;
}

/** The lines `kraftwerk env` prints: NAME=value (masked unless show), with where each comes from. */
export function formatEnv(env: Record<string, string>, sources: Record<string, EnvSource>, show: boolean): string[] {
  const names = Object.keys(env).sort();
  const width = Math.max(0, ...names.map((n) => n.length + 1 + (show ? quote(env[n]!).length : MASK.length)));
  return names.map((n) => {
    const left = `${n}=${show ? quote(env[n]!) : MASK}`;
    return `${left.padEnd(width)}  # ${describeSource(sources[n])}`;
  });
}

export async function envShowCommand(kit: CoreKit, nodeArg: string | undefined, options: { show?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const { site } = project;
  const { hooks } = applyPlugins(project);
  const nodes = nodesOf(project, nodeArg);
  const topology = await commandTopology(kit, project, nodes);
  for (const node of nodes) {
    const remote = await connect(kit, project, node);
    const { stdout } = await remote.exec(readEnvCommand(site), { secretOutput: true });
    const server = parseEnvOutput(stdout);
    // Only where each variable comes from: the values listed are the node's, so `secrets:` commands need not run.
    const { sources } = await computeSiteEnvironment(hooks, site, { node, topology: topology.get(node)! }, server.env, server.local, {});
    const lines = formatEnv(server.env, sources, options.show ?? false);
    if (nodes.length > 1 || !server.deployed) {
      process.stdout.write(`# ${node}: ${server.deployed ? `${lines.length} variables` : `${site.name} is not deployed here yet`}\n`);
    }
    if (!server.deployed && Object.keys(server.local).length) {
      process.stdout.write(`# set with kraftwerk env set, used from the first deploy: ${Object.keys(server.local).sort().join(', ')}\n`);
    }
    if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
    if (!options.show && lines.length && nodes.at(-1) === node) process.stderr.write('(values hidden: add --show to print them)\n');
  }
}

/**
 * `kraftwerk env pull [node]`: what `env set` stored on the node (shared/env.local), as a
 * dotenv file that `env set --from-file` reads back; values masked unless `reveal`. The
 * values come through the command's stdout (never argv, here or on the node).
 */
export function formatPulled(local: Record<string, string>, reveal: boolean): string {
  return renderDotenv(reveal ? local : Object.fromEntries(Object.keys(local).map((k) => [k, MASK])));
}

export async function envPullCommand(kit: CoreKit, nodeArg: string | undefined, options: { reveal?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const { site } = project;
  const nodes = nodesOf(project, nodeArg);
  for (const node of nodes) {
    const remote = await connect(kit, project, node);
    const { stdout } = await remote.exec(readEnvCommand(site), { secretOutput: true });
    const { local } = parseEnvOutput(stdout);
    const names = Object.keys(local);
    if (nodes.length > 1) process.stdout.write(`# ${node}\n`);
    if (!names.length) process.stderr.write(`(${node}: no variables set with kraftwerk env set for ${site.name})\n`);
    process.stdout.write(formatPulled(local, options.reveal ?? false));
    if (!options.reveal && names.length && nodes.at(-1) === node) process.stderr.write('(values hidden: add --reveal to print them)\n');
  }
}

/** In a dry run the files are printed: print their values masked, as everything else. */
function maskedFile(file: RemoteFile, vars: Record<string, string>): RemoteFile {
  return { ...file, content: renderEnvFile(Object.fromEntries(Object.keys(vars).map((k) => [k, MASK]))) };
}

export interface EnvChange {
  set?: Record<string, string>;
  unset?: string[];
}

/** Apply a change to every node of the group: env.local, shared/env, then the plugins' reload tasks. */
export async function envChangeCommand(kit: CoreKit, nodeArg: string | undefined, change: EnvChange): Promise<void> {
  const project = await kit.loadProject();
  const { site } = project;
  const { hooks } = applyPlugins(project);
  const nodes = nodesOf(project, nodeArg);
  const names = [...Object.keys(change.set ?? {}), ...(change.unset ?? [])];
  const what = change.set ? `set ${Object.keys(change.set).join(', ')}` : `unset ${names.join(', ')}`;

  const topology = await commandTopology(kit, project, nodes);
  for (const node of nodes) {
    const ctx: ReloadContext = { ...nodeContext(kit, site, node, undefined, topology.get(node)), env: {}, previousEnv: {}, files: new RemoteFileSet() };
    const state = { server: undefined as ServerEnv | undefined, lock: undefined as DeployLock | undefined };
    const reloadTasks = (await collectTasks(hooks.reload, 'reload', ctx)).sorted().map(
      (t): RunnableTask<ReloadContext> => ({
        ...t,
        skip: async (c) => (state.server?.deployed === false ? 'not deployed yet: used from the first deploy' : (t.skip?.(c) ?? false)),
      }),
    );
    const core: RunnableTask<ReloadContext>[] = [
      connectTask<ReloadContext>(kit, project),
      {
        title: 'read environment',
        stage: Stage.PREPARE - 100,
        run: async (c, task) => {
          // The live environment is rewritten with the `secrets:` values: their commands run before the lock.
          await resolveSecrets(site);
          state.lock = await takeSiteLock(c, task, `env ${what}`);
          const { stdout } = await c.remote.exec(readEnvCommand(site), { secretOutput: true });
          state.server = parseEnvOutput(stdout);
          if (c.remote.dryRun) state.server.deployed = true;
        },
      },
      {
        title: what,
        stage: Stage.PREPARE,
        run: async (c, task) => {
          const server = state.server!;
          const local = { ...server.local, ...(change.set ?? {}) };
          const notLocal: string[] = [];
          for (const n of change.unset ?? []) {
            if (n in local) delete local[n];
            else notLocal.push(n);
          }
          const { vars, sources, envFile: envContent } = await computeSiteEnvironment(hooks, site, c, server.env, local, await resolveSecrets(site));
          for (const n of notLocal) {
            if (n in vars) c.log.warn(`${node}: ${n} comes from ${describeSource(sources[n])}, not from kraftwerk env set; it stays`);
          }
          if (!server.prepared) await c.remote.exec(prepareSiteCommand(site));
          c.env = vars;
          (c as { previousEnv: Record<string, string> }).previousEnv = server.env;
          const localFile: RemoteFile = { path: site.paths.envLocal, content: renderEnvFile(local), mode: 0o640, owner: 'root', group: site.user };
          const envFile: RemoteFile = { path: site.paths.env, content: envContent, mode: 0o640, owner: 'root', group: site.user };
          c.files.add(c.remote.dryRun ? maskedFile(localFile, local) : localFile);
          // Before the first deploy only env.local is written: the deploy writes the release's environment.
          if (server.deployed) c.files.add(c.remote.dryRun ? maskedFile(envFile, vars) : envFile);
        },
      },
      {
        title: 'write environment',
        stage: Stage.WRITE_FILES,
        run: async (c, task) => {
          const files = c.files.all;
          const changed = await syncAndRecord(c, files);
          task.title(`write environment (${changed.length} of ${files.length} files changed)`);
        },
      },
    ];
    try {
      await kit.runTasks([{ title: `${site.name} on ${node}: ${what}`, tasks: [...core, ...reloadTasks].sort((a, b) => (a.stage ?? 0) - (b.stage ?? 0)), node }], ctx);
    } finally {
      await state.lock?.release().catch(() => undefined);
    }
  }
}

