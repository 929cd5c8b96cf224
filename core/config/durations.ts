import { UsageError } from '../errors.ts';

/** Parse a duration such as 30, 30s, 5m, 1h into ms (a bare number is seconds). `key` names it in the error. */
export function parseDuration(value: string | undefined, key = '--lock-wait'): number {
  if (value === undefined || value === '') return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new UsageError(`${key}: expected a duration such as 30s, 5m or 1h, found "${value}"`);
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

/** A duration for people: "800 ms", "45 s", "10 min", "1 h 30 min". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  const min = Math.round(ms / 60_000);
  return min < 120 ? `${min} min` : `${Math.floor(min / 60)} h${min % 60 ? ` ${min % 60} min` : ''}`;
}

/** The deploy timeouts of kraftwerk.yaml (`timeouts:`), in ms. */
export interface DeployTimeouts {
  releaseCommandMs: number;
  installMs: number;
  healthcheckMs: number;
  silenceMs: number;
}

export function deployTimeouts(config: { timeouts: { release_commands: string; install: string; healthcheck: string; silence: string } }): DeployTimeouts {
  const t = config.timeouts;
  return {
    releaseCommandMs: parseDuration(t.release_commands, 'timeouts.release_commands'),
    installMs: parseDuration(t.install, 'timeouts.install'),
    healthcheckMs: parseDuration(t.healthcheck, 'timeouts.healthcheck'),
    silenceMs: parseDuration(t.silence, 'timeouts.silence'),
  };
}
