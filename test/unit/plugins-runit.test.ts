import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createHooks } from '../../core/engine/hooks.ts';
import { NodeProbe, RemoteFileSet, SetupPackages } from '../../core/engine/context.ts';
import { emptyFacts } from '../../core/lifecycle/probe.ts';
import { sh } from '../../core/shell/sh.ts';
import { TaskList } from '../../core/engine/tasks.ts';
import runitPlugin, {
  renderRunitService,
  renderRunsvdirUnit,
  runsvdirCommand,
  reloadLiveSlotCommand,
} from '../../plugins/runit/index.ts';
import { testSite } from '../helpers/site.ts';

describe('runit: service files', () => {
  it('each web slot runs uWSGI with the ini of the release it links to, in a clean environment; log/run feeds svlogd', async () => {
    const files = await renderRunitService(testSite());
    assert.deepEqual(
      files.map((f) => [f.path, f.mode]),
      [
        ['/etc/sv/kraftwerk-shop@blue/run', 0o755],
        ['/etc/sv/kraftwerk-shop@blue/log/run', 0o755],
        ['/etc/sv/kraftwerk-shop@green/run', 0o755],
        ['/etc/sv/kraftwerk-shop@green/log/run', 0o755],
      ],
    );
    const [run, log] = files;
    assert.equal(
      run!.content,
      `#!/bin/sh
# Kraftwerk: web slot blue of site shop: uWSGI for the release that
# release/ links to. Written by \`kraftwerk deploy\`; edits are overwritten.
exec 2>&1
# uWSGI starts as root so it can bind its socket in the release and hand it to
# nginx's group; it drops to kw-shop itself (uid/gid in the ini). A clean
# environment: the site's own comes from the release's envdir.
exec env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 /usr/bin/uwsgi --ini /etc/sv/kraftwerk-shop@blue/release/.kraftwerk/uwsgi.ini
`,
    );
    // svlogd runs as the site user: a `config` the site puts in its log folder runs no processor as root,
    // and root makes no folder at a log start (the folders are made at deploy time).
    assert.equal(
      log!.content,
      `#!/bin/sh
# Kraftwerk: log of web slot blue of site shop, rotated by svlogd as kw-shop. Written by \`kraftwerk deploy\`.
exec /usr/bin/chpst -u kw-shop:kw-shop svlogd -tt /var/log/kraftwerk/shop/web@blue
`,
    );
    assert.ok(files[2]!.content.includes('--ini /etc/sv/kraftwerk-shop@green/release/.kraftwerk/uwsgi.ini\n'));
    for (const f of files) assert.equal(spawnSync('sh', ['-n', '-c', f.content]).status, 0, `${f.path} is valid sh`);
  });

  it('systemd unit runs runsvdir and stops services gracefully', async () => {
    const unit = await renderRunsvdirUnit();
    assert.ok(unit.includes('\nExecStart=/usr/bin/runsvdir -P /etc/service\n'));
    assert.ok(unit.includes('\nKillSignal=SIGHUP\nKillMode=mixed\n'));
    assert.ok(unit.includes('\nWantedBy=multi-user.target\n'));
  });
});

