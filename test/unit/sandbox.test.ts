import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../../core/errors.ts';
import {
  ROOTFS_SPEC,
  bootScript,
  debootstrapArgv,
  knownHostsLines,
  launchArgv,
  networkUpArgvs,
  personalizeScript,
  rootfsKey,
  sandboxRootFiles,
  sshArgv,
} from '../../tools/sandbox/commands.ts';
import {
  MAX_SANDBOX_SUBNETS,
  PROXY_ADDRESS,
  allocateSubnet,
  checkSandboxName,
  sandboxNetNames,
  subnetForIndex,
  subnetIndexOf,
} from '../../tools/sandbox/naming.ts';
import { stateDirectory, updateState, readState } from '../../tools/sandbox/state.ts';

describe('sandbox names', () => {
  it('accepts hostname-like names and refuses the rest with a usage error', () => {
    for (const ok of ['sandbox', 'demo', 'a', 'e2e-1', 'x'.repeat(32)]) checkSandboxName(ok);
    for (const bad of ['', 'Demo', '1abc', 'a_b', 'a b', '-a', 'a-', 'x'.repeat(33), '../etc', 'a/b']) {
      assert.throws(() => checkSandboxName(bad), UsageError, bad);
    }
  });

  it('derives kernel names that fit the 15-character interface limit and differ per sandbox', () => {
    const a = sandboxNetNames('demo');
    const b = sandboxNetNames('demo2');
    assert.equal(a.netns, 'kw-demo');
    assert.match(a.vethHost, /^kw[0-9a-f]{6}h$/);
    assert.equal(a.vethSandbox, a.vethHost.replace(/h$/, 's'));
    assert.ok(sandboxNetNames('x'.repeat(32)).vethHost.length <= 15);
    assert.notEqual(a.vethHost, b.vethHost);
    assert.deepEqual(sandboxNetNames('demo'), a, 'stable: a leftover is found again by name');
  });
});

describe('sandbox addresses', () => {
  it('gives each sandbox its own /30: host end .1, sandbox .2', () => {
    assert.deepEqual(subnetForIndex(0), { index: 0, hostAddress: '10.213.0.1', address: '10.213.0.2', prefix: 30 });
    assert.deepEqual(subnetForIndex(1), { index: 1, hostAddress: '10.213.0.5', address: '10.213.0.6', prefix: 30 });
    assert.equal(subnetForIndex(64).address, '10.213.1.2');
    assert.equal(subnetForIndex(MAX_SANDBOX_SUBNETS - 1).address, '10.213.254.254');
    assert.throws(() => subnetForIndex(MAX_SANDBOX_SUBNETS));
  });

  it('never hands out the proxy network', () => {
    assert.equal(subnetIndexOf(PROXY_ADDRESS), undefined);
    assert.equal(subnetIndexOf('192.168.1.1'), undefined);
    assert.equal(subnetIndexOf('10.213.0.6'), 1);
  });

  it('allocates the lowest /30 free in the state and on the host', () => {
    assert.equal(allocateSubnet([], []).index, 0);
    assert.equal(allocateSubnet([0, 1], []).index, 2);
    assert.equal(allocateSubnet([0], ['10.213.0.5', '127.0.0.1']).index, 2, 'an address already on the host is skipped');
    assert.equal(allocateSubnet([1], []).index, 0, 'a freed /30 is reused');
    const all = Array.from({ length: MAX_SANDBOX_SUBNETS }, (_, i) => i);
    assert.throws(() => allocateSubnet(all, []), UsageError);
  });
});

