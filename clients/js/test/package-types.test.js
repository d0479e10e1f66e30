// The package as published: the types a TypeScript app gets when it
// imports @heraldhq/client through its exports, with a strict tsconfig
// (module/moduleResolution node16, as a Node.js ESM app has). The app is a
// scratch directory whose node_modules/@heraldhq/client links to this
// package (TypeScript follows the link, so graphql-ws and graphql resolve
// from this package's node_modules, as from an installed tarball's).
// Needs only a built dist/ (run-tests.sh builds it); no Herald.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(pkgDir, 'node_modules/typescript/bin/tsc');

/** Type-checks files ({ name: source }) as a strict ESM app that depends on @heraldhq/client; returns tsc's diagnostics ('' if none). */
function typecheck(files) {
  assert.ok(existsSync(join(pkgDir, 'dist/index.d.ts')), 'dist/ is missing: run `npm run build` first');
  const app = mkdtempSync(join(process.env.HERALD_JS_TMP || tmpdir(), 'pkg-app-'));
  try {
    mkdirSync(join(app, 'node_modules/@heraldhq'), { recursive: true });
    symlinkSync(pkgDir, join(app, 'node_modules/@heraldhq/client'), 'dir');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'node16', moduleResolution: 'node16', lib: ['ES2022', 'DOM'],
        strict: true, noEmit: true, skipLibCheck: true, types: [],
      },
      include: Object.keys(files),
    }));
    for (const [name, src] of Object.entries(files)) writeFileSync(join(app, name), src);
    const r = spawnSync(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    assert.ok(r.status === 0 || r.status === 1 || r.status === 2, `tsc did not run: ${r.error?.message ?? r.stderr}`);
    return `${r.stdout}${r.stderr}`.trim();
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
}

/** The first ```ts block of README.md after `heading`. */
function readmeSample(heading) {
  const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `README.md has no ${heading}`);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `no ts sample after ${heading}`);
  return m[1];
}

test('the README\'s first sample (## The client) compiles in a strict TypeScript app', () => {
  // Only the placeholders the sample leaves to the app are declared.
  const placeholders = [
    'declare const auth: { freshToken(): Promise<string> };',
    'declare const roomId: string;',
    'declare function show(message: unknown): void;',
    '',
  ].join('\n');
  const sample = readmeSample('## The client');
  const out = typecheck({ 'sample.ts': `${placeholders}${sample}\nexport {};\n` });
  assert.equal(out, '', `README sample:\n${sample}\ntsc (strict) says:\n${out}`);
});

test('the sink type the public signatures take (graphql-ws Sink) can be named from @heraldhq/client', () => {
  // README: subscribe<Data>(request, sink: Sink<Result<Data>>, …) and
  // subscribeAfter(…, sink: Sink<Result<Data>>); its hand-over sample passes
  // a `sink` the app must declare. graphql-ws is this package's own (pinned)
  // dependency, not the app's: with pnpm or npm's linked installs the app
  // cannot import it (TS2307), so the package must export the type.
  const out = typecheck({
    'sink.ts': [
      "import type { Result, Sink } from '@heraldhq/client';",
      'export const sink: Sink<Result<{ messagePosted: { text: string } }>> = {',
      '  next: (r) => { void r.data?.messagePosted.text; }, error: () => {}, complete: () => {},',
      '};',
      '',
    ].join('\n'),
  });
  assert.equal(out, '', `tsc (strict) says:\n${out}`);
});
