/**
 * The sandbox state file: which sandboxes exist, their addresses, processes,
 * network names and keys, and the shared apt proxy. Every change happens under
 * a lock so several `sandbox up`/`down` (or e2e test files) can run at once.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KraftwerkError } from '../../core/index.ts';

export interface SandboxRecord {
  name: string;
  /** 'creating' from the moment the address is reserved until sshd answers. */
  status: 'creating' | 'up';
  address: string;
  hostAddress: string;
  subnetIndex: number;
  netns: string;
  vethHost: string;
  vethSandbox: string;
  /** Folder holding the root file system (`<dir>/root`), removed on down. */
  dir: string;
  root: string;
  /** Per-sandbox files under the state dir: key pair, known_hosts, console log. */
  stateDir: string;
  keyFile: string;
  knownHostsFile: string;
  consoleLog: string;
  /** Host PID of the sandbox's PID 1 (runsvdir) and its start time, to survive PID reuse. */
  pid?: number;
  pidStartTime?: string;
  snapshot?: string;
  /** The unpacked cached root the sandbox's root is an overlay on; absent when it was unpacked into `root`. */
  lower?: string;
  createdAt: string;
  /** PID of the process creating the sandbox, while status is 'creating'. */
  creatorPid?: number;
}

export interface ProxyRecord {
  pid: number;
  pidStartTime: string;
  address: string;
  port: number;
  log: string;
}

export interface SandboxState {
  version: 1;
  sandboxes: Record<string, SandboxRecord>;
  proxy?: ProxyRecord;
  /** Value of net.ipv4.ip_forward before the first sandbox turned it on (restored by the last). */
  ipForwardBefore?: string;
  /** The proxy address was added to `lo` by us (removed with the last sandbox). */
  proxyAddressAdded?: boolean;
}

/**
 * `$XDG_STATE_HOME/kraftwerk`, else `~/.local/state/kraftwerk`; root without
 * a home (system services, some CI runners) uses /var/lib/kraftwerk.
 */
export function stateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'kraftwerk');
  const home = env.HOME || safeHomedir();
  if (!home || home === '/') return '/var/lib/kraftwerk';
  return join(home, '.local', 'state', 'kraftwerk');
}

function safeHomedir(): string {
  try {
    return homedir();
  } catch {
    return '';
  }
}

export function stateFile(dir = stateDirectory()): string {
  return join(dir, 'sandboxes.json');
}

/** Per-sandbox files (keys, known_hosts, console log). */
export function sandboxStateDir(name: string, dir = stateDirectory()): string {
  return join(dir, 'sandboxes', name);
}

export async function readState(file = stateFile()): Promise<SandboxState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, sandboxes: {} };
    throw e;
  }
  try {
    const parsed = JSON.parse(text) as SandboxState;
    if (parsed?.version !== 1 || typeof parsed.sandboxes !== 'object') throw new Error('unknown format');
    return parsed;
  } catch (e) {
    throw new KraftwerkError(`sandbox state file ${file} is unreadable: ${(e as Error).message}`, {
      hint: `Remove sandboxes with "kraftwerk sandbox down --all" (it also finds leftovers), then delete ${file}.`,
    });
  }
}

async function writeState(state: SandboxState, file: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/**
 * Read, change and write the state under the lock. `change` may return a
 * value; the state is written only when it returns normally.
 */
export async function updateState<T>(
  change: (state: SandboxState) => T | Promise<T>,
  file = stateFile(),
): Promise<T> {
  await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
  return withLock(`${file}.lock`, 30_000, async () => {
    const state = await readState(file);
    const result = await change(state);
    await writeState(state, file);
    return result;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True when a process with this PID exists (EPERM means it exists but is not ours). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock folder holding the owner's PID. A lock whose owner died (a killed
 * CLI) is taken over; waiting is bounded by `timeoutMs`.
 */
export async function withLock<T>(lockDir: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const ownerFile = join(lockDir, 'pid');
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(ownerFile, String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await lockIsStale(lockDir, ownerFile)) {
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new KraftwerkError(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for the lock ${lockDir}`, {
        hint: 'Another kraftwerk sandbox command is running; wait for it, or remove the folder if no such command runs.',
      });
    }
    await sleep(100);
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function lockIsStale(lockDir: string, ownerFile: string): Promise<boolean> {
  try {
    const pid = Number((await readFile(ownerFile, 'utf8')).trim());
    return !(pid > 0 && processExists(pid));
  } catch {
    // No owner written yet: either being taken right now, or its taker died in between.
    try {
      return Date.now() - (await stat(lockDir)).mtimeMs > 10_000;
    } catch {
      return false;
    }
  }
}
