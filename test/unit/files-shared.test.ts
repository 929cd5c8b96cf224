// files.shared_path (issue 16): the uploads of a site on several web nodes live on a mount they share.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderNginxSite } from '../../plugins/nginx/index.ts';
import { readMountMarkerCommand, uploadsFolderCommand, writeMountMarkerCommand } from '../../plugins/files/index.ts';
import { uploadsDir } from '../../plugins/files/paths.ts';
import { configSchema } from '../helpers/config.ts';
import { testSite } from '../helpers/site.ts';

describe('files.shared_path', () => {
  it('refuses a path that is not an absolute path of a mount of your own', () => {
    for (const bad of ['mnt/uploads', '/mnt/up loads', '/mnt/../etc', '/mnt/./x', '/etc/uploads', '/srv/shop', '/', '/mnt/$(id)', "/mnt/a'b", '/mnt/a;b']) {
      const r = configSchema.safeParse({ domain: 'shop.example', services: ['files'], files: { shared_path: bad } });
      assert.equal(r.success, false, bad);
    }
    assert.equal(configSchema.safeParse({ domain: 'shop.example', services: ['files'], files: { shared_path: '/mnt/uploads' } }).success, true);
  });

  it('the uploads, nginx alias and symlink check move onto the mount; without it nothing changes', async () => {
    const shared = testSite({ services: ['files'], files: { shared_path: '/mnt/uploads' } });
    assert.equal(uploadsDir(shared), '/mnt/uploads/shop');
    const conf = await renderNginxSite(shared);
    assert.match(conf, /alias \/mnt\/uploads\/shop\/;/);
    assert.match(conf, /disable_symlinks on from=\/mnt\/uploads;/);
    assert.match(uploadsFolderCommand(shared).text, /install -d -m 2750 -o kw-shop -g kwn-shop \/mnt\/uploads\/shop/);

    const local = testSite({ services: ['files'] });
    assert.equal(uploadsDir(local), '/srv/shop/shared/uploads');
    assert.match(await renderNginxSite(local), /alias \/srv\/shop\/shared\/uploads\/;/);
  });

  it('the marker names the release and the node that wrote it; a link is not read', () => {
    const site = testSite({ services: ['files'], files: { shared_path: '/mnt/uploads' } });
    const write = writeMountMarkerCommand(site, '20261202T070000Z', 'web1').text;
    assert.match(write, /> \/mnt\/uploads\/\.kraftwerk-shared-shop-20261202T070000Z/);
    assert.match(write, /'20261202T070000Z web1'/);
    assert.match(readMountMarkerCommand(site, '20261202T070000Z').text, /\[ ! -L /);
  });
});
