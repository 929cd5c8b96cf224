import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withHostsEntry, withoutHostsEntries } from '../../tools/hosts-file.ts';

describe('/etc/hosts entries', () => {
  const base = '127.0.0.1\tlocalhost\n10.0.0.9\tother.test\n';

  it('adds a marked line and removes exactly the lines of its owner', () => {
    const added = withHostsEntry(base, '10.213.0.2', 'flask-hello.test www.flask-hello.test', 'kraftwerk-sandbox demo')!;
    assert.equal(added, `${base}10.213.0.2\tflask-hello.test www.flask-hello.test # kraftwerk-sandbox demo\n`);
    const other = withHostsEntry(added, '10.213.0.6', 'b.test', 'kraftwerk-sandbox demo2')!;
    assert.equal(withoutHostsEntries(other, 'kraftwerk-sandbox demo'), `${base}10.213.0.6\tb.test # kraftwerk-sandbox demo2\n`);
    assert.equal(withoutHostsEntries(base, 'kraftwerk-sandbox demo'), undefined);
  });
});
