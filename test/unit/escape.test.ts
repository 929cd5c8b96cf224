/**
 * The config-file escapers (plugins/nginx, uwsgi and cron: escape.ts) with hostile values: each either
 * gives text that the file's parser reads back as exactly one value, or
 * refuses it with a ConfigValueError naming the value.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KraftwerkError } from '../../core/errors.ts';
import { ConfigValueError } from '../../core/shell/escape.ts';
import { cronCommand, cronField, cronSchedule } from '../../plugins/cron/escape.ts';
import { nginxValue } from '../../plugins/nginx/escape.ts';
import { uwsgiIniValue } from '../../plugins/uwsgi/escape.ts';
import { renderNginxSite } from '../../plugins/nginx/index.ts';
import { renderUwsgiIni } from '../../plugins/uwsgi/index.ts';
import { testSite } from '../helpers/site.ts';

const refused = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof ConfigValueError && e.exitCode === 1 && pattern.test(e.message), `${pattern} expected`);

/**
 * How nginx's tokenizer (ngx_conf_read_token) reads one argument: a bare word
 * ends at space, `;`, `{` or `}`; a double-quoted one at its closing quote, with
 * \" and \\ unescaped. Returns the argument and what follows it.
 */
function nginxReads(text: string): { arg: string; rest: string } {
  if (text.startsWith('"')) {
    let arg = '';
    for (let i = 1; i < text.length; i++) {
      if (text[i] === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) arg += text[++i];
      else if (text[i] === '"') return { arg, rest: text.slice(i + 1) };
      else arg += text[i];
    }
    throw new Error(`unterminated quote in ${text}`);
  }
  const m = /^[^\s;{}"']*/.exec(text)![0];
  return { arg: m, rest: text.slice(m.length) };
}

describe('nginxValue', () => {
  it('leaves plain words as they are', () => {
    for (const v of ['/srv/shop/current/static/', '30d', '10m', 'kraftwerk-shop', 'unix:/srv/shop/current/.kraftwerk/uwsgi.sock', '70']) {
      assert.equal(nginxValue(v), v);
    }
    assert.equal(nginxValue(70), '70');
  });

  it('quotes what would end the argument, and nginx reads back exactly the value', () => {
    for (const v of ['a b', 'x;', 'x; deny all', 'a{b}', '}', '{', 'say "hi"', 'back\\slash', '\\"', "it's", '#comment', '`id`', 'a%b', '']) {
      const text = nginxValue(v);
      const read = nginxReads(`${text};`);
      assert.equal(read.arg, v, `${JSON.stringify(v)} written as ${text}`);
      assert.equal(read.rest, ';', `${JSON.stringify(v)}: nothing of it is left outside the argument`);
    }
  });

  it('refuses $ (nginx expands variables, quoted or not) and control characters', () => {
    refused(() => nginxValue('$request_uri'), /"\$" is not allowed .*variable/);
    refused(() => nginxValue('$(id)'), /variable/);
    refused(() => nginxValue('static/\n}\nlocation / { root /'), /a newline is not allowed/);
    refused(() => nginxValue('a\rb'), /carriage return/);
    refused(() => nginxValue('a\0b'), /NUL byte/);
    refused(() => nginxValue('a\tb'), /tab/);
    refused(() => nginxValue('a\u001bb'), /U\+001b/);
  });
});

describe('uwsgiIniValue', () => {
  it('passes literal values', () => {
    for (const v of ['/srv/shop/releases/20260101T000000Z/.kraftwerk/uwsgi.sock', 'shop.wsgi', 'application', 'kw-shop', '5000', 'a=b,c:d+e']) {
      assert.equal(uwsgiIniValue(v), v);
    }
    assert.equal(uwsgiIniValue(4), '4');
  });

  it('refuses what uWSGI would expand or cut: %, $( @( and newlines, quotes, spaces, NUL', () => {
    for (const [v, what] of [
      ['%n', /"%"/],
      ['%(chdir)', /"%"/],
      ['$(HOME)', /"\$"/],
      ['@(/etc/shadow)', /"@"/],
      ['@/etc/shadow', /"@"/],
      ['app\nplugin = evil', /newline/],
      ['app\0', /NUL/],
      ['a b', /space/],
      ['"quoted"', /"""/],
      ["'quoted'", /"'"/],
      ['`id`', /"`"/],
      ['a;b', /";"/],
      ['{a}', /"\{"/],
      ['', /empty/],
    ] as const) {
      refused(() => uwsgiIniValue(v), what);
    }
  });
});

describe('crontab values', () => {
  it('schedules: fields joined by one space; anything that could end the line or shift the fields is refused', () => {
    assert.equal(cronSchedule('*/5  *\t* * mon-fri'), '*/5 * * * mon-fri');
    assert.equal(cronSchedule('@daily'), '@daily');
    refused(() => cronSchedule('* * * * *\n* * * * * root id'), /newline/);
    refused(() => cronSchedule('* * * * *;id'), /";"/);
    refused(() => cronSchedule('$(id) * * * *'), /"\$"/);
    refused(() => cronSchedule('* * * * *\0'), /NUL/);
    refused(() => cronField('a b'), /space/);
    refused(() => cronField('%'), /"%"/);
    refused(() => cronField(''), /empty/);
  });

  it('commands: % escaped (cron makes it a newline), newlines and control characters refused', () => {
    assert.equal(cronCommand("date +'%Y-%m-%d'"), "date +'\\%Y-\\%m-\\%d'");
    assert.equal(cronCommand('a\tb'), 'a\tb');
    assert.equal(cronCommand('echo "$(id)" `id`; x'), 'echo "$(id)" `id`; x', 'shell syntax is the shell\'s business (sh quotes it)');
    refused(() => cronCommand('true\n* * * * * root id'), /newline/);
    refused(() => cronCommand('true\r* * * * * root id'), /carriage return/);
    refused(() => cronCommand('true\0'), /NUL/);
  });
});

describe('the plugins write config values through the escapers', () => {
  it('a hostile value that got past validation cannot add to the nginx site: it is refused', async () => {
    const site = testSite();
    for (const body of ['1m;\n    location / { root /; }', '1m; root /', '$request_uri']) {
      const hostile = { ...site, settings: { ...site.settings, nginx: { client_max_body_size: body } } };
      await assert.rejects(renderNginxSite(hostile), (e: unknown) => e instanceof KraftwerkError && e.message.includes(JSON.stringify(body)), body);
    }
  });

  it('a hostile value that got past validation cannot reach the uWSGI ini', async () => {
    const site = testSite();
    const hostile = { ...site, wsgi: { module: 'app\nplugin = evil', callable: 'application' } };
    await assert.rejects(renderUwsgiIni(hostile, { path: '/srv/shop/releases/1', venv: '/srv/shop/venvs/x' }), (e: unknown) => e instanceof ConfigValueError && /newline/.test(e.message));
    await assert.rejects(renderUwsgiIni(site, { path: '/srv/shop/releases/%(x)', venv: '/srv/shop/venvs/x' }), ConfigValueError);
  });
});
