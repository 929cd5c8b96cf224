import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KraftwerkError } from '../../core/errors.ts';
import { serviceFileContent } from '../../plugins/postgres/external.ts';

describe('postgres: {url: env}: the libpq service file made from DATABASE_URL', () => {
  it('has every part of the URL, decoded, and its query parameters', () => {
    const text = serviceFileContent('postgresql://app%40corp:p%3Ass%2Fw@db.example.com:6543/my%20db?sslmode=verify-full&connect_timeout=5', 'site on node');
    assert.equal(text, '[kraftwerk]\nhost=db.example.com\nport=6543\ndbname=my db\nuser=app@corp\npassword=p:ss/w\nsslmode=verify-full\nconnect_timeout=5\n');
  });

  it('takes postgres:// too, and leaves out what the URL does not say', () => {
    assert.equal(serviceFileContent('postgres://u@h/d', 'x'), '[kraftwerk]\nhost=h\ndbname=d\nuser=u\n');
  });

  for (const [url, why] of [
    ['mysql://u:p@h/d', /starts with mysql:\/\/ rather than postgresql/],
    ['not a url', /it is not a URL/],
    ['postgresql://u:p@h', /names no database/],
    ['postgresql://u:p%0Aport=1@h/d', /its password holds a line break/],
    ['postgresql://u:p@h/d?sslmode=require%0Ahost=evil', /its sslmode holds a line break/],
    ['postgresql://u:p@h/d?a-b=1', /not a libpq keyword/],
  ] as const) {
    it(`refuses ${JSON.stringify(url)} without showing the value`, () => {
      assert.throws(
        () => serviceFileContent(url, 'extsite on ext-a'),
        (error: unknown) => {
          assert.ok(error instanceof KraftwerkError);
          assert.match(error.message, /^DATABASE_URL of extsite on ext-a cannot be used: /);
          assert.match(error.message, why);
          assert.ok(!error.message.includes(':p@') && !/p%0A/.test(error.message));
          return true;
        },
      );
    });
  }
});
