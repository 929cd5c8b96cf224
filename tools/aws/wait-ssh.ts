import { connect } from 'node:net';

/**
 * Waits until an SSH server answers on host:port: a TCP connection that sends
 * an "SSH-" banner line. Each attempt is bounded by `attemptMs`, the whole wait
 * by `timeoutMs`. Returns the banner (e.g. "SSH-2.0-OpenSSH_9.2p1 Debian-2").
 */
export async function waitForSsh(
  host: string,
  port: number,
  options: { timeoutMs: number; attemptMs?: number; intervalMs?: number; onAttempt?: (n: number, why: string) => void },
): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  const attemptMs = options.attemptMs ?? 5000;
  const intervalMs = options.intervalMs ?? 3000;
  let lastError = 'no answer';
  for (let attempt = 1; Date.now() < deadline; attempt++) {
    try {
      return await readBanner(host, port, Math.min(attemptMs, Math.max(1, deadline - Date.now())));
    } catch (e) {
      lastError = (e as Error).message;
      options.onAttempt?.(attempt, lastError);
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  }
  throw new Error(`SSH on ${host}:${port} did not answer within ${Math.round(options.timeoutMs / 1000)}s (${lastError})`);
}

/** One attempt: connect, read the first line, check that it is an SSH banner. */
export function readBanner(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let buffer = '';
    const done = (err: Error | undefined, banner?: string) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(banner!);
    };
    const timer = setTimeout(() => done(new Error(`no SSH banner within ${timeoutMs}ms`)), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      // RFC 4253 lets a server send other lines before the banner; the banner starts with "SSH-".
      for (const line of buffer.split('\n').slice(0, -1)) {
        if (line.startsWith('SSH-')) return done(undefined, line.replace(/\r$/, ''));
      }
      if (buffer.length > 8192) done(new Error('the server sent no SSH banner'));
    });
    socket.on('error', (e) => done(e));
    socket.on('close', () => done(new Error('connection closed before an SSH banner')));
  });
}
