/**
 * `kraftwerk doctor`'s judgements, without a server: versions, keys, known_hosts, the node's
 * facts (setup marker, disk, clock), every site's services as the runit plugin reads them for
 * `kraftwerk status`, the tls plugin's certificate check, the doctorChecks extension point,
 * and the lines, JSON and exit code.
 */
import { soloTopology } from '../../core/engine/topology.ts';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  clockFinding,
  doctorExitCode,
  formatDoctorLine,
  keysFinding,
  knownHostsFinding,
  nodeFactsCommand,
  nodeVersionFinding,
  parseNodeFacts,
  parseRsyncVersion,
  processesFinding,
  rsyncFinding,
  setupFinding,
  siteFindings,
  spaceFinding,
} from '../../core/cli/actions/doctor.ts';
import { collectNodeStatusParts, parseStatus } from '../../core/cli/actions/status.ts';
import { DoctorChecks, doctorResult } from '../../core/engine/doctor.ts';
import { collectFromPlugins } from '../../core/engine/registry.ts';
import { definePlugin } from '../../core/engine/plugin.ts';
import type { Remote, SshTarget } from '../../core/remote/remote.ts';
import runit from '../../plugins/runit/index.ts';
import tls from '../../plugins/tls/index.ts';
import { certificateFinding } from '../../plugins/tls/doctor.ts';
import { tlsSettings } from '../../plugins/tls/settings.ts';
import { testSite } from '../helpers/site.ts';

const GiB = 1024 * 1024; // in KiB

