// The package as published: what `npm pack` puts in the tarball an app
// installs. Every source map shipped in it (dist/*.js.map, dist/*.d.ts.map)
// must point at sources the tarball holds, or carry them (sourcesContent):
// otherwise an app's tools follow it to files that are not there (webpack's
// source-map-loader warns "Failed to parse source map ... ENOENT" for each,
// Vite "points to missing source files", Node.js --enable-source-maps and
// error monitors show stack frames in node_modules/@heraldhq/client/src/*.ts,
// which does not exist, and "Go to Definition" through the .d.ts.map leads
// nowhere). Needs only a built dist/ (run-tests.sh builds it); no Herald.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The files `npm pack` would put in the tarball (paths relative to the package), without writing it. */
function packedFiles() {
  const cache = mkdtempSync(join(process.env.HERALD_JS_TMP || tmpdir(), 'pkg-npm-cache-'));
  try {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--cache', cache, '--loglevel=error'], {
      cwd: pkgDir, encoding: 'utf8', timeout: 60_000,
    });
    assert.equal(r.status, 0, `npm pack --dry-run failed: ${r.error?.message ?? r.stderr}`);
    const [info] = JSON.parse(r.stdout);
    return info.files.map((f) => f.path);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
}

test('every source map in the npm tarball points at sources the tarball holds', () => {
  assert.ok(existsSync(join(pkgDir, 'dist/index.js')), 'dist/ is missing: run `npm run build` first');
  const files = packedFiles();
  const inTarball = new Set(files);
  const maps = files.filter((f) => f.endsWith('.map'));
  const missing = [];
  for (const map of maps) {
    const m = JSON.parse(readFileSync(join(pkgDir, map), 'utf8'));
    (m.sources ?? []).forEach((src, i) => {
      if (typeof m.sourcesContent?.[i] === 'string') return; // carried inline
      const target = posix.normalize(posix.join(posix.dirname(map), m.sourceRoot ?? '', src));
      if (!inTarball.has(target)) missing.push(`${map} -> ${target}`);
    });
  }
  assert.deepEqual(missing, [],
    `source maps in the tarball point at ${missing.length} file(s) the tarball does not hold ` +
    `(tarball: ${JSON.stringify(files)})`);
});
