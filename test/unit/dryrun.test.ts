import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { secret, sh } from '../../core/shell/sh.ts';
import { DryRunRemote } from '../../core/remote/dryrun.ts';

const target = { name: 'production', host: '203.0.113.7', port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] };

describe('DryRunRemote', () => {
  it('prints each command with secrets masked and runs nothing', async () => {
    const lines: string[] = [];
    const remote = new DryRunRemote(target, (line) => lines.push(line));
    const result = await remote.exec(sh`psql -c ${`ALTER ROLE x PASSWORD`} ${secret('hunter2')}`);
    assert.deepEqual(result, { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(lines, [`[production] $ psql -c 'ALTER ROLE x PASSWORD' ***`]);
    assert.equal(remote.commandCount, 1);
    assert.equal(remote.dryRun, true);
  });

  it('prints every file with its mode, owner and content (never a private file\'s), and reports all as changed', async () => {
    const lines: string[] = [];
    const remote = new DryRunRemote(target, (line) => lines.push(line));
    const changed = await remote.syncFiles([
      { path: '/etc/nginx/sites-available/kraftwerk-site.conf', content: 'server {\n}\n' },
      { path: '/etc/cron.d/site', content: 'x', mode: 0o755, owner: 'root' },
      { path: '/srv/site/shared/env', content: 'SECRET_KEY=hunter2\n', mode: 0o640, owner: 'root', group: 'kw-site' },
    ]);
    assert.deepEqual(changed, ['/etc/nginx/sites-available/kraftwerk-site.conf', '/etc/cron.d/site', '/srv/site/shared/env']);
    assert.deepEqual(lines, [
      '[production] write /etc/nginx/sites-available/kraftwerk-site.conf (mode 0644)',
      '  │ server {',
      '  │ }',
      '[production] write /etc/cron.d/site (mode 0755, owner root)',
      '  │ x',
      '  │ (no newline at end of file)',
      '[production] write /srv/site/shared/env (mode 0640, owner root:kw-site)',
      '  │ (19 bytes, not shown: the file is not world-readable)',
    ]);
    assert.equal(remote.commandCount, 1, 'one round trip, as on a real server');
  });

  it('shows an rsync as the task\'s output and a line of its own, copies nothing and reports no stats', async () => {
    const lines: string[] = [];
    const output: string[] = [];
    const remote = new DryRunRemote(target, (line) => lines.push(line));
    const stats = await remote.rsync({ kind: 'pull', remoteDir: '/srv/site/backups/20260101T000000Z', localDir: '/tmp/kw-test-never' }, { onLine: (l) => output.push(l) });
    assert.equal(stats, undefined);
    assert.equal(output.length, 1);
    assert.match(output[0]!, /^rsync --recursive .* root@203\.0\.113\.7:\/srv\/site\/backups\/20260101T000000Z\/ \/tmp\/kw-test-never\/$/);
    assert.deepEqual(lines, [`[dry-run] production: ${output[0]}`]);
    assert.equal(existsSync('/tmp/kw-test-never'), false, 'a dry run creates no local folder either');
  });
});