describe('doctor: this machine', () => {
  it('reads rsync versions and wants 3.1 or newer', () => {
    assert.deepEqual(parseRsyncVersion('rsync  version 3.2.7  protocol version 31\nCopyright'), [3, 2, 7]);
    assert.deepEqual(parseRsyncVersion('rsync  version v3.4.1  protocol version 32'), [3, 4, 1]);
    assert.equal(rsyncFinding('rsync  version 3.1.0  protocol version 31').level, 'ok');
    const old = rsyncFinding('rsync  version 2.6.9  protocol version 29');
    assert.equal(old.level, 'error');
    assert.match(old.detail, /rsync 2\.6\.9 is too old \(Kraftwerk needs 3\.1 or newer\)/);
    assert.match(old.hint!, /brew install rsync/);
    assert.equal(rsyncFinding('rsync  version 3.0.9  protocol version 30').level, 'error');
    assert.equal(rsyncFinding(undefined).detail, 'rsync is not installed on this machine');
  });

  it('wants Node.js 20 or newer', () => {
    assert.equal(nodeVersionFinding('v20.0.0').level, 'ok');
    assert.equal(nodeVersionFinding('v22.3.1').level, 'ok');
    assert.equal(nodeVersionFinding('v18.19.0').level, 'error');
  });

  it('keys: the agent or a usable key file is enough; neither fails with what was tried', () => {
    assert.equal(keysFinding({ agentSocket: '/tmp/agent', agentKeys: 2, usableFiles: [], unusable: [] }).detail, 'ssh-agent holds 2 keys');
    assert.equal(keysFinding({ usableFiles: ['/root/.ssh/id_ed25519'], unusable: [] }).level, 'ok');
    const none = keysFinding({ agentSocket: '/tmp/agent', usableFiles: [], unusable: ['/k needs a passphrase (add it to ssh-agent: ssh-add /k)'] }, 'prod');
    assert.equal(none.level, 'error');
    assert.equal(none.detail, 'no SSH key to log in to prod with; ssh-agent at /tmp/agent does not answer; /k needs a passphrase (add it to ssh-agent: ssh-add /k)');
    assert.match(none.hint!, /ssh-add/);
    assert.match(keysFinding({ agentSocket: '/a', agentKeys: 0, usableFiles: [], unusable: [] }).detail, /ssh-agent holds no key/);
  });

  it('known_hosts: a host listed holds; one never seen fails with the hint, fingerprint-free (doctor does not connect)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-doctor-kh-'));
    try {
      const file = path.join(dir, 'known_hosts');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'key')]);
      const pub = execFileSync('cat', [path.join(dir, 'key.pub')], { encoding: 'utf8' }).split(' ').slice(0, 2).join(' ');
      writeFileSync(file, `[10.0.0.2]:2222 ${pub}\n`);
      const target = (host: string, port: number): SshTarget => ({ name: 'n', host, port, user: 'root', identityFiles: [], knownHostsFiles: [file] });
      assert.equal(knownHostsFinding(target('10.0.0.2', 2222), 'n').level, 'ok');
      const unknown = knownHostsFinding(target('10.0.0.2', 22), 'stage');
      assert.equal(unknown.level, 'error');
      assert.equal(unknown.detail, `10.0.0.2 is not in known_hosts (${file}); the node was not checked`);
      assert.match(unknown.hint!, /kraftwerk --accept-new-host-key status stage \(or ssh root@10\.0\.0\.2\)/);
      assert.doesNotMatch(unknown.hint!, /SHA256/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('doctor: the node', () => {
  const facts = parseNodeFacts(
    [
      'marker {  "kraftwerk": 1,  "packages": ["nginx", "rsync"]}',
      'blocks /srv / 10485760 4194304',
      'inodes /srv / 655360 600000',
      'blocks /var / 10485760 4194304',
      'inodes /var / 655360 600000',
      'blocks /srv/shop /srv/shop 2097152 102400',
      'inodes /srv/shop /srv/shop 1000 900',
      'ntp timedatectl yes',
    ].join('\n'),
  );

  it('one read-only command gathers the marker, the space of /srv, each site folder and /var, and the NTP state', () => {
    const text = nodeFactsCommand().text;
    assert.match(text, /\/etc\/kraftwerk\/node\.json/);
    assert.match(text, /for d in \/srv \/var \/srv\/\*\/; do/);
    assert.match(text, /df -P -i/);
    assert.match(text, /timedatectl show -p NTPSynchronized --value/);
    assert.match(text, /chronyc -n tracking/);
    assert.deepEqual(
      facts.filesystems.map((f) => [f.mount, f.holds]),
      [
        ['/', ['/srv', '/var']],
        ['/srv/shop', ['/srv/shop']],
      ],
    );
    assert.deepEqual(facts.ntp, { tool: 'timedatectl', text: 'yes', synced: true });
    // A marker that is not JSON is still a marker, only an unreadable one.
    assert.equal(parseNodeFacts('marker {oops').markerUnreadable, true);
  });

  it('setup-node: the marker and its packages', () => {
    assert.equal(setupFinding(facts, [], 'n').level, 'ok');
    assert.match(setupFinding(facts, [], 'n').detail, /its 2 packages installed/);
    const gone = setupFinding(facts, ['nginx'], 'n');
    assert.equal(gone.level, 'error');
    assert.match(gone.detail, /packages are missing now: nginx/);
    const none = setupFinding(parseNodeFacts(''), [], 'stage');
    assert.equal(none.detail, 'not set up for Kraftwerk (no /etc/kraftwerk/node.json)');
    assert.equal(none.hint, 'Run: kraftwerk setup-node stage');
  });

  it('disk: fails below 1 GiB or 2 % free, warns below 10 %; inodes the same way; the thresholds are said', () => {
    const fs = (totalKiB: number, freeKiB: number, inodes = 1000, freeInodes = 500) => spaceFinding({ mount: '/', holds: ['/srv', '/var'], totalKiB, freeKiB, inodes, freeInodes });
    assert.equal(fs(100 * GiB, 50 * GiB).level, 'ok');
    assert.equal(fs(100 * GiB, 50 * GiB).detail, '/ (holds /srv, /var): 50.0 GiB free (50%), 50% of inodes free');
    assert.equal(fs(100 * GiB, 9 * GiB).level, 'warning');
    assert.match(fs(100 * GiB, 9 * GiB).detail, /getting full \(warns below 10% free\)/);
    assert.equal(fs(1000 * GiB, 15 * GiB).level, 'error');
    assert.equal(fs(4 * GiB, 0.9 * GiB).level, 'error', 'less than 1 GiB free, whatever the share');
    assert.match(fs(4 * GiB, 0.9 * GiB).detail, /too little space \(needs ≥ 1\.0 GiB and ≥ 2% free, warns below 10%\)/);
    assert.match(fs(4 * GiB, 0.9 * GiB).hint!, /kraftwerk releases/);
    assert.equal(fs(100 * GiB, 50 * GiB, 1000, 10).level, 'error');
    assert.equal(fs(100 * GiB, 50 * GiB, 1000, 50).level, 'warning');
    // btrfs and friends report no inode table: not judged.
    assert.equal(fs(100 * GiB, 50 * GiB, 0, 0).detail, '/ (holds /srv, /var): 50.0 GiB free (50%)');
  });

  it('clock: the offset less half the round trip must stay within 2 s; NTP not synchronised warns', () => {
    const at = 1_800_000_000_000;
    assert.equal(clockFinding(at / 1000 + 0.3, at, at + 200, facts.ntp).level, 'ok');
    assert.match(clockFinding(at / 1000 + 0.3, at, at + 200, facts.ntp).detail, /^0\.2 s ahead of this machine \(±0\.1 s\); NTP synchronised$/);
    const late = clockFinding(at / 1000 - 5, at, at + 200, undefined);
    assert.equal(late.level, 'error');
    assert.match(late.detail, /5\.1 s behind this machine .*no NTP tool to ask \(timedatectl, chronyc\); more than 2 s apart/);
    // A slow round trip cannot tell 3 s apart from in sync.
    assert.equal(clockFinding(at / 1000 + 3, at, at + 4000, undefined).level, 'ok');
    assert.equal(clockFinding(at / 1000, at, at + 10, { tool: 'chronyc', text: 'Not synchronised', synced: false }).level, 'warning');
    assert.equal(clockFinding(Number.NaN, at, at + 10, undefined).level, 'error');
  });

  // What `kraftwerk status` reads of a node (the runit plugin's part), fed to doctor.
  const parts = collectNodeStatusParts([runit], testSite());
  const status = (services: string[]) =>
    parseStatus(
      'n',
      ['system runsvdir running', 'site shop', 'domains shop.example', 'release 20261201T100000Z', ...services, 'site other', 'release '].join('\n'),
      parts,
    );
  const live = 'slot kraftwerk-shop@blue 20261201T100000Z';
  const spare = 'slot kraftwerk-shop@green 20261130T100000Z';

  it("services: the live web slot and every service meant to run are up; a spare that is down on purpose is fine", () => {
    const ok = siteFindings(
      status([
        'service kraftwerk-shop@blue run: /etc/service/kraftwerk-shop@blue: (pid 42) 300s; run: log: (pid 40) 300s',
        live,
        'service kraftwerk-shop@green down: /etc/service/kraftwerk-shop@green: 280s; run: log: (pid 41) 300s',
        spare,
        'service kraftwerk-shop-worker run: /etc/service/kraftwerk-shop-worker: (pid 50) 300s',
      ]),
      'n',
      testSite(),
    );
    assert.deepEqual(ok[0], { check: 'services', level: 'ok', detail: 'shop: release 20261201T100000Z; kraftwerk-shop@blue, kraftwerk-shop-worker running' });
    assert.equal(ok[1]!.level, 'warning', 'a site registered on the node but never deployed');
    assert.match(ok[1]!.detail, /^other: not deployed$/);
  });

  it('services: the live slot stopped (sv down) fails, naming the site and the command that starts it', () => {
    const [down] = siteFindings(
      status(['service kraftwerk-shop@blue down: /etc/service/kraftwerk-shop@blue: 3s, normally up; run: log: (pid 40) 300s', live]),
      'stage',
      testSite(),
    );
    assert.equal(down!.level, 'error');
    assert.equal(down!.detail, 'shop: kraftwerk-shop@blue down (normally up)');
    assert.equal(down!.hint, 'Start it on the node as root: sv up /etc/service/kraftwerk-shop@blue; why it stopped: kraftwerk logs stage');
    // A worker told down by hand is meant to run as well (no `down` file).
    const [worker] = siteFindings(status(['service kraftwerk-shop-worker down: /etc/service/kraftwerk-shop-worker: 9s, normally up']), 'n', testSite());
    assert.equal(worker!.level, 'error');
    // A live slot that the supervisor cannot read is not taken for running.
    const [unknown] = siteFindings(status(['service kraftwerk-shop@blue fail: /etc/service/kraftwerk-shop@blue: runsv not running', live]), 'n', testSite());
    assert.equal(unknown!.level, 'error');
  });

  it('processes: every node-wide process the plugins name is running', () => {
    assert.deepEqual(processesFinding(status([]), 'n'), { level: 'ok', detail: 'runsvdir running' });
    const s = status([]);
    s.system.nginx = 'stopped';
    assert.equal(processesFinding(s, 'n')!.level, 'error');
    assert.match(processesFinding(s, 'n')!.detail, /^nginx not running$/);
  });
});

describe('doctor: checks of plugins (doctorChecks)', () => {
  it('the tls plugin judges the certificate: missing, near expiry, fine', () => {
    const site = testSite({ tls: { provider: 'letsencrypt', email: 'a@shop.example' } });
    const settings = tlsSettings(site)!;
    const now = new Date('2026-12-01T00:00:00Z');
    const cert = (days: number) => ({ certbot: true, exists: true, domains: ['shop.example'], notAfter: new Date(now.getTime() + days * 86_400_000) });
    assert.equal(certificateFinding(settings, cert(80), 'n', now).level, 'ok');
    assert.match(certificateFinding(settings, cert(80), 'n', now).detail, /letsencrypt certificate for shop\.example valid until 2027-02-19 \(80 days\)/);
    assert.equal(certificateFinding(settings, cert(20), 'n', now).level, 'warning');
    assert.match(certificateFinding(settings, cert(20), 'n', now).hint!, /certbot renew/);
    assert.equal(certificateFinding(settings, cert(3), 'n', now).level, 'error');
    assert.match(certificateFinding(settings, cert(-2), 'n', now).detail, /expired on 2026-11-29/);
    const none = certificateFinding(settings, { certbot: true, exists: false, domains: [] }, 'prod', now);
    assert.equal(none.level, 'error');
    assert.match(none.hint!, /Point the DNS of every domain at prod, open port 80, then: kraftwerk deploy prod/);
    assert.equal(certificateFinding(settings, { ...cert(80), domains: ['old.example'] }, 'n', now).level, 'error');
  });

  it("are collected from the plugins that declare them, recorded as theirs; tls adds one only with tls:", () => {
    const mine = definePlugin({
      name: 'mine',
      doctorChecks: (checks) => {
        checks.node({ name: 'backups fresh', run: async () => ({ level: 'warning', detail: 'last backup 3 days ago', hint: 'kraftwerk backup' }) });
      },
    });
    const checks = collectFromPlugins([tls, mine], 'doctorChecks', new DoctorChecks(), testSite({ tls: { provider: 'self-signed' } }));
    assert.deepEqual(
      checks.nodeChecks.map((c) => [c.plugin, c.name]),
      [
        ['tls', 'certificate'],
        ['mine', 'backups fresh'],
      ],
    );
    assert.deepEqual(
      collectFromPlugins([tls], 'doctorChecks', new DoctorChecks(), testSite()).nodeChecks.map((c) => c.name),
      [],
    );
  });

  it("the tls check asks the node with the status probe's read-only command", async () => {
    const site = testSite({ tls: { provider: 'self-signed' } });
    const [check] = collectFromPlugins([tls], 'doctorChecks', new DoctorChecks(), site).nodeChecks;
    const ran: string[] = [];
    const remote = {
      dryRun: false,
      exec: async (cmd: { text: string }) => {
        ran.push(cmd.text);
        return { code: 0, stdout: 'notAfter=Feb 23 17:21:50 2099 GMT\nX509v3 Subject Alternative Name: \n    DNS:shop.example\ncert=1\n', stderr: '' };
      },
    } as unknown as Remote;
    const found = await check!.run({ site, node: 'n', remote, options: { dryRun: false, verbose: false, quiet: false }, log: { info() {}, warn() {} }, state: new Map(), topology: soloTopology('n') });
    assert.equal((found as { level: string }).level, 'ok');
    assert.match(ran[0]!, /openssl x509 -in .*fullchain\.pem -noout -enddate/);
  });
});

describe('doctor: output and exit code', () => {
  const good = doctorResult('rsync', null, { level: 'ok', detail: 'rsync 3.2.7' });
  const soon = doctorResult('disk', 'prod', { level: 'warning', detail: '/ 9% free', hint: 'free space' });
  const bad = doctorResult('services', 'prod', { level: 'error', detail: 'shop: kraftwerk-shop@blue down', hint: 'sv up …' }, 'runit');

  it('one line per check: ✔ / ! / ✖, the node, the check, what was found and, when it does not hold, what to do', () => {
    assert.equal(formatDoctorLine(good), '✔ rsync: rsync 3.2.7');
    assert.equal(formatDoctorLine(soon), '! prod: disk: / 9% free → free space');
    assert.equal(formatDoctorLine(bad), '✖ prod: services: shop: kraftwerk-shop@blue down → sv up …');
  });

  it('--json entries have stable fields: check, node, ok, level, detail, hint, plugin', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(bad)), { check: 'services', node: 'prod', ok: false, level: 'error', detail: 'shop: kraftwerk-shop@blue down', hint: 'sv up …', plugin: 'runit' });
    assert.deepEqual(JSON.parse(JSON.stringify(good)), { check: 'rsync', node: null, ok: true, level: 'ok', detail: 'rsync 3.2.7', hint: null, plugin: null });
  });

  it('exit 0 when every check holds (warnings hold), 1 otherwise', () => {
    assert.equal(doctorExitCode([good]), 0);
    assert.equal(doctorExitCode([good, soon]), 0);
    assert.equal(doctorExitCode([good, soon, bad]), 1);
  });
});
