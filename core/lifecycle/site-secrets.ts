/**
 * `secrets:` in kraftwerk.yaml: variables whose value a command on the deploying
 * machine prints (`op read …`, `pass show …`, `vault kv get -field=… …`). The
 * commands run here, never on a node, once per CLI invocation; the values live
 * only in this process (as Secrets, so every printed text masks them) and reach
 * the node only inside the site's environment files, through the file writer's
 * stdin: never in argv, never on this machine's disk.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { KraftwerkError, lastLines } from '../errors.ts';
import type { Site } from '../config/site.ts';
import { maskSecrets, Secret } from '../shell/sh.ts';

/** The values of `secrets:`, by variable name. */
export type SecretValues = Record<string, Secret>;

/** How long one command may take (a password manager may ask to be unlocked) before the deploy gives up. */
export const SECRET_COMMAND_TIMEOUT_MS = 60_000;
/** More output than this is not a variable's value. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

// One run per Site, that is per CLI invocation: every node of a group, the
// undo and the rollback of the same command use the values of the first run.
const resolved = new WeakMap<Site, Promise<SecretValues>>();

/**
 * The values of the site's `secrets:`, each command run once per invocation
 * (the first call runs them one after the other: a password manager may ask
 * for an unlock once, not once per command at the same time). A failing
 * command rejects every call with the same error.
 */
export function resolveSecrets(site: Site, options: { timeoutMs?: number } = {}): Promise<SecretValues> {
  let values = resolved.get(site);
  if (!values) {
    values = runAll(site, options.timeoutMs ?? SECRET_COMMAND_TIMEOUT_MS);
    // A failure is kept too; a rejection nobody waits for yet must not end the process.
    values.catch(() => undefined);
    resolved.set(site, values);
  }
  return values;
}

/** True when the site has `secrets:` (callers skip the step otherwise). */
export function hasSecrets(site: Site): boolean {
  return Object.keys(site.config.secrets).length > 0;
}

async function runAll(site: Site, timeoutMs: number): Promise<SecretValues> {
  const values: SecretValues = {};
  const cwd = path.dirname(site.configFile);
  for (const [name, command] of Object.entries(site.config.secrets)) values[name] = await runSecretCommand(name, command, { cwd, timeoutMs });
  return values;
}

/** A `secrets:` command failed; the message names the variable and the command, never a value. */
export class SecretCommandError extends KraftwerkError {}

/**
 * Run one command with `sh -c` here, stdin closed (nothing may wait for input), in its
 * own process group (a timeout kills everything it started). Its stdout, one trailing
 * newline removed, is the value; exit ≠ 0, no output or the timeout is an error.
 */
export function runSecretCommand(name: string, command: string, options: { cwd: string; timeoutMs: number }): Promise<Secret> {
  const where = `secrets.${name}: the command \`${command}\``;
  const hint = `Run it yourself to see why (${command}); nothing was changed on any node.`;
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let why: string | undefined;
    const kill = (reason: string) => {
      why ??= reason;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => kill(`did not finish within ${Math.round(options.timeoutMs / 1000)} s and was stopped`), options.timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_OUTPUT_BYTES) kill(`printed more than ${MAX_OUTPUT_BYTES} bytes`);
      else out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      err.push(d);
      while (err.length > 1 && Buffer.concat(err).length > 64 * 1024) err.shift();
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new SecretCommandError(`${where} could not be started: ${e.message}`, { hint }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      // What the command printed to stdout is (part of) the value: it never shows, even in its own error output.
      let stderr = lastLines(Buffer.concat(err).toString('utf8').trim(), 5);
      for (const piece of stdout.split('\n').filter((l) => l.trim().length >= 4)) stderr = stderr.split(piece.trim()).join('***');
      stderr = maskSecrets(stderr);
      const tail = stderr ? `\n  ${stderr.split('\n').join('\n  ')}` : '';
      const value = stdout.replace(/\r?\n$/, '');
      if (why) return reject(new SecretCommandError(`${where} ${why}${tail}`, { hint }));
      if (code !== 0) return reject(new SecretCommandError(`${where} failed (exit ${code ?? signal})${tail}`, { hint }));
      if (value === '') return reject(new SecretCommandError(`${where} printed nothing: ${name} would be empty${tail}`, { hint }));
      if (value.includes('\0')) return reject(new SecretCommandError(`${where} printed a NUL byte, which no environment can hold`, { hint }));
      resolve(new Secret(value));
    });
  });
}
