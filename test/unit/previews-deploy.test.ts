// A preview's deploy and destroy without a server (issue 17): the real commands run for a temp
// project against a recording Remote (test/helpers/recording-remote.ts).
//   - deploy --preview --with-data deploys the site orch-feat1: the main site's dump loaded as the
//     preview's before the release commands, the dump removed, the marker written by root;
//   - a site of the preview's name that is not a preview of this project is refused before it changes;
//   - destroy --preview refuses such a site too, and removes the preview's site, never the main one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deployPreviewCommand, destroyPreviewCommand } from '../../core/cli/actions/previews.ts';
import { FakeNode, fakeNodes, installRsyncShim, orchestrationProject, quiet, RecordingKit, SITE } from '../helpers/recording-remote.ts';

const PREVIEW = `${SITE}-feat1`;
const services = 'services: [postgres, files]\nrelease:\n  - ./migrate\n';

/** A node where /srv/orch-feat1 exists, with the preview marker `marker` (or none). */
class NodeWithSite extends FakeNode {
  constructor(
    name: string,
    readonly marker: string | undefined,
  ) {
    super(name);
  }
  override answer(text: string) {
    // destroy's lock (FakeNode knows the deploy's lock of the main site only).
    if (text.includes(`mkdir /run/kraftwerk/locks/${PREVIEW} `) && !text.includes('echo ---locked---')) return { code: 0, stdout: 'acquired\n', stderr: '' };
    const res = super.answer(text);
    if (!text.includes('echo ---locked---') && !text.includes(`cat /etc/kraftwerk/sites/${PREVIEW}/preview.json`)) return res;
    // The probe's answers about the preview's folder and marker, and destroy's check.
    const exists = new RegExp(`if \\[ -e /srv/${PREVIEW} \\] \\|\\| \\[ -L /srv/${PREVIEW} \\]; then echo (e\\d+)=1`).exec(text)?.[1];
    const read = new RegExp(`then echo "(r\\d+)=\\+\\$\\(base64 -w0 < /etc/kraftwerk/sites/${PREVIEW}/preview.json\\)"`).exec(text)?.[1];
    const lines = [exists ? `${exists}=1` : '', read && this.marker ? `${read}=+${Buffer.from(this.marker).toString('base64')}` : ''].filter(Boolean);
    if (!text.includes('echo ---locked---')) return { ...res, stdout: `${this.marker ?? '-'}\nexists\n` };
    return { ...res, stdout: res.stdout.replace('---env---', `${lines.join('\n')}\n---env---`) };
  }
}

let shim: ReturnType<typeof installRsyncShim>;
before(() => {
  shim = installRsyncShim();
});
after(() => shim.restore());

const execs = (kit: RecordingKit) => kit.effects.filter((e) => e.op === 'exec').map((e) => e.text);

