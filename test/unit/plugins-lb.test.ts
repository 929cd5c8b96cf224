// The load balancer's site file and the web nodes' behind it (plugins/lb, plugins/nginx NginxLayout):
// exact text for ordinary values, hostile addresses never becoming a directive of their own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigValueError } from '../../core/index.ts';
import { renderNginxSite } from '../../plugins/nginx/index.ts';
import { testSite } from '../helpers/site.ts';

const LB = `# Kraftwerk: load balancer of site shop. Written by \`kraftwerk deploy\`; edits are overwritten.
upstream kraftwerk-shop {
    # The web nodes' nginx on their private addresses. A server that fails max_fails times within
    # fail_timeout gets no requests for fail_timeout (passive health checks); \`down\`: drained by a rolling deploy.
    server 10.0.0.11:80 max_fails=3 fail_timeout=10s;
    server "[fd00::12]:80" max_fails=3 fail_timeout=10s down;
    keepalive 16;
}

# Aliases answer with a permanent redirect to the canonical domain.
server {
    listen 80;
    listen [::]:80;
    server_name www.shop.example;
    return 301 $scheme://shop.example$request_uri;
}

server {
    listen 80;
    listen [::]:80;
    server_name shop.example;

    client_max_body_size 10m;
    access_log /var/log/nginx/kraftwerk-shop.access.log;
    error_log /var/log/nginx/kraftwerk-shop.error.log;

    # No path with a dot segment is served or passed to the app (.kraftwerk/, .git/, .env, .htpasswd),
    # wherever it is; /.well-known/ at the top stays (ACME challenges, security.txt).
    location ~ "^/\\.(?!well-known/)|./\\." {
        return 404;
    }

    # Every request goes to a web node, which serves static files and uploads itself.
    location / {
        proxy_pass http://kraftwerk-shop;
        # HTTP/1.1 without \`Connection: close\`, so the upstream keepalive connections are reused.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # A node that refuses or fails to answer: the request goes to the next one. nginx never
        # passes on a non-idempotent request (POST, PATCH, LOCK) that a node may have started on.
        proxy_next_upstream error timeout http_502 http_503 http_504;
        proxy_next_upstream_tries 3;
        proxy_connect_timeout 3s;
        proxy_read_timeout 80s;
    }
}
`;

const lbLayout = (...servers: { address: string; down?: boolean }[]) => ({ proxy: { servers } });

describe('lb: the load balancer site file', () => {
  it('an upstream of the web nodes (IPv6 in brackets, a drained one down), aliases redirected, every request proxied', async () => {
    const site = testSite({ aliases: ['www.shop.example'] });
    assert.equal(await renderNginxSite(site, undefined, lbLayout({ address: '10.0.0.11' }, { address: 'fd00::12', down: true })), LB);
  });

  it('with a certificate: TLS ends on the load balancer, which still proxies over plain HTTP', async () => {
    const tls = { certificate: { fullchain: '/etc/ssl/shop/fullchain.pem', privateKey: '/etc/ssl/shop/privkey.pem' }, hstsMaxAge: 0, protocols: ['TLSv1.2', 'TLSv1.3'], ciphers: 'HIGH' };
    const conf = await renderNginxSite(testSite(), tls, lbLayout({ address: '10.0.0.11' }));
    assert.match(conf, /listen 443 ssl http2;[^]*ssl_certificate \/etc\/ssl\/shop\/fullchain\.pem;[^]*proxy_pass http:\/\/kraftwerk-shop;/);
    assert.match(conf, /proxy_set_header X-Forwarded-Proto \$scheme;/);
    assert.doesNotMatch(conf, /uwsgi_pass|location \/static\//, 'the load balancer serves nothing itself');
  });

  it('a web node behind it: listens on its private address only, trusts X-Forwarded-For from the load balancer only, no alias server', async () => {
    const conf = await renderNginxSite(testSite({ aliases: ['www.shop.example'] }), undefined, { behind: { listen: ['10.0.0.11'], loadBalancers: ['10.0.0.2'] } });
    assert.ok(
      conf.includes(`server {
    listen 10.0.0.11:80;
    server_name shop.example;
`),
      conf,
    );
    assert.ok(conf.includes('    set_real_ip_from 10.0.0.2;\n    real_ip_header X-Forwarded-For;\n'), conf);
    assert.doesNotMatch(conf, /listen 80;|www\.shop\.example/, 'nothing on the public addresses, aliases are the load balancer\'s');
    assert.match(conf, /uwsgi_pass kraftwerk-shop;/);
  });

  for (const hostile of ['10.0.0.1:80; include /etc/shadow', '10.0.0.1 backup', 'a}server{listen 81', '10.0.0.1"; #']) {
    it(`an address ${JSON.stringify(hostile)} stays one argument (quoted), never a directive`, async () => {
      const conf = await renderNginxSite(testSite(), undefined, lbLayout({ address: hostile }));
      const line = conf.split('\n').find((l) => l.startsWith('    server "'));
      assert.ok(line, conf);
      const hostPort = hostile.includes(':') ? `[${hostile}]:80` : `${hostile}:80`;
      const quoted = `"${hostPort.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
      assert.equal(line, `    server ${quoted} max_fails=3 fail_timeout=10s;`);
      const behind = await renderNginxSite(testSite(), undefined, { behind: { listen: ['10.0.0.11'], loadBalancers: [hostile] } });
      assert.ok(behind.includes(`    set_real_ip_from ${`"${hostile.replace(/[\\"]/g, (c) => `\\${c}`)}"`};\n`), behind);
    });
  }

  for (const hostile of ['$host', '10.0.0.1\ninclude /etc/shadow;', '10.0.0.1\r']) {
    it(`an address ${JSON.stringify(hostile)} is refused (a variable or a line break)`, async () => {
      await assert.rejects(renderNginxSite(testSite(), undefined, lbLayout({ address: hostile })), ConfigValueError);
      await assert.rejects(renderNginxSite(testSite(), undefined, { behind: { listen: [hostile], loadBalancers: ['10.0.0.2'] } }), ConfigValueError);
      await assert.rejects(renderNginxSite(testSite(), undefined, { behind: { listen: ['10.0.0.11'], loadBalancers: [hostile] } }), ConfigValueError);
    });
  }
});
