import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/**
 * Renders a plugin's ejs template. Config files are not HTML: `<%=` would
 * HTML-escape values and corrupt them, so templates must use `<%-` and a
 * template containing `<%=` is refused.
 */
type Ejs = { render(template: string, data: object, options: object): string };
let ejs: Ejs | undefined;

const cache = new Map<string, string>();

export async function renderTemplate(file: string | URL, data: Record<string, unknown>): Promise<string> {
  const filename = file instanceof URL ? fileURLToPath(file) : file;
  // Resolved to the source tree, so that ejs include() finds sibling templates from dist/ too.
  const sourceFile = templateSource(filename);
  let source = cache.get(sourceFile);
  if (source === undefined) {
    source = readFileSync(sourceFile, 'utf8');
    if (source.includes('<%=')) {
      throw new Error(`${filename}: use <%- in config templates; <%= HTML-escapes values`);
    }
    cache.set(sourceFile, source);
  }
  ejs ??= ((await import('ejs')) as unknown as { default?: Ejs } & Ejs).default ?? ((await import('ejs')) as unknown as Ejs);
  return ejs.render(source, data, { filename: sourceFile, async: false, strict: false, rmWhitespace: false });
}

/**
 * Templates are not compiled: when running from dist/, a template URL made
 * with `new URL('./templates/x.ejs', import.meta.url)` points into dist/, so
 * fall back to the same path in the source tree.
 */
function templateSource(filename: string): string {
  try {
    readFileSync(filename);
    return filename;
  } catch {
    const alt = filename.replace(`${path.sep}dist${path.sep}`, path.sep);
    return alt;
  }
}
