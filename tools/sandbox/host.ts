/**
 * Small facts about and actions on the local host that the sandbox code
 * needs: processes, mounts, files, sockets. Nothing here knows sandboxes.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { runLocal } from './run.ts';

/** Removing a large root on a slow disk. */
const REMOVE_TIMEOUT_MS = 10 * 60_000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

export async function onPath(program: string): Promise<boolean> {
  for (const dir of (process.env.PATH || '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    try {
      await access(join(dir, program));
      return true;
    } catch {
      // try the next folder
    }
  }
  return false;
}

/**
 * When a process started (field 22 of /proc/<pid>/stat, clock ticks since
 * boot); undefined when it is gone or a zombie. PID plus start time names a
 * process even after its PID is reused.
 */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export async function stopProcess(pid: number): Promise<void> {
  signalAll([pid], 'SIGTERM');
  if (await waitUntil(async () => startTimeOf(pid) === undefined, 3000)) return;
  signalAll([pid], 'SIGKILL');
  await waitUntil(async () => startTimeOf(pid) === undefined, 3000);
}

export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

export function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** True when something at address:22 greets with an SSH banner. */
export function sshAnswers(address: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: 22 });
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('data', (d) => finish(d.toString('latin1').startsWith('SSH-')));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below `dir` in this (the host's) mount namespace, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(unescapeMountPath)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Remove a folder that may still have mounts below it (a killed debootstrap, a leftover): unmount, then delete without crossing file systems. */
export async function removeTree(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await runLocal(['umount', '-l', m], { check: false });
  await runLocal(['rm', '-rf', '--one-file-system', dir], { timeoutMs: REMOVE_TIMEOUT_MS });
}

export async function hostIPv4Addresses(): Promise<string[]> {
  const { stdout } = await runLocal(['ip', '-4', '-o', 'addr', 'show'], { check: false });
  return [...stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!);
}

/**
 * Start `argv` detached (it outlives this process), its output appended to `logFile`.
 * `exited()` says how it ended once it has (the caller polls while it waits for it to come up).
 */
export function spawnDetached(argv: readonly string[], logFile: string, flags: 'a' | 'w' = 'a'): { pid: number | undefined; exited(): string | undefined } {
  const log = openSync(logFile, flags, 0o600);
  let exited: string | undefined;
  try {
    const [program, ...args] = argv;
    const child = spawn(program!, args, { detached: true, stdio: ['ignore', log, log] });
    child.on('exit', (code, signal) => {
      exited = `exit ${code ?? signal}`;
    });
    child.on('error', (e) => {
      exited = e.message;
    });
    child.unref();
    return { pid: child.pid, exited: () => exited };
  } finally {
    closeSync(log);
  }
}
