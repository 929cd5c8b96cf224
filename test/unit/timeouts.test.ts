import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.ts';
import { loadConfig } from '../../core/config/load.ts';
import { builtins, configSchema } from '../helpers/config.ts';
import { deployTimeouts, formatDuration } from '../../core/config/durations.ts';

describe('deploy timeouts (kraftwerk.yaml timeouts:)', () => {
  it('default to 30 min for release commands and pip, 5 min for the health check, 10 min of silence', () => {
    assert.deepEqual(deployTimeouts(configSchema.parse({ domain: 'example.com' })), {
      releaseCommandMs: 30 * 60_000,
      installMs: 30 * 60_000,
      healthcheckMs: 5 * 60_000,
      silenceMs: 10 * 60_000,
    });
  });

  it('take durations in s, m and h; a key left out keeps its default', () => {
    const t = deployTimeouts(configSchema.parse({ domain: 'example.com', timeouts: { release_commands: '90s', install: '1.5h' } }));
    assert.equal(t.releaseCommandMs, 90_000);
    assert.equal(t.installMs, 5_400_000);
    assert.equal(t.silenceMs, 10 * 60_000);
  });

  it('a value that is not a duration is refused naming the file and the key (exit 2)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-timeouts-'));
    writeFileSync(path.join(dir, 'kraftwerk.yaml'), 'domain: example.com\ntimeouts:\n  silence: ten minutes\n');
    await assert.rejects(loadConfig({ plugins: builtins, cwd: dir, knownServices: [] }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /kraftwerk\.yaml:3(:\d+)?: timeouts\.silence: expected a duration such as 90s, 30m or 2h, found the text "ten minutes"/);
      return true;
    });
  });

  it('read well in error messages', () => {
    assert.deepEqual([800, 8000, 90_000, 600_000, 5_400_000, 7_200_000].map(formatDuration), ['800 ms', '8 s', '90 s', '10 min', '90 min', '2 h']);
  });
});
