/**
 * What all sandboxes share: the apt proxy (a detached process on an address
 * on the host's loopback, reachable from every sandbox through its default
 * route and stable while sandboxes come and go) and IPv4 forwarding, so
 * sandboxes reach each other. Made by the first sandbox, undone by the last.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KraftwerkError, lastLines } from '../../core/index.ts';
import { APT_PROXY_CACHE_DIR } from './commands.ts';
import { hostIPv4Addresses, signalAll, sleep, spawnDetached, startTimeOf, stopProcess, tcpAnswers } from './host.ts';
import { PROXY_ADDRESS, PROXY_PORT } from './naming.ts';
import { runLocal } from './run.ts';
import { readState, stateDirectory, updateState, type ProxyRecord, type SandboxState } from './state.ts';

const PROXY_WAIT_MS = 10_000;
/** Found again by a later run when the state file that recorded the proxy is gone. */
const PROXY_PID_FILE = '/run/kraftwerk/apt-proxy.pid';

function proxyCommand(): string[] {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Running from source (tests, `node --import tsx`): the proxy runs from source too.
    return [process.execPath, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./proxy.ts', here))];
  }
  return [process.execPath, fileURLToPath(new URL('./proxy.js', here))];
}

/**
 * Restart the apt proxy if it died while sandboxes run (called when a
 * sandbox is used as a node, so setup-node finds its apt working).
 */
export async function ensureProxyRunning(): Promise<void> {
  if (process.getuid?.() !== 0) return;
  if (proxyRunning((await readState()).proxy)) return;
  await ensureSharedNetwork();
}

function proxyRunning(p: ProxyRecord | undefined): boolean {
  return p !== undefined && startTimeOf(p.pid) === p.pidStartTime;
}

/** Make sure the proxy address, forwarding and the proxy process are there (under the state lock). */
export async function ensureSharedNetwork(): Promise<void> {
  await updateState(async (state) => {
    const addrs = await hostIPv4Addresses();
    if (!addrs.includes(PROXY_ADDRESS)) {
      await runLocal(['ip', 'addr', 'add', `${PROXY_ADDRESS}/32`, 'dev', 'lo']);
      state.proxyAddressAdded = true;
    }
    const forward = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
    if (forward !== '1') {
      await writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
      state.ipForwardBefore ??= forward;
    }
    if (proxyRunning(state.proxy)) {
      if (await tcpAnswers(PROXY_ADDRESS, PROXY_PORT, 1000)) return;
      await stopProcess(state.proxy!.pid); // alive but not answering: replace it
    }
    await stopOrphanProxy();
    state.proxy = await startProxy();
  });
}

async function startProxy(): Promise<ProxyRecord> {
  const dir = stateDirectory();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(APT_PROXY_CACHE_DIR, { recursive: true });
  const logFile = join(dir, 'apt-proxy.log');
  // One line per request: start afresh once it grows large.
  const large = await stat(logFile).then((s) => s.size > 20 * 1024 * 1024, () => false);
  const { pid, exited } = spawnDetached(
    [...proxyCommand(), '--listen', PROXY_ADDRESS, '--port', String(PROXY_PORT), '--cache', APT_PROXY_CACHE_DIR],
    logFile,
    large ? 'w' : 'a',
  );
  const deadline = Date.now() + PROXY_WAIT_MS;
  while (Date.now() < deadline && exited() === undefined && pid !== undefined) {
    if (await tcpAnswers(PROXY_ADDRESS, PROXY_PORT, 500)) {
      const pidStartTime = startTimeOf(pid) ?? '';
      await mkdir('/run/kraftwerk', { recursive: true });
      await writeFile(PROXY_PID_FILE, `${pid} ${pidStartTime}\n`);
      return { pid, pidStartTime, address: PROXY_ADDRESS, port: PROXY_PORT, log: logFile };
    }
    await sleep(100);
  }
  if (pid !== undefined && exited() === undefined) signalAll([pid], 'SIGKILL');
  const tail = lastLines((await readFile(logFile, 'utf8').catch(() => '')).trim(), 10);
  throw new KraftwerkError(`the sandbox apt proxy did not start on ${PROXY_ADDRESS}:${PROXY_PORT} (${exited() ?? 'timeout'})`, {
    hint: `Its log ${logFile}:\n${tail}`,
  });
}

/** A proxy whose state record was lost (state file removed, other HOME) still holds the port: stop it. */
async function stopOrphanProxy(): Promise<void> {
  const text = await readFile(PROXY_PID_FILE, 'utf8').catch(() => '');
  const [pid, start] = text.trim().split(' ');
  if (pid && start && startTimeOf(Number(pid)) === start) await stopProcess(Number(pid));
  await rm(PROXY_PID_FILE, { force: true });
}

/** Called under the state lock: when no sandbox is left, stop the proxy and undo host changes. */
export async function stopSharedIfUnused(state: SandboxState): Promise<void> {
  if (Object.keys(state.sandboxes).length > 0) return;
  if (state.proxy && proxyRunning(state.proxy)) await stopProcess(state.proxy.pid);
  await stopOrphanProxy();
  delete state.proxy;
  // The address is Kraftwerk's own (its private sandbox range): remove it also when it was
  // left on lo by a killed run, whose state no longer says that it added it.
  if (state.proxyAddressAdded || (await hostIPv4Addresses()).includes(PROXY_ADDRESS)) {
    await runLocal(['ip', 'addr', 'del', `${PROXY_ADDRESS}/32`, 'dev', 'lo'], { check: false });
  }
  delete state.proxyAddressAdded;
  if (state.ipForwardBefore !== undefined) {
    await writeFile('/proc/sys/net/ipv4/ip_forward', `${state.ipForwardBefore}\n`).catch(() => {});
    delete state.ipForwardBefore;
  }
}
