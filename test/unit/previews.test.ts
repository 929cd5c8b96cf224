/**
 * Previews (issue 17): what a preview NAME may be, the site name and domain it
 * gives, the preview's Site (everything named after its own name, nothing of
 * the main site's aliases), and reading the markers a node has.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../core/errors.ts';
import { previewNames, previewSite } from '../../core/config/preview.ts';
import { formatAge, listPreviewsCommand, parsePreviewList, previewConflict, previewMarkerContent, previewMarkerPath } from '../../core/lifecycle/preview.ts';
import { configSchema } from '../helpers/config.ts';
import { testSite } from '../helpers/site.ts';

const refused = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `a usage error (exit 2), not ${String(err)}`);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /^--preview /, 'the error names --preview');
    assert.match(err.message, pattern);
    assert.match(err.hint ?? '', /Nothing was changed/);
    return true;
  });

describe('preview names', () => {
  const site = testSite({ domain: ['www.shop.example', 'shop.example'], aliases: ['shop.old.example'] });

  it('<site>-<NAME> at NAME.<canonical domain>', () => {
    assert.deepEqual(previewNames(site, 'feat1'), { name: 'feat1', siteName: 'shop-feat1', domain: 'feat1.www.shop.example' });
  });

  it('NAME.<preview_domain> when preview_domain is set', () => {
    const withDomain = testSite({ preview_domain: 'previews.shop.example' });
    assert.equal(previewNames(withDomain, 'feat1').domain, 'feat1.previews.shop.example');
  });

  it('a NAME is one lower-case DNS label', () => {
    for (const bad of ['Feat1', 'feat_1', 'feat.1', '-feat', 'feat-', '', 'a b', 'feat/1', `x\n`, 'ä']) {
      refused(() => previewNames(site, bad), /one DNS label/);
    }
    assert.equal(previewNames(site, '1st').siteName, 'shop-1st', 'a label may start with a digit: the site name starts with the site');
  });

  it('the site name stays within 28 characters, and the error says how long NAME may be', () => {
    assert.equal(previewNames(site, 'a'.repeat(23)).siteName.length, 28);
    refused(() => previewNames(site, 'a'.repeat(24)), /longer than 28 characters/);
    assert.throws(() => previewNames(site, 'a'.repeat(24)), (e: UsageError) => /at most 23 characters/.test(e.hint ?? ''));
    const long = testSite({}, 'a'.repeat(27));
    assert.throws(() => previewNames(long, 'x'), (e: UsageError) => /no room for a preview name/.test(e.hint ?? ''));
  });

  it("a name reserved by a plugin is refused (e.g. a database's own)", () => {
    refused(() => previewNames(site, 'feat1', [(n) => (n === 'shop-feat1' ? `"${n}" is reserved: a test` : undefined)]), /reserved: a test/);
  });

  it("a preview can't be named under a wildcard canonical domain, or take one of the site's own domains", () => {
    refused(() => previewNames(testSite({ domain: '*.shop.example' }), 'feat1'), /wildcard/);
    refused(() => previewNames(testSite({ domain: 'shop.example', aliases: ['www.shop.example'] }), 'www'), /a domain of the site shop itself/);
  });

  it('preview_domain is a host name without a wildcard', () => {
    assert.throws(() => configSchema.parse({ domain: 'shop.example', preview_domain: '*.previews.shop.example' }));
    assert.throws(() => configSchema.parse({ domain: 'shop.example', preview_domain: 'previews shop' }));
  });
});

describe("a preview's Site", () => {
  const main = testSite({ domain: 'shop.example', aliases: ['www.shop.example'], environ: { A: '1' }, tls: { email: 'ops@shop.example' } });
  const preview = previewSite(main, previewNames(main, 'feat1'));

  it('is named after its own name everywhere: user, folders, services', () => {
    assert.equal(preview.name, 'shop-feat1');
    assert.equal(preview.user, 'kw-shop-feat1');
    assert.equal(preview.paths.root, '/srv/shop-feat1');
    assert.equal(preview.paths.logs, '/var/log/kraftwerk/shop-feat1');
    assert.equal(preview.service, 'kraftwerk-shop-feat1');
    assert.deepEqual(preview.preview, { of: 'shop', name: 'feat1' });
    assert.equal(main.preview, undefined);
  });

  it('answers at its one domain; the main site\'s aliases are not copied', () => {
    assert.deepEqual(preview.domains, ['feat1.shop.example']);
    assert.equal(preview.canonicalDomain, 'feat1.shop.example');
    assert.deepEqual(preview.aliases, []);
  });

  it("keeps the project's WSGI module (its default follows the site name), code, environment and plugin settings", () => {
    assert.deepEqual(preview.wsgi, main.wsgi);
    assert.equal(preview.wsgi.module, 'shop.wsgi');
    assert.equal(preview.sourceDir, main.sourceDir);
    assert.deepEqual(preview.config.environ, { A: '1' });
    assert.deepEqual(preview.settings.tls, main.settings.tls);
    assert.deepEqual(Object.keys(preview.settings).sort(), Object.keys(main.settings).sort());
  });
});

describe('preview markers on a node', () => {
  const main = testSite({ domain: 'shop.example' });
  const preview = previewSite(main, previewNames(main, 'feat1'));

  it('is in the root-owned registration folder, and a redeploy keeps its first time', () => {
    assert.equal(previewMarkerPath('shop-feat1'), '/etc/kraftwerk/sites/shop-feat1/preview.json');
    const first = previewMarkerContent(preview, undefined, new Date('2026-12-02T03:00:00.123Z'));
    assert.deepEqual(JSON.parse(first), { of: 'shop', name: 'feat1', domain: 'feat1.shop.example', created: '2026-12-02T03:00:00Z' });
    assert.equal(previewMarkerContent(preview, first, new Date('2026-12-09T00:00:00Z')), first);
  });

  it('a deploy refuses a site of that name that is not a preview of this site', () => {
    assert.equal(previewConflict(preview, undefined, false), undefined, 'a new preview');
    assert.equal(previewConflict(preview, previewMarkerContent(preview, undefined), true), undefined, 'its own preview again');
    assert.match(previewConflict(preview, undefined, true) ?? '', /shop-feat1 is a site on this node that is not a preview of shop/);
    const other = JSON.stringify({ of: 'shop-x', name: 'feat1', domain: 'd', created: '2026-01-01T00:00:00Z' });
    assert.match(previewConflict(preview, other, true) ?? '', /a preview of shop-x, not of shop/);
    assert.match(previewConflict(preview, 'garbage', true) ?? '', /unreadable/);
  });

  it('lists the previews of this site only, oldest first, with their live release', () => {
    const m = (of: string, name: string, created: string) => JSON.stringify({ of, name, domain: `${name}.shop.example`, created });
    const out = [
      `shop-b 20261202T010000Z ${m('shop', 'b', '2026-12-02T01:00:00Z')}`,
      `shop-a - ${m('shop', 'a', '2026-12-01T01:00:00Z')}`,
      `other-a 20261202T010000Z ${m('other', 'a', '2026-12-01T00:00:00Z')}`,
      'broken 20261202T010000Z {not json',
    ].join('\n');
    const list = parsePreviewList(out, 'shop');
    assert.deepEqual(
      list.map((p) => [p.site, p.name, p.live]),
      [
        ['shop-a', 'a', undefined],
        ['shop-b', 'b', '20261202T010000Z'],
      ],
    );
    assert.match(listPreviewsCommand().text, /\/etc\/kraftwerk\/sites\/\*\/preview\.json/);
  });

  it('ages read as the largest unit', () => {
    const now = Date.parse('2026-12-02T03:00:00Z');
    assert.equal(formatAge('2026-12-02T02:59:30Z', now), '30s');
    assert.equal(formatAge('2026-12-02T02:48:00Z', now), '12m');
    assert.equal(formatAge('2026-12-01T23:00:00Z', now), '4h');
    assert.equal(formatAge('2026-11-25T03:00:00Z', now), '7d');
    assert.equal(formatAge('not a time', now), '?');
  });
});