describe('previews through a recording Remote', () => {
  it('deploy --preview feat1 --with-data: the main site\'s data loaded as the preview\'s before the release commands', async () => {
    const fake = fakeNodes('web1');
    const kit = new RecordingKit(quiet, orchestrationProject(services), fake);
    await deployPreviewCommand(kit, 'web1', { preview: 'feat1', withData: true });
    const all = execs(kit);
    const at = (pattern: RegExp) => {
      const i = all.findIndex((t) => pattern.test(t));
      assert.ok(i >= 0, `a command matching ${pattern}`);
      return i;
    };
    const dump = at(new RegExp(`pg_dump -Fc --no-owner --dbname=${SITE} > /srv/${SITE}/backups/\\.partial-\\S+-preview/postgres\\.dump`));
    const restore = at(new RegExp(`pg_restore .*--role=kw-${PREVIEW} .*--dbname=${PREVIEW} < /srv/${SITE}/backups/\\S+-preview/postgres\\.dump`));
    const uploads = at(new RegExp(`install -d -m 2750 -o kw-${PREVIEW} -g kwn-${PREVIEW} /srv/${PREVIEW}/shared/uploads\\.load-new`));
    const removed = at(new RegExp(`rm -rf -- /srv/${SITE}/backups/\\S+-preview `));
    const migrate = at(/\.\/migrate/);
    assert.ok(dump < restore && restore < removed && uploads < removed && removed < migrate, 'dump, load, remove the dump, then the release commands');
    const written = kit.effects.filter((e) => e.op === 'syncFiles').map((e) => e.text).join('\n');
    assert.match(written, new RegExp(`write /etc/kraftwerk/sites/${PREVIEW}/preview\\.json`));
    assert.match(written, new RegExp(`write /etc/kraftwerk/sites/${PREVIEW}/domains`));
    // Nothing of the main site changes but its dump folder, made and removed again (its uploads and database are read).
    const changesMain = all.filter((t) => /\b(rm|mv|ln|install|chown|chmod|useradd|usermod|pg_restore)\b/.test(t) && new RegExp(`/srv/${SITE}(/(?!backups/)|\\s|$)`).test(t));
    assert.deepEqual(changesMain, [], 'no command changes the main site beyond its dump');
    assert.equal(fake.get('web1')!.switches.length, 1);
  });

  it('refuses a site of the preview\'s name that is not a preview of this project, before anything changes', async () => {
    for (const marker of [undefined, JSON.stringify({ of: 'other', name: 'feat1', domain: 'x', created: '2026-01-01T00:00:00Z' })]) {
      const fake = new Map([['web1', new NodeWithSite('web1', marker)]]);
      const kit = new RecordingKit(quiet, orchestrationProject(services), fake);
      await assert.rejects(deployPreviewCommand(kit, 'web1', { preview: 'feat1', withData: true }), (err: Error & { exitCode?: number }) => {
        assert.match(err.message, marker ? /is a preview of other, not of orch/ : /is a site on this node that is not a preview of orch/);
        return true;
      });
      assert.ok(!execs(kit).some((t) => /useradd|pg_dump|pg_restore/.test(t)), 'nothing was made or copied');
      assert.deepEqual(kit.effects.filter((e) => e.op === 'syncFiles'), [], 'no file was written');
      assert.ok(execs(kit).some((t) => t.includes(`rm -rf /run/kraftwerk/locks/${PREVIEW}`)), "the preview's lock is released");
    }
  });

  it('destroy --preview removes the preview\'s site only, and refuses a site that is not a preview of this project', async () => {
    const ok = new Map([['web1', new NodeWithSite('web1', JSON.stringify({ of: SITE, name: 'feat1', domain: 'feat1.orch.example.com', created: '2026-01-01T00:00:00Z' }))]]);
    const kit = new RecordingKit(quiet, orchestrationProject(services), ok);
    await destroyPreviewCommand(kit, 'web1', 'feat1', {}, 'services');
    const all = execs(kit);
    assert.ok(all.some((t) => t.includes(`rm -rf -- /srv/${PREVIEW}\n`)), 'the preview\'s folder goes');
    assert.ok(all.some((t) => t.includes(`userdel kw-${PREVIEW}`)), 'its user goes');
    assert.ok(!all.some((t) => new RegExp(`/srv/${SITE}(/|\\s|$)`).test(t)), 'no command names the main site\'s folder');

    const other = new Map([['web1', new NodeWithSite('web1', undefined)]]);
    const refusing = new RecordingKit(quiet, orchestrationProject(services), other);
    await assert.rejects(destroyPreviewCommand(refusing, 'web1', 'feat1', {}, 'services'), /not a preview of orch/);
    assert.ok(!execs(refusing).some((t) => /rm -rf -- \/srv\/|userdel|DROP/.test(t)), 'nothing was removed');
  });

  it('a bad NAME, --with-data without --preview, destroy --preview --keep-data: usage errors before any connection', async () => {
    const kit = new RecordingKit(quiet, orchestrationProject(services), fakeNodes('web1'));
    await assert.rejects(deployPreviewCommand(kit, 'web1', { preview: 'Feat_1' }), (err: Error & { exitCode?: number }) => err.exitCode === 2 && /^--preview "Feat_1"/.test(err.message));
    await assert.rejects(deployPreviewCommand(kit, 'web1', { withData: true }), /--with-data works with --preview NAME only/);
    await assert.rejects(destroyPreviewCommand(kit, 'web1', 'feat1', { keepData: true }, 'services'), /--keep-data does not go with --preview/);
    assert.deepEqual(kit.connected, []);
  });
});
