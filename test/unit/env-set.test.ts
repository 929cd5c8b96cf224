/**
 * `kraftwerk env set` without secrets in argv: NAME alone (value from stdin),
 * --from-file .env (the dotenv syntax), and the warning for NAME=value.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { argvWarning, parseSetWords, readDotenvFile, readValueFromStdin, splitNodeArg } from '../../core/cli/actions/env.ts';
import { configSchema } from '../helpers/config.ts';
import { parseDotenv } from '../../core/shell/env-file.ts';
import type { Project } from '../../core/engine/plugin.ts';
import { createSite } from '../../core/config/site.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'kw-env-set-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const project: Project = {
  site: createSite(configSchema.parse({ domain: 'example.com', nodes: { production: 'prod.example.com' } }), {
    configFile: '/p/kraftwerk.yaml',
    sourceDir: '/p',
    name: 'shop',
  }),
  plugins: [],
};

const piped = (text: string) => Object.assign(Readable.from([Buffer.from(text)]), { isTTY: false }) as unknown as NodeJS.ReadStream;

describe('env set words', () => {
  it('NAME alone reads its value from stdin; NAME=value words are assignments', () => {
    assert.deepEqual(parseSetWords(['SECRET']), { assignments: {}, fromStdin: 'SECRET' });
    assert.deepEqual(parseSetWords(['A=1', 'B=x=y']), { assignments: { A: '1', B: 'x=y' } });
    assert.deepEqual(parseSetWords([], { fromFile: true }), { assignments: {} });
    assert.throws(() => parseSetWords([]), /nothing to set/);
    assert.throws(() => parseSetWords(['1BAD']), /not a variable name/);
    assert.throws(() => parseSetWords(['A=1', 'B']), /"B" has no =value/);
    assert.throws(() => parseSetWords(['A', 'B']), /has no =value/);
  });

  it('a leading word without = is the node when more words follow, or alone with --from-file', () => {
    assert.deepEqual(splitNodeArg(project, ['production', 'SECRET'], 'set'), { node: 'production', rest: ['SECRET'] });
    assert.deepEqual(splitNodeArg(project, ['stage', 'A=1'], 'set'), { node: 'stage', rest: ['A=1'] }, 'a sandbox need not be in kraftwerk.yaml');
    assert.deepEqual(splitNodeArg(project, ['SECRET'], 'set'), { rest: ['SECRET'] });
    assert.deepEqual(splitNodeArg(project, ['production'], 'set', undefined, { fromFile: true }), { node: 'production', rest: [] });
    assert.deepEqual(splitNodeArg(project, ['A=1'], 'set', undefined, { fromFile: true }), { rest: ['A=1'] });
  });

  it('unset: a leading word that cannot be a variable name is the node', () => {
    assert.deepEqual(splitNodeArg(project, ['my-stage', 'A'], 'unset'), { node: 'my-stage', rest: ['A'] });
    assert.deepEqual(splitNodeArg(project, ['A', 'B'], 'unset'), { rest: ['A', 'B'] });
  });

  it('the argv warning names the variables, never their values', () => {
    const text = argvWarning(['API_KEY']);
    assert.match(text, /API_KEY .*other local users/);
    assert.match(text, /kraftwerk env set NAME .*stdin/);
  });
});

describe('value from stdin', () => {
  it('takes piped input, dropping one trailing newline, keeping everything else', async () => {
    assert.equal(await readValueFromStdin('S', piped("s3cr'et $x\n")), "s3cr'et $x");
    assert.equal(await readValueFromStdin('S', piped('two\nlines\n\n')), 'two\nlines\n');
    assert.equal(await readValueFromStdin('S', piped('no newline')), 'no newline');
  });

  it('at a terminal: prompts on stderr, echoes nothing, raw mode on while typing and off after', async () => {
    const modes: boolean[] = [];
    const tty = Object.assign(new PassThrough(), { isTTY: true, setRawMode: (on: boolean) => modes.push(on) }) as unknown as NodeJS.ReadStream;
    const out = new PassThrough();
    let shown = '';
    out.setEncoding('utf8').on('data', (c: string) => (shown += c));
    const value = readValueFromStdin('API_KEY', tty, out as unknown as NodeJS.WriteStream);
    tty.write('s3x\u007fcret');
    tty.write('\r');
    assert.equal(await value, 's3cret', 'backspace removes a character');
    assert.deepEqual(modes, [true, false]);
    assert.equal(shown, 'Value for API_KEY (not shown): \n');
  });

  it('refuses an empty value and NUL bytes', async () => {
    await assert.rejects(readValueFromStdin('S', piped('')), /no value for S on stdin/);
    await assert.rejects(readValueFromStdin('S', piped('a\0b')), /NUL byte/);
  });
});

describe('dotenv files (--from-file)', () => {
  it('reads comments, export, unquoted, single- and double-quoted values', () => {
    const text = [
      '# a comment',
      '',
      'export API_KEY=abc123',
      'PLAIN = spaced value  # trailing comment',
      'HASH=a#b',
      "SINGLE='lit $HOME \\n # not a comment'",
      'DOUBLE="tab\\tnew\\nquote\\" dollar\\$ back\\\\"',
      "MULTI='line one",
      "line two'",
      'EMPTY=',
      'EQ=a=b',
      'CRLF=yes\r',
    ].join('\n');
    const { vars, problems } = parseDotenv(text);
    assert.deepEqual(problems, []);
    assert.deepEqual(vars, {
      API_KEY: 'abc123',
      PLAIN: 'spaced value',
      HASH: 'a#b',
      SINGLE: 'lit $HOME \\n # not a comment',
      DOUBLE: 'tab\tnew\nquote" dollar$ back\\',
      MULTI: 'line one\nline two',
      EMPTY: '',
      EQ: 'a=b',
      CRLF: 'yes',
    });
  });

  it('reads what a POSIX shell reads for the quoting both share', () => {
    const file = path.join(scratch, 'shell.env');
    const text = "B=\"x \\\"y\\\" \\$z\"\nC='lit $HOME'\nexport D=plain\n";
    writeFileSync(file, text);
    const shell = execFileSync('sh', ['-c', `. ${file}; printf '%s\\0' "$B" "$C" "$D"`], { encoding: 'utf8' }).split('\0').slice(0, 3);
    const { vars } = parseDotenv(text);
    assert.deepEqual([vars.B, vars.C, vars.D], shell);
    assert.deepEqual(shell, ['x "y" $z', 'lit $HOME', 'plain']);
  });

  it('reports every bad line with file and line, and sets nothing', () => {
    const file = path.join(scratch, 'bad.env');
    writeFileSync(file, 'OK=1\nnot a line\n1BAD=x\nOPEN="never closed\n');
    assert.throws(
      () => readDotenvFile(scratch, 'bad.env'),
      (error: Error) => {
        assert.deepEqual(error.message.split('\n'), [
          'bad.env:2: expected NAME=value',
          'bad.env:3: "1BAD" is not a variable name (letters, digits and _, not starting with a digit)',
          'bad.env:4: the double quote is never closed',
        ]);
        return true;
      },
    );
    assert.throws(() => readDotenvFile(scratch, 'missing.env'), /cannot read missing\.env: no such file/);
    writeFileSync(path.join(scratch, 'empty.env'), '# nothing\n');
    assert.throws(() => readDotenvFile(scratch, 'empty.env'), /sets no variables/);
  });
});