describe('sandbox commands', () => {
  it('builds the documented debootstrap command and a cache key that follows the package list', () => {
    assert.deepEqual(debootstrapArgv(ROOTFS_SPEC, '/x'), [
      'debootstrap',
      '--variant=minbase',
      '--include=openssh-server,python3,rsync,runit,ca-certificates',
      'bookworm',
      '/x',
      'http://deb.debian.org/debian',
    ]);
    const key = rootfsKey(ROOTFS_SPEC);
    assert.match(key, /^bookworm-[0-9a-f]{12}$/);
    assert.equal(rootfsKey({ ...ROOTFS_SPEC, include: [...ROOTFS_SPEC.include].reverse() }), key, 'order does not matter');
    assert.notEqual(rootfsKey({ ...ROOTFS_SPEC, include: [...ROOTFS_SPEC.include, 'curl'] }), key);
  });

  it('sets up the network with argv arrays, the sandbox end inside its namespace', () => {
    const argvs = networkUpArgvs(sandboxNetNames('demo'), subnetForIndex(0));
    assert.deepEqual(argvs[0], ['ip', 'netns', 'add', 'kw-demo']);
    assert.ok(argvs.some((a) => a.join(' ') === 'ip -n kw-demo route add default via 10.213.0.1'));
    assert.ok(argvs.some((a) => a.join(' ') === 'ip -n kw-demo link set lo up'));
  });

  it('boots runsvdir as PID 1 inside the chroot, with every path quoted', () => {
    const script = bootScript('/var/lib/kraftwerk/sandboxes/it s/root', 'demo').text;
    assert.match(script, /^set -e && mount -t proc proc '\/var\/lib\/kraftwerk\/sandboxes\/it s\/root'\/proc/);
    assert.match(script, /exec chroot '\/var\/lib\/kraftwerk\/sandboxes\/it s\/root' \/usr\/bin\/env -i .* \/usr\/bin\/runsvdir -P \/etc\/service$/);
    assert.match(script, /hostname demo/);
    assert.deepEqual(launchArgv('kw-demo', '/b/boot.sh').slice(0, 4), ['ip', 'netns', 'exec', 'kw-demo']);
    assert.ok(launchArgv('kw-demo', '/b/boot.sh').includes('--pid'));
  });

  it('writes the sandbox identity, apt proxy and root keys into the root', () => {
    const files = sandboxRootFiles({
      name: 'demo',
      address: '10.213.0.2',
      proxyUrl: 'http://10.213.255.1:3142/',
      authorizedKeys: ['ssh-ed25519 AAAA one\n', '', 'ssh-rsa BBBB two'],
    });
    const byPath = Object.fromEntries(files.map((f) => [f.path, f]));
    assert.equal(byPath['/etc/hostname']!.content, 'demo\n');
    assert.match(byPath['/etc/hosts']!.content, /^10\.213\.0\.2\tdemo$/m);
    assert.equal(byPath['/etc/apt/apt.conf.d/01kraftwerk-proxy']!.content, 'Acquire::http::Proxy "http://10.213.255.1:3142/";\n');
    assert.match(byPath['/etc/apt/sources.list']!.content, /debian-security bookworm-security/);
    assert.equal(byPath['/root/.ssh/authorized_keys']!.content, 'ssh-ed25519 AAAA one\nssh-rsa BBBB two\n');
    assert.equal(byPath['/root/.ssh/authorized_keys']!.mode, 0o600);
    assert.match(byPath['/etc/sv/ssh/run']!.content, /exec \/usr\/sbin\/sshd -D -e/);
  });

  it('the personalize script writes exactly those files (run here in a scratch root through sh)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-sbx-'));
    try {
      const files = [
        { path: `${dir}/etc/motd`, content: "it's \"quoted\" $HOME `x`\n", mode: 0o640 },
        { path: `${dir}/a b/c`, content: '-n', mode: 0o600 },
      ];
      // The script normally runs under chroot; here absolute scratch paths stand in for the root.
      const text = personalizeScript(files)
        .text.replace('rm -rf /etc/sv/ssh', 'true')
        .replace('mkdir -p -m 700 /root/.ssh', 'true')
        .replace('ln -sfn /etc/sv/ssh /etc/service/ssh', 'true');
      const r = spawnSync('sh', ['-c', text], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(`${dir}/etc/motd`, 'utf8'), "it's \"quoted\" $HOME `x`\n");
      assert.equal(readFileSync(`${dir}/a b/c`, 'utf8'), '-n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('records host keys under the sandbox address, dropping comments', () => {
    assert.equal(
      knownHostsLines('10.213.0.2', ['ssh-ed25519 AAAAC3 root@build', '', 'ecdsa-sha2-nistp256 AAAAE2']),
      '10.213.0.2 ssh-ed25519 AAAAC3\n10.213.0.2 ecdsa-sha2-nistp256 AAAAE2\n',
    );
  });

  it('ssh keeps strict host key checking and quotes each command word', () => {
    const argv = sshArgv(
      { host: '10.213.0.2', port: 22, user: 'root', identityFiles: ['/k/id'], knownHostsFiles: ['/k/known_hosts'] },
      ['sh', '-c', 'echo $HOSTNAME; exit 3'],
    );
    assert.ok(argv.includes('StrictHostKeyChecking=yes'));
    assert.ok(argv.includes('UserKnownHostsFile=/k/known_hosts'));
    assert.ok(!argv.some((a) => /StrictHostKeyChecking=(no|accept-new)/.test(a)));
    assert.deepEqual(argv.slice(-2), ['--', "sh -c 'echo $HOSTNAME; exit 3'"]);
  });
});

describe('sandbox state', () => {
  it('lives under XDG_STATE_HOME, else ~/.local/state, else /var/lib/kraftwerk for root without a home', () => {
    assert.equal(stateDirectory({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' }), '/x/state/kraftwerk');
    assert.equal(stateDirectory({ HOME: '/home/u' }), '/home/u/.local/state/kraftwerk');
    assert.equal(stateDirectory({ HOME: '/' }), '/var/lib/kraftwerk');
  });

  it('serialises concurrent updates with its lock', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-state-'));
    const file = path.join(dir, 'sandboxes.json');
    try {
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          updateState(async (s) => {
            const n = Object.keys(s.sandboxes).length;
            await new Promise((r) => setTimeout(r, 5));
            s.sandboxes[`s${i}`] = { name: `s${i}`, subnetIndex: n } as never;
          }, file),
        ),
      );
      const state = await readState(file);
      const indices = Object.values(state.sandboxes).map((s) => s.subnetIndex).sort((a, b) => a - b);
      assert.deepEqual(indices, [0, 1, 2, 3, 4, 5, 6, 7], 'each update saw the one before');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
