/**
 * bench/size: how a one-file deploy grows with the size of the app. Temp
 * copies of examples/flask-hello filled up to 50, 500 and 5,000 files
 * (20 KiB of random bytes each, so 5,000 files are about 100 MB and
 * incompressible), each deployed once in full and then `--runs` times with
 * one changed file, beside the floor for the same tree (rsync with
 * --link-dest + `sv hup`), interleaved. Reports the medians, the ratio to the
 * floor and the CLI's peak RSS (the Node process's own maxRSS). Goals: 5,000
 * files at most 1.5× the floor; peak RSS at most 150 MB. Writes
 * docs/bench-size.csv and docs/bench-size.svg.
 * Run: npm run bench:size  (or node --import tsx bench/size.ts --runs 5)
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BenchFailure,
  DOCS_DIR,
  Floor,
  benchArgs,
  copyExample,
  deployer,
  main,
  median,
  ms,
  note,
  projectDomain,
  ratio,
  setUpSandboxes,
  table,
  settle as settleSites,
  writeChart,
  writeCsv,
} from './lib.ts';

const SANDBOX = 'bench-size';
const EXAMPLE = 'flask-hello';
const FILE_COUNTS = [50, 500, 5000];
const FILE_BYTES = 20 * 1024;
/** Generated files go here, 100 to a folder (as an app's assets or data would be). */
const DATA_DIR = 'bench-data';

async function countFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).length;
}

/** Fill the project up to `total` files (the example's own included); returns the bytes generated. */
async function fillTo(projectDir: string, total: number): Promise<number> {
  const data = path.join(projectDir, DATA_DIR);
  await rm(data, { recursive: true, force: true });
  const missing = total - (await countFiles(projectDir));
  if (missing < 0) throw new BenchFailure(`the example already has more than ${total} files`);
  for (let i = 0; i < missing; i++) {
    const folder = path.join(data, `d${String(Math.floor(i / 100)).padStart(2, '0')}`);
    if (i % 100 === 0) await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, `f${String(i).padStart(4, '0')}.bin`), randomBytes(FILE_BYTES));
  }
  return missing * FILE_BYTES;
}

interface Row {
  files: number;
  megabytes: number;
  deployMs: number;
  floorMs: number;
  peakRssMb: number;
}

async function bench(): Promise<void> {
  const args = benchArgs({ runs: 3 });
  const project = await copyExample(EXAMPLE);
  try {
    const domain = await projectDomain(project.dir);
    const [sandbox] = await setUpSandboxes([SANDBOX], project.dir, { keep: args.keep });
    const sb = sandbox!;
    const settle = () => settleSites([sb], domain);
    const floor = new Floor(sb, project.dir, EXAMPLE);
    const run = deployer(project.dir);
    const deploy = async (label: string) => {
      const r = await run(SANDBOX, label, { peakRss: true });
      await settle();
      return r;
    };

    const rows: Row[] = [];
    for (const files of FILE_COUNTS) {
      const bytes = await fillTo(project.dir, files);
      note(`${files} files (${(bytes / 1e6).toFixed(1)} MB generated): first deploy and the floor's first copy (not measured)`);
      await deploy(`${files} files, first`);
      await floor.prepare();
      await floor.measure();
      await settle();
      const deploys: number[] = [];
      const floors: number[] = [];
      const rss: number[] = [];
      for (let i = 1; i <= args.runs; i++) {
        await appendFile(path.join(project.dir, 'app.py'), `# bench: size change ${files}/${i}\n`);
        const d = await deploy(`${files} files, one changed`);
        deploys.push(d.ms);
        if (d.peakRssKb !== undefined) rss.push(d.peakRssKb / 1024);
        floors.push((await floor.measure()).ms);
        await settle();
        note(`${files} files ${i}/${args.runs}: deploy ${ms(d.ms)}, floor ${ms(floors.at(-1))}, CLI peak RSS ${d.peakRssKb === undefined ? 'n/a' : `${Math.round(d.peakRssKb / 1024)} MB`}`);
      }
      rows.push({ files, megabytes: bytes / 1e6, deployMs: median(deploys), floorMs: median(floors), peakRssMb: rss.length ? Math.max(...rss) : Number.NaN });
    }

    const biggest = rows.at(-1)!;
    const sizeRatio = biggest.deployMs / biggest.floorMs;
    process.stdout.write(
      `bench/size: examples/${EXAMPLE} filled with ${FILE_BYTES / 1024} KiB files, one changed file, to sandbox ${SANDBOX}, median of ${args.runs} runs each\n\n` +
        `${table(
          ['files', 'MB', 'kraftwerk', 'floor', '/ floor', 'CLI peak RSS'],
          rows.map((r) => [r.files, r.megabytes.toFixed(1), ms(r.deployMs), ms(r.floorMs), ratio(r.deployMs, r.floorMs), `${Math.round(r.peakRssMb)} MB`]),
        )}\n` +
        'floor = rsync of the same tree with --link-dest + `ssh sv hup`; peak RSS = the CLI\'s Node process (max over runs)\n\n' +
        `goals:\n  ${biggest.files} files ≤ 1.5× the floor: ${sizeRatio.toFixed(2)}× ${sizeRatio <= 1.5 ? 'met' : 'NOT met'}\n` +
        `  CLI peak RSS ≤ 150 MB (${biggest.files} files): ${Math.round(biggest.peakRssMb)} MB ${biggest.peakRssMb <= 150 ? 'met' : 'NOT met'}\n`,
    );
    await writeCsv(
      path.join(DOCS_DIR, 'bench-size.csv'),
      ['files', 'megabytes', 'kraftwerk_ms', 'floor_ms', 'cli_peak_rss_mb', 'runs'],
      rows.map((r) => [r.files, r.megabytes.toFixed(1), Math.round(r.deployMs), Math.round(r.floorMs), Math.round(r.peakRssMb), args.runs]),
    );
    await writeChart(path.join(DOCS_DIR, 'bench-size.svg'), {
      title: 'One-file deploy against app size (median)',
      xLabel: 'files in the app (log scale)',
      yLabel: 'ms',
      logX: true,
      series: [
        { name: 'kraftwerk', points: rows.map((r) => [r.files, r.deployMs]) },
        { name: 'floor', points: rows.map((r) => [r.files, r.floorMs]), dashed: true },
      ],
    });
  } finally {
    await project.cleanup();
  }
}

await main(bench);