describe('runit: commands', () => {
  it('reloads the live slot (the one whose release is current) with SIGHUP, and nothing when none is live', () => {
    const text = reloadLiveSlotCommand(testSite()).text;
    assert.ok(text.startsWith(`live=$(readlink -f /srv/shop/current 2>/dev/null || true); svc=
for kw_s in blue green; do
  if [ -n "$live" ] && [ "$(readlink -f /etc/sv/kraftwerk-shop@"$kw_s"/release 2>/dev/null)" = "$live" ]; then svc=/etc/service/kraftwerk-shop@"$kw_s"; fi
done
[ -n "$svc" ] || exit 0
`));
    // Done when the master has new workers (the app loaded again) and the socket accepts; no fixed pause.
    assert.ok(text.includes('kw_old=" $(kw_workers) "\nsv hup "$svc" >/dev/null\n'));
    assert.ok(text.includes('for kw_p in $kw_now; do case "$kw_old" in *" $kw_p "*) return 1;; esac; done'));
    assert.ok(text.includes(' /srv/shop/current/.kraftwerk/uwsgi.sock 2>/dev/null\n}'));
    assert.ok(!/sleep (?!0\.05\n)/.test(text), 'the only sleep is the poll between looks');
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
  });

  it('makes runsvdir run under systemd, sysvinit or neither', () => {
    const text = runsvdirCommand({ unitChanged: true }).text;
    assert.ok(text.startsWith('set -e\nif [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then\n  systemctl daemon-reload;'));
    assert.ok(text.includes('systemctl is-enabled --quiet kraftwerk-runsvdir.service || { systemctl enable --quiet kraftwerk-runsvdir.service;'));
    assert.ok(text.includes(`grep -q '^kw:' /etc/inittab || echo 'kw:2345:respawn:/usr/bin/runsvdir -P /etc/service' >> /etc/inittab`));
    assert.ok(text.includes('setsid /usr/bin/runsvdir -P /etc/service </dev/null >/dev/null 2>&1 &'));
    assert.ok(!runsvdirCommand({ unitChanged: false }).text.includes('daemon-reload'));
    assert.equal(spawnSync('sh', ['-n', '-c', text]).status, 0);
  });
});

const hasPython = spawnSync('python3', ['-c', 'import socket']).status === 0;

describe('runit: plugin', () => {
  it('adds runit at setup-node and the service files in configure', async () => {
    const hooks = createHooks();
    runitPlugin.apply!(hooks, testSite());
    const packages = new SetupPackages();
    const setup = new TaskList('setupNode');
    await hooks.setupNode.promise({} as never, setup as never, packages);
    assert.deepEqual(packages.names, ['runit']);
    assert.equal(setup.length, 1);
    const tasks = new TaskList<never>('configure');
    const commands: string[] = [];
    const ctx = {
      site: testSite(),
      state: new Map(),
      probe: new NodeProbe(),
      facts: emptyFacts(),
      files: new RemoteFileSet(),
      remote: { exec: async (c: { text: string }) => (commands.push(c.text), { code: 0, stdout: '', stderr: '' }) },
    };
    await hooks.configure.promise(ctx as never, tasks as never);
    for (const t of tasks.sorted()) await t.run(ctx as never, { title() {}, output() {}, skip() {} });
    assert.deepEqual(
      ctx.files.all.map((f) => f.path),
      [
        '/etc/sv/kraftwerk-shop@blue/run',
        '/etc/sv/kraftwerk-shop@blue/log/run',
        '/etc/sv/kraftwerk-shop@green/run',
        '/etc/sv/kraftwerk-shop@green/log/run',
      ],
    );
    // The slots' log folders are made at deploy time, by root, from the site's root-owned log folder.
    assert.equal(commands.length, 1);
    assert.match(commands[0]!, /\nkw_dir \/var\/log\/kraftwerk\/shop\/web@blue 0750 kraftwerk-shop@blue\nkw_dir \/var\/log\/kraftwerk\/shop\/web@green 0750 kraftwerk-shop@green\n/);
    // Its marker is written by the same command (core wrote ctx.files before this task), so the next deploy skips it.
    assert.match(commands[0]!, /\nmkdir -p \/srv\/shop\/\.kraftwerk\/provisioned && kw_mk=\$\(mktemp \/srv\/shop\/\.kraftwerk\/provisioned\/site-dirs\.XXXXXX\) && printf '%s' '[0-9a-f]{64}\n' > "\$kw_mk" && mv -f "\$kw_mk" \/srv\/shop\/\.kraftwerk\/provisioned\/site-dirs$/);
  });

  it('takes no part in a deploy after configure: the uwsgi plugin starts slots, core switches them', async () => {
    const hooks = createHooks();
    runitPlugin.apply!(hooks, testSite());
    const tasks = new TaskList<never>('restart');
    await hooks.restart.promise({} as never, tasks as never);
    assert.equal(tasks.length, 0);
  });
});
